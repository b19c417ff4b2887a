"""A :class:`shared.topic_training.TopicReader` in memory, for the runner's and the api's tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.errors import TopicTrainingError
from shared.jobs import JobProgress
from shared.topic_training import ProgressHook, TopicRecords, TopicTrainingSpec

FIRST_TIMESTAMP_MS = 1_700_000_000_000


def record_value(vector: list[float]) -> bytes:
    """A raw telemetry record's value with this feature vector."""
    return json.dumps(
        {"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z", "feature_vector": vector}
    ).encode()


@dataclass
class FakeTopicReader:
    """Answers ``values`` as one partition's records, after ``gate`` opens and ``delay`` s.

    ``error``, when set, is raised instead; ``calls`` keeps each read's spec and ``now``.
    """

    values: Sequence[bytes | None] = field(default_factory=list)
    gate: asyncio.Event | None = None
    delay: float = 0.0
    error: TopicTrainingError | None = None
    calls: list[tuple[TopicTrainingSpec, datetime, int]] = field(default_factory=list)

    async def read(
        self,
        spec: TopicTrainingSpec,
        progress: JobProgress,
        *,
        now: datetime,
        max_records: int,
        on_progress: ProgressHook | None = None,
    ) -> TopicRecords:
        """The reader's port: progress as a real read reports it, then the records."""
        self.calls.append((spec, now, max_records))
        progress.phase = "reading"
        progress.records_expected = len(self.values)
        if on_progress is not None:
            on_progress()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        found = TopicRecords(last=spec.last)
        for offset, value in enumerate(self.values):
            found.timestamps.append(FIRST_TIMESTAMP_MS + offset)
            found.partitions.append(0)
            found.offsets.append(offset)
            found.values.append(value)
        progress.records_read = len(self.values)
        return found
