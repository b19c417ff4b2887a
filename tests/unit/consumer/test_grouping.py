"""partition_groups: each partition's valid rows in offset order, whether the batch holds one
partition (the usual batch, its own path) or several."""

from __future__ import annotations

import json

import numpy as np
import pytest

from consumer.grouping import partition_groups
from shared.decoding import decode_batch
from tests.unit.consumer.fakes import Rec as Record


def _value(i: int) -> bytes:
    body = {
        "vehicle_id": f"VH-{i % 3}",
        "timestamp": "2024-01-15T10:00:00Z",
        "feature_vector": [i, 1.0],
    }
    return json.dumps(body).encode()


Pairs = dict[tuple[str, int], list[tuple[int, int]]]


def _expected(records: list[Record], index: list[int]) -> Pairs:
    out: Pairs = {}
    for row, position in enumerate(index):
        record = records[position]
        out.setdefault((record.topic, record.partition), []).append((record.offset, row))
    return {where: sorted(pairs) for where, pairs in out.items()}


@pytest.mark.parametrize("partitions", [1, 2, 3])
@pytest.mark.parametrize("shuffled", [False, True])
def test_groups_hold_each_partitions_valid_rows_in_offset_order(
    partitions: int, shuffled: bool
) -> None:
    """Dead-lettered records in no group; the rest by partition, sorted by offset."""
    rng = np.random.default_rng(partitions)
    records = [
        Record("t", i % partitions, 100 + i, None, b"not json" if i % 7 == 3 else _value(i))
        for i in range(40)
    ]
    if shuffled:
        records = [records[i] for i in rng.permutation(len(records))]
    decoded = decode_batch([r.value for r in records], 2)
    assert decoded.index and decoded.failures  # (the invalid records are in no group)
    groups = partition_groups(records, decoded)
    expected = _expected(records, decoded.index)
    assert set(groups) == set(expected)
    for where, (rows, offsets) in groups.items():
        assert offsets.dtype == np.int64 and rows.dtype == np.intp
        assert list(zip(offsets.tolist(), rows.tolist(), strict=True)) == expected[where]


def test_a_batch_with_no_valid_record_has_no_group() -> None:
    """Not even an empty one: nothing of the batch joins a context."""
    records = [Record("t", 0, i, None, b"{}") for i in range(3)]
    assert partition_groups(records, decode_batch([r.value for r in records], 2)) == {}
