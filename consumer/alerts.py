"""A batch's alert messages: each partition's scored records through its episode book.

No I/O here. :func:`alert_messages` feeds :class:`shared.episodes.EpisodeBook` (one per
partition, held by :class:`consumer.context_store.ContextStore`) the batch's valid records of
that partition in offset order, and turns the events into messages for ``ALERT_TOPIC``
(key = vehicle id), after the batch's verdicts. A batch published twice (at least once)
gives the same events with the same ids; consumers de-duplicate on (episode id, event,
record count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from consumer.grouping import Groups
from shared.episodes import EpisodeBook, Event

if TYPE_CHECKING:
    from consumer.processor import Outgoing

Where = tuple[str, int]


def alert_messages(
    alert_topic: str,
    books: Mapping[Where, EpisodeBook],
    groups: Groups,
    vehicle_ids: Sequence[str],
    timestamps: Sequence[str],
    times: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    flags: npt.NDArray[np.bool_],
    attributions: Mapping[int, list[dict[str, Any]]],
    model_version: str,
    severity_scale: float,
) -> tuple[list[Outgoing], list[Event]]:
    """The messages and events of the batch's records, partition by partition
    (``severity_scale``: the scoring model's, see :func:`shared.episodes.severity`)."""
    from consumer.processor import Kind, Outgoing

    messages: list[Outgoing] = []
    events: list[Event] = []
    for where, (rows, offsets) in groups.items():
        book = books.get(where)
        if book is None:
            continue
        book.severity_scale = severity_scale
        if len(rows) == len(vehicle_ids) and bool((np.diff(rows) == 1).all()) and rows[0] == 0:
            # the usual batch: one partition, in offset order (the rows are the batch's)
            found = book.feed(
                where[0],
                where[1],
                vehicle_ids,
                timestamps,
                times,
                offsets.tolist(),
                scores,
                flags,
                dict(attributions),
                model_version,
            )
        else:
            position = {int(row): i for i, row in enumerate(rows.tolist())}
            found = book.feed(
                where[0],
                where[1],
                [vehicle_ids[row] for row in rows],
                [timestamps[row] for row in rows],
                times[rows],
                offsets.tolist(),
                scores[rows],
                flags[rows],
                {position[r]: a for r, a in attributions.items() if r in position},
                model_version,
            )
        for event in found:
            first = event.episode.first
            messages.append(
                Outgoing(
                    kind=Kind.ALERT,
                    topic=alert_topic,
                    key=event.vehicle_id.encode(),
                    value=event.encode(),
                    headers=(),
                    source_topic=first[0],
                    source_partition=first[1],
                    source_offset=first[2],
                )
            )
        events.extend(found)
    return messages, events
