"""A batch's records by partition: each partition's valid rows in offset order.

A context model scores each partition's records in offset order through that partition's
state, and the alert episodes follow the same order; :func:`partition_groups` is that split,
written once. :func:`batch_epoch_seconds` parses a batch's timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shared.context import epoch_seconds
from shared.decoding import DecodedBatch

if TYPE_CHECKING:
    from consumer.processor import RecordLike

Where = tuple[str, int]
# Per partition: the rows of its valid records in offset order, and their offsets.
Groups = Mapping[Where, tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]]


def batch_epoch_seconds(timestamps: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """:func:`shared.context.epoch_seconds` of each timestamp, each distinct one parsed once
    (a fleet's records of one second share their timestamp)."""
    distinct = dict.fromkeys(timestamps)
    if len(distinct) == len(timestamps):
        return epoch_seconds(timestamps)
    parsed = dict(zip(distinct, epoch_seconds(list(distinct)).tolist(), strict=True))
    return np.fromiter((parsed[t] for t in timestamps), np.float64, len(timestamps))


def partition_groups(records: Sequence[RecordLike], decoded: DecodedBatch) -> Groups:
    """Per partition, the rows of the batch's valid records in offset order, and their offsets."""
    if not decoded.index:
        return {}
    # the usual batch: every record from one partition (one comparison a record, in C, in
    # place of a dictionary's look-ups)
    wheres = [(record.topic, record.partition) for record in records]
    if wheres.count(wheres[0]) == len(wheres):
        offsets = np.array([records[p].offset for p in decoded.index], dtype=np.int64)
        return {wheres[0]: _in_offset_order(np.arange(len(decoded.index), dtype=np.intp), offsets)}
    rows_of: dict[Where, list[int]] = {}
    offsets_of: dict[Where, list[int]] = {}
    for row, position in enumerate(decoded.index):
        record = records[position]
        where = (record.topic, record.partition)
        if where not in rows_of:
            rows_of[where], offsets_of[where] = [], []
        rows_of[where].append(row)
        offsets_of[where].append(record.offset)
    return {
        where: _in_offset_order(
            np.asarray(members, dtype=np.intp), np.asarray(offsets_of[where], dtype=np.int64)
        )
        for where, members in rows_of.items()
    }


def _in_offset_order(
    rows: npt.NDArray[np.intp], offsets: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.int64]]:
    """A partition's rows and offsets, sorted by offset where they are not already."""
    if bool((np.diff(offsets) > 0).all()):
        return rows, offsets
    order = np.argsort(offsets, kind="stable")
    return rows[order], offsets[order]
