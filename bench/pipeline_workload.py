"""What the pipeline benchmarks feed the worker: telemetry records and published models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

from shared.context import ContextForest
from shared.registry import ModelRegistry

N_FEATURES = 8


def make_records(count: int, seed: int, anomaly_rate: float) -> tuple[list[bytes], list[bytes]]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(count, N_FEATURES))
    anomalous = rng.random(count) < anomaly_rate
    rows[anomalous] = rng.uniform(6, 9, size=(int(anomalous.sum()), N_FEATURES))
    values, keys = [], []
    for i in range(count):
        vehicle = f"VH-{i % 500:04d}"
        values.append(
            json.dumps(
                {
                    "vehicle_id": vehicle,
                    "timestamp": "2024-01-15T10:00:00Z",
                    "feature_vector": [round(float(x), 6) for x in rows[i]],
                }
            ).encode()
        )
        keys.append(vehicle.encode())
    return values, keys


# The worker refuses unsigned models unless told otherwise, as in production: the benchmark
# signs what it publishes and hands the worker the same key.
SIGNING_KEY = "bench-signing-key"


def train_model(seed: int, kind: str = "point") -> IsolationForest | ContextForest:
    """A point model (an IsolationForest of the readings) or a context model (``kind``)."""
    rng = np.random.default_rng(seed)
    if kind == "context":
        # 500 vehicles (the records' fleet), 40 readings each, one a second
        steps, vehicles = 40, 500
        ids = [f"VH-{v:04d}" for _ in range(steps) for v in range(vehicles)]
        times = np.repeat(1_705_312_800.0 + np.arange(steps), vehicles)
        rows = rng.normal(size=(steps * vehicles, N_FEATURES))
        return ContextForest(n_estimators=100, random_state=seed).fit(ids, times, rows)
    return IsolationForest(n_estimators=100, random_state=seed).fit(
        rng.normal(size=(2048, N_FEATURES))
    )


def publish_model(
    model_dir: Path,
    seed: int,
    model: IsolationForest | ContextForest | None = None,
    kind: str = "point",
) -> str:
    """Publish a model (``model``, or one trained now from ``seed``); returns its version."""
    model = model if model is not None else train_model(seed, kind)
    extra = {"detector": "context"} if isinstance(model, ContextForest) else None
    return (
        ModelRegistry(model_dir, signing_key=SIGNING_KEY.encode())
        .publish(
            model,
            n_features=N_FEATURES,
            record_count=2048,
            params={"n_estimators": 100},
            extra=extra,
        )
        .version
    )


# The latency run publishes its models from another process: training, pickling and writing
# a model in this one would hold the GIL that the verdict reader (and the load) need, and
# stamp verdicts late that the worker had answered in time.
_prepared: dict[int, IsolationForest | ContextForest] = {}


def prepare_model(seed: int, kind: str = "point") -> None:
    _prepared[seed] = train_model(seed, kind)


def publish_prepared(model_dir: str, seed: int) -> str:
    return publish_model(Path(model_dir), seed, _prepared.pop(seed))
