"""The pipeline benchmark's workers can load the models it publishes: signed, with the key."""

from __future__ import annotations

from pathlib import Path

from bench.pipeline_throughput import Worker
from bench.pipeline_workload import SIGNING_KEY, publish_model
from shared.detector import load_detector
from shared.registry import ModelRegistry


def test_a_published_benchmark_model_loads_under_the_workers_key(tmp_path: Path) -> None:
    """The worker refuses unsigned models; the benchmark signs and hands over the same key."""
    version = publish_model(tmp_path, seed=0)
    worker = Worker(
        "127.0.0.1:9", {"telemetry": "t", "anomalies": "a", "dlq": "d"}, tmp_path, tmp_path / "log"
    )
    key = worker.env["MODEL_SIGNING_KEY"]
    assert key == SIGNING_KEY
    assert (
        load_detector(ModelRegistry(tmp_path, signing_key=key.encode()), version).version == version
    )
