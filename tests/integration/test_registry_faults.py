"""Pointer files that name no version, and a read-only model directory: real files, real HTTP.

The worker (a real process on a real broker) keeps hot reload and its clean shutdown when
``LATEST`` holds bytes that are not UTF-8; the api answers a publish that finished with 201
even when ``CANDIDATE`` is garbage, and a read-only directory with a 503 that says so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.registry import ModelRegistry
from tests.integration.api_helpers import AUTH, Server
from tests.integration.kafka_helpers import produce
from tests.integration.test_faults import figures
from tests.integration.worker_helpers import (
    Topics,
    WorkerProcess,
    collect_outputs,
    expected_offsets,
    publish_model,
    stopping,
    telemetry,
)

NOT_UTF8 = b"\xff\xfe\x00garbage"
INGEST = {
    "records": [
        {
            "vehicle_id": f"VH-{i:03d}",
            "timestamp": "2024-01-15T10:00:00Z",
            "feature_vector": [0.5 + i / 100, 0.3, 0.8, 1.2],
        }
        for i in range(40)
    ],
    "params": {"detector": "point", "n_estimators": 10},
}


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` refuses new entries (chmod, or the immutable flag for root)."""
    as_root = os.geteuid() == 0
    command = ["chattr", "+i", str(directory)]
    if as_root:
        if subprocess.run(command, check=False, capture_output=True).returncode != 0:
            pytest.skip("cannot make a directory read-only here (chattr +i failed)")
    else:
        directory.chmod(0o555)
    try:
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(directory)], check=False, capture_output=True)
        else:
            directory.chmod(0o755)


async def test_a_latest_that_is_not_utf8_leaves_hot_reload_and_shutdown_working(
    kafka_bootstrap: str, topics: Topics, model_dir: Path, tmp_path: Path
) -> None:
    """Bad LATEST bytes: reported in /health; the next version loads; SIGTERM exits 0."""
    first, _ = publish_model(model_dir, seed=0)
    worker = WorkerProcess.make(
        kafka_bootstrap, topics, model_dir, tmp_path, "w1", publish_all_verdicts="true"
    )
    async with stopping(worker):
        worker.start()
        await worker.wait_ready(90)
        (model_dir / "LATEST").write_bytes(NOT_UTF8)
        health = await worker.wait_for(lambda h: h.get("registry_error"), 30, "a registry error")
        assert "UTF-8" in health["registry_error"]
        assert health["model_version"] == first
        second, _ = publish_model(model_dir, seed=1)
        changed = time.monotonic()
        await worker.wait_for(lambda h: h["model_version"] == second, 30, "the new version")
        reload_seconds = time.monotonic() - changed
        values, keys = telemetry(300)
        metas = await produce(kafka_bootstrap, topics.telemetry, values, keys=keys)
        outputs = await collect_outputs(kafka_bootstrap, topics, expected_offsets(metas), 60)
        after = await worker.health()
        assert after is not None and after["registry_error"] is None
        worker.signal(signal.SIGTERM)
        code = worker.wait(60)
    figures("LATEST not UTF-8", expected_offsets(metas), outputs, reload_seconds)

    assert code in (0, -signal.SIGTERM), worker.tail()
    assert "Application shutdown failed" not in worker.log_path.read_text()
    assert outputs.answered() == expected_offsets(metas)
    versions = {v["model_version"] for vs in outputs.verdicts.values() for v in vs}
    assert versions == {second}


def test_ingest_after_a_garbage_candidate_answers_the_finished_publish(api: Server) -> None:
    """CANDIDATE holds no version name: the publish still answers 201 and LATEST moved."""
    with httpx.Client(base_url=api.base_url, timeout=120) as client:
        assert client.post("/ingest", json=INGEST, headers=AUTH).status_code == 201
        (api.model_dir / "CANDIDATE").write_bytes(NOT_UTF8)
        answer = client.post("/ingest", json=INGEST, headers=AUTH)
        assert answer.status_code == 201, answer.text
        assert ModelRegistry(api.model_dir).active_version() == answer.json()["model_version"]
        assert client.get("/health").status_code == 200
        (api.model_dir / "LATEST").write_bytes(NOT_UTF8)
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json()["status"] == "degraded"


def test_ingest_into_a_read_only_model_directory_is_a_503_that_says_so(api: Server) -> None:
    """A directory that refuses new versions answers problem+json 503 naming it read-only."""
    api.model_dir.mkdir(parents=True, exist_ok=True)
    with httpx.Client(base_url=api.base_url, timeout=120) as client, read_only(api.model_dir):
        answer = client.post("/ingest", json=INGEST, headers=AUTH)
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "read-only" in answer.json()["detail"]
