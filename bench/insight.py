"""The cost of explained verdicts, the drift watch and shadow scoring, in one run.

    .venv/bin/python -m bench.insight [--records 50000] [--batch 500] [--repeat 5]
                                      [--pipeline-records 100000] [--pipeline-repeat 3]
                                      [--detector point|context]

1. **The batch core.** The worker's own :class:`consumer.processor.BatchProcessor` (decode,
   score, build the verdicts) over the same raw Kafka values, with each feature off and on,
   interleaved: records/s and the ratio to the plain run. No I/O, so it isolates what each
   feature adds to the CPU work of a batch.
2. **End to end** (skipped with ``--pipeline-records 0``): ``python -m consumer`` against a
   local broker (``scripts/kafka-local``, or ``KAFKA_BOOTSTRAP_SERVERS``) reading the same
   pre-loaded topic, anomalies-only publishing, three ways: plain (``ATTRIBUTION_TOP_K=0``, a
   model without a drift reference), explained + drift (the defaults), and explained + drift
   + a shadow candidate. Records/s from the first to the last committed batch, median of the
   repeats, and the ratio to plain.

The model is an 8-feature, 100-tree IsolationForest trained with ``contamination=0.02`` on
the distribution the stream comes from, so about 2% of the records are anomalous (and
explained). Writes bench/results/insight.json.

``--detector context`` measures the batch core with context models instead (active and
candidate trained with their defaults on the same 50 vehicles' histories), each partition's
states kept from batch to batch as the worker keeps them, and the candidate's in states of
its own: the shadow's cost is then a second kernel pass and a second forest per record. The
end-to-end part measures point models only, so it needs ``--pipeline-records 0`` there.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from consumer.metrics import WorkerMetrics
from consumer.monitor import ModelMonitor
from consumer.processor import BatchProcessor, ContextStates
from consumer.state import WorkerState
from shared.detector import Detector
from shared.registry import ModelRegistry
from shared.settings import Settings
from shared.training import train_matrix
from shared.training_schemas import TrainingParams
from shared.worker_figures import ObservationStore

RESULTS = Path(__file__).parent / "results"
FEATURES = 8
SCORED_AT = "2024-01-15T10:00:01.000Z"


@dataclass(frozen=True, slots=True)
class Raw:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


VEHICLES = 50
START = datetime(2024, 1, 15, 10, tzinfo=UTC)
TRAINING_RECORDS = 20_000


def _vehicle(i: int) -> str:
    return f"VH-{i % VEHICLES:03d}"


def _timestamp(i: int) -> str:
    # one reading a second, each vehicle every VEHICLES seconds
    return (START + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_batches(records: int, batch: int, seed: int) -> list[list[Raw]]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(records, FEATURES))
    raws = [
        Raw(
            "telemetry.raw",
            i % 3,
            i,
            _vehicle(i).encode(),
            json.dumps(
                {
                    "vehicle_id": _vehicle(i),
                    "timestamp": _timestamp(i),
                    "feature_vector": row.tolist(),
                }
            ).encode(),
        )
        for i, row in enumerate(rows)
    ]
    return [raws[i : i + batch] for i in range(0, records, batch)]


def train(
    registry: ModelRegistry,
    settings: Settings,
    seed: int,
    activate: bool,
    detector: str = "point",
) -> Detector:
    rng = np.random.default_rng(100 + seed)
    params = (
        TrainingParams(detector="point", n_estimators=100, contamination=0.02, random_state=seed)
        if detector == "point"
        else TrainingParams(detector="context", n_estimators=100, random_state=seed)
    )
    answer = train_matrix(
        registry,
        rng.normal(size=(TRAINING_RECORDS, FEATURES)),
        params,
        settings,
        activate=activate,
        feature_names=[f"sensor_{j}" for j in range(FEATURES)],
        vehicle_ids=[_vehicle(i) for i in range(TRAINING_RECORDS)],
        timestamps=[_timestamp(i) for i in range(TRAINING_RECORDS)],
    )
    loaded = registry.load(answer.model_version)
    return Detector.from_loaded(loaded)


def _fresh_states(detector: Detector | None) -> ContextStates | None:
    """Empty per-partition states for a context model; none for a point model (or none)."""
    return {} if detector is not None and detector.kind == "context" else None


def _anomaly_rate(batches: list[list[Raw]], detector: Detector) -> float:
    """The share of the records the active model flags (in their vehicles' context)."""
    processor = BatchProcessor(
        anomaly_topic="telemetry.anomalies", dlq_topic="telemetry.dlq", attribution_top_k=0
    )
    contexts = _fresh_states(detector)
    flagged = sum(
        processor.process(batch, detector, SCORED_AT, contexts).anomalies for batch in batches
    )
    return flagged / sum(len(b) for b in batches)


def run(
    core: tuple[BatchProcessor, ModelMonitor | None], batches: list[list[Raw]], detector: Detector
) -> float:
    processor, monitor = core
    # (the processor scores the shadow candidate, as in the worker; the monitor counts)
    shadow = monitor.state.shadow if monitor is not None else None
    # a context model's states per partition, and a context candidate's of its own (kept
    # from batch to batch, as the worker keeps them; fresh for each run)
    contexts, shadow_contexts = _fresh_states(detector), _fresh_states(shadow)
    started = time.perf_counter()
    for batch in batches:
        outcome = processor.process(
            batch,
            detector,
            SCORED_AT,
            contexts,
            shadow=shadow,
            shadow_contexts=shadow_contexts,
        )
        if monitor is not None and outcome.scored:
            monitor.observe(detector, outcome.features, outcome.scores, outcome.shadow_scores)
    return sum(len(b) for b in batches) / (time.perf_counter() - started)


async def end_to_end(batches: list[list[Raw]], repeat: int) -> dict[str, Any]:
    """Worker throughput through a real broker: plain, explained + drift, + shadow."""
    import asyncio

    from bench.pipeline import broker, create_topics, preload, worker_throughput

    values = [r.value or b"" for batch in batches for r in batch]
    keys = [r.key or b"" for batch in batches for r in batch]
    with tempfile.TemporaryDirectory(prefix="bench-insight-") as tmp:
        workdir = Path(tmp)
        dirs = {name: workdir / name for name in ("plain", "explained_drift", "with_shadow")}
        for name in ("explained_drift", "with_shadow"):
            settings = Settings(model_dir=dirs[name], _env_file=None)
            registry = ModelRegistry(dirs[name])
            active = train(registry, settings, seed=1, activate=True)
            if name == "with_shadow":
                train(registry, settings, seed=2, activate=False)
        # plain: the same fitted trees, published without a drift reference
        ModelRegistry(dirs["plain"]).publish(
            active.estimator, n_features=FEATURES, record_count=20_000, params={}
        )
        env = {
            "plain": {"ATTRIBUTION_TOP_K": "0"},
            "explained_drift": {"ATTRIBUTION_TOP_K": "3"},
            "with_shadow": {"ATTRIBUTION_TOP_K": "3"},
        }
        async with broker(workdir) as bootstrap:
            suffix = uuid.uuid4().hex[:6]
            topics = {k: f"bench-insight-{k}-{suffix}" for k in ("telemetry", "anomalies", "dlq")}
            await create_topics(bootstrap, list(topics.values()))
            await preload(bootstrap, topics["telemetry"], values, keys)
            samples: dict[str, list[dict[str, Any]]] = {name: [] for name in dirs}
            for repetition in range(repeat):
                order = list(dirs) if repetition % 2 == 0 else list(dirs)[::-1]
                for name in order:
                    outcome = await worker_throughput(
                        bootstrap, topics, dirs[name], workdir, len(values), **env[name]
                    )
                    samples[name].append(outcome)
                    print(f"{name}: {outcome['records_per_s']} records/s", file=sys.stderr)
                    await asyncio.sleep(0)
    medians = {
        name: statistics.median(run["records_per_s"] for run in runs)
        for name, runs in samples.items()
    }
    return {
        "records": len(values),
        "repeat": repeat,
        "results": [
            {
                "variant": name,
                "records_per_s": round(medians[name]),
                "samples_records_per_s": [run["records_per_s"] for run in samples[name]],
                "vs_plain": round(medians[name] / medians["plain"], 3),
                "cost_percent": round(100 * (1 - medians[name] / medians["plain"]), 1),
            }
            for name in samples
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pipeline-records", type=int, default=100_000)
    parser.add_argument("--pipeline-repeat", type=int, default=3)
    parser.add_argument("--detector", choices=("point", "context"), default="point")
    parser.add_argument("--out", type=Path, default=RESULTS / "insight.json")
    args = parser.parse_args(argv)
    if args.detector == "context" and args.pipeline_records > 0:
        parser.error("the end-to-end part measures point models: pass --pipeline-records 0")

    with tempfile.TemporaryDirectory() as root:
        settings = Settings(model_dir=Path(root), _env_file=None)
        registry = ModelRegistry(settings.model_dir)
        active = train(registry, settings, seed=1, activate=True, detector=args.detector)
        candidate = train(registry, settings, seed=2, activate=False, detector=args.detector)
        batches = make_batches(args.records, args.batch, seed=7)
        anomaly_rate = _anomaly_rate(batches, active)

        def processor(
            top_k: int, drift: bool, shadow: bool
        ) -> tuple[BatchProcessor, ModelMonitor | None]:
            state = WorkerState(detector=active, shadow=candidate if shadow else None)
            monitor = None
            if drift or shadow:
                monitor = ModelMonitor(
                    state, WorkerMetrics(), settings, ObservationStore(root), "bench"
                )
                if not drift:  # shadow alone: no window to fill
                    monitor.window_version = active.version
            core = BatchProcessor(
                anomaly_topic="telemetry.anomalies",
                dlq_topic="telemetry.dlq",
                attribution_top_k=top_k,
            )
            return core, monitor

        variants: dict[str, dict[str, Any]] = {
            "plain": {"top_k": 0, "drift": False, "shadow": False},
            "attribution": {"top_k": 3, "drift": False, "shadow": False},
            "drift": {"top_k": 0, "drift": True, "shadow": False},
            "shadow": {"top_k": 0, "drift": False, "shadow": True},
            "all": {"top_k": 3, "drift": True, "shadow": True},
        }
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for options in variants.values():  # warm-up (numba, caches)
            run(processor(**options), batches[:4], active)
        for _ in range(args.repeat):  # interleaved, so drifts in machine load hit all alike
            for name, options in variants.items():
                rates[name].append(run(processor(**options), batches, active))

    medians = {name: statistics.median(values) for name, values in rates.items()}
    results = [
        {
            "variant": name,
            "records_per_s": round(medians[name]),
            "vs_plain": round(medians[name] / medians["plain"], 3),
            "cost_percent": round(100 * (1 - medians[name] / medians["plain"]), 1),
        }
        for name in variants
    ]
    print(
        f"{args.records} records, batches of {args.batch}, {anomaly_rate:.2%} anomalous, "
        f"median of {args.repeat}"
    )
    print(f"{'variant':<12} {'records/s':>10} {'vs plain':>9} {'cost':>7}")
    for row in results:
        print(
            f"{row['variant']:<12} {row['records_per_s']:>10,} {row['vs_plain']:>9.3f} "
            f"{row['cost_percent']:>6.1f}%"
        )
    pipeline: dict[str, Any] | None = None
    if args.pipeline_records > 0:
        import asyncio

        stream = make_batches(args.pipeline_records, args.batch, seed=8)
        pipeline = asyncio.run(end_to_end(stream, args.pipeline_repeat))
        print(f"\nend to end, {pipeline['records']} records, median of {args.pipeline_repeat}")
        for row in pipeline["results"]:
            print(
                f"{row['variant']:<16} {row['records_per_s']:>10,} {row['vs_plain']:>9.3f} "
                f"{row['cost_percent']:>6.1f}%   runs: {row['samples_records_per_s']}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "insight",
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": {"python": platform.python_version(), "cpus": _cpus()},
                "detector": args.detector,
                "records": args.records,
                "batch": args.batch,
                "repeat": args.repeat,
                "anomaly_rate": round(anomaly_rate, 4),
                "results": results,
                "end_to_end": pipeline,
            },
            indent=2,
        )
        + "\n"
    )
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
