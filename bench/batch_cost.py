"""The CPU cost of a context model against a point model in the worker's batch core.

    .venv/bin/python -m bench.batch_cost [--records 100000] [--repeat 7]

The pipeline benchmark's workload (``bench.pipeline_workload``: 500 vehicles, 2% anomalous
records, 8 features) and its two models go through :class:`consumer.processor.BatchProcessor`
in batches of 500 records of one partition, as the worker scores them, without alert
episodes, each model from a fresh context state, the two interleaved ``--repeat`` times (CPU
time of this process, which other processes on a shared machine disturb less). Prints and
writes bench/results/batch_cost.json: the minimum and median microseconds a record of each,
their difference, and the throughput ratio that difference alone would leave a worker whose
point model runs at ``--point-records-per-s`` (``python -m bench.pipeline``'s figure) if given.
Consuming and publishing are not included: ``python -m bench.pipeline`` measures the worker.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.episodes_cost import batches, bench_detector, one_pass
from consumer.processor import BatchProcessor

RESULTS = Path(__file__).parent / "results" / "batch_cost.json"
KINDS = ("point", "context")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--point-records-per-s", type=float, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    models = {kind: bench_detector(kind) for kind in KINDS}
    processor = BatchProcessor(anomaly_topic="anomalies", dlq_topic="dlq", attribution_top_k=3)
    work = batches(args.records)
    for model in models.values():
        one_pass(processor, model, work[:6], False)  # compile and warm up
    samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for repetition in range(args.repeat):
        for kind in KINDS if repetition % 2 == 0 else KINDS[::-1]:
            samples[kind].append(one_pass(processor, models[kind], work, False)[0])
    per_record = {k: 1e6 * min(v) / args.records for k, v in samples.items()}
    extra = per_record["context"] - per_record["point"]
    result: dict[str, Any] = {
        "records": args.records,
        "batches": len(work),
        "us_per_record_min": {k: round(v, 2) for k, v in per_record.items()},
        "us_per_record_median": {
            k: round(1e6 * statistics.median(v) / args.records, 2) for k, v in samples.items()
        },
        "context_extra_us_per_record": round(extra, 2),
        "samples_seconds": {k: [round(s, 3) for s in v] for k, v in samples.items()},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if args.point_records_per_s:
        point_us = 1e6 / args.point_records_per_s
        result["ratio_from_the_core_alone"] = round(point_us / (point_us + extra), 3)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
