"""The CPU cost of alert episodes in the worker's batch core, without a broker.

    .venv/bin/python -m bench.episodes_cost [--records 100000] [--repeat 5]

The pipeline benchmark's workload (``bench.pipeline_workload``: 500 vehicles, 2% anomalous
records, 8 features) and its context model go through :class:`consumer.processor.
BatchProcessor` in batches of 500 records of one partition, as the worker scores them, once
with an episode book per partition and once without, the two interleaved ``--repeat`` times
(CPU time of this process, which other processes on a shared machine disturb less);
the median seconds of each and their ratio are printed and written to
bench/results/episodes_cost.json. Publishing is not included: ``python -m bench.pipeline``
measures the whole worker with episodes on and off (``context+episodes``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.pipeline_workload import N_FEATURES, make_records, train_model
from consumer.processor import BatchProcessor
from consumer.wiring import episode_rules
from shared.context import ContextState
from shared.detector import Detector
from shared.episodes import EpisodeBook
from shared.settings import Settings
from shared.training_schemas import ModelMeta

RESULTS = Path(__file__).parent / "results" / "episodes_cost.json"
TOPIC = "telemetry.raw"
PARTITIONS = 3


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def batches(count: int) -> list[list[Record]]:
    """The workload split over three partitions by vehicle, in batches of 500 per partition."""
    values, keys = make_records(count, 1, 0.02)
    parts: dict[int, list[Record]] = {p: [] for p in range(PARTITIONS)}
    for value, key in zip(values, keys, strict=True):
        p = int(key[-4:]) % PARTITIONS
        parts[p].append(Record(TOPIC, p, len(parts[p]), key, value))
    out = []
    for records in parts.values():
        out += [records[i : i + 500] for i in range(0, len(records), 500)]
    out.sort(key=lambda b: (b[0].offset, b[0].partition))
    return out


def bench_detector(kind: str) -> Detector:
    """The pipeline benchmark's model of ``kind``, loaded as the worker loads it."""
    meta = ModelMeta(
        version="bench",
        created_at=datetime.now(UTC),
        n_features=N_FEATURES,
        record_count=2048,
        params={},
        sha256="0" * 64,
    )
    return Detector(meta, train_model(0, kind))


def one_pass(
    processor: BatchProcessor, detector: Detector, work: list[list[Record]], episodes: bool
) -> tuple[float, int]:
    """CPU seconds to process every batch (fresh state), and the alert events made."""
    states: dict[tuple[str, int], ContextState] = {}
    rules = episode_rules(Settings(_env_file=None))
    scale = 1.0 + float(detector.isolation_forest.offset_)
    books = {(TOPIC, p): EpisodeBook(rules, scale) for p in range(PARTITIONS)} if episodes else None
    events = 0
    started = time.process_time()
    for batch in work:
        outcome = processor.process(batch, detector, "2024-01-15T10:00:00Z", states, books)
        events += len(outcome.alerts)
    return time.process_time() - started, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    detector = bench_detector("context")
    processor = BatchProcessor(anomaly_topic="anomalies", dlq_topic="dlq", attribution_top_k=3)
    work = batches(args.records)
    one_pass(processor, detector, work[:6], True)  # compile and warm up
    samples: dict[str, list[float]] = {"off": [], "on": []}
    events = 0
    for repetition in range(args.repeat):
        order = ("off", "on") if repetition % 2 == 0 else ("on", "off")
        for name in order:
            seconds, made = one_pass(processor, detector, work, name == "on")
            samples[name].append(seconds)
            events = made if name == "on" else events
    off, on = statistics.median(samples["off"]), statistics.median(samples["on"])
    result: dict[str, Any] = {
        "records": args.records,
        "batches": len(work),
        "alert_events": events,
        "seconds_off": round(off, 3),
        "seconds_on": round(on, 3),
        "records_per_s_off": round(args.records / off),
        "records_per_s_on": round(args.records / on),
        "ratio_on_to_off": round(off / on, 3),
        "samples": {k: [round(s, 3) for s in v] for k, v in samples.items()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
