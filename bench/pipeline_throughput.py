"""Throughput: a bare consumer as the baseline, and the worker as a process read by /health."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.pipeline_broker import REPO, free_port
from bench.pipeline_workload import SIGNING_KEY


async def baseline(
    bootstrap: str, topic: str, total: int, *, background_commit: bool = False
) -> dict[str, Any]:
    """A bare consumer: read everything, commit after each batch (awaited, or in background)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-baseline-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen = 0
    first: float | None = None
    pending: dict[TopicPartition, int] = {}
    committer: asyncio.Task[None] | None = None

    async def commit_behind() -> None:
        while pending:
            offsets = dict(pending)
            pending.clear()
            await consumer.commit(offsets)

    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batches:
                continue
            first = first or time.perf_counter()
            seen += sum(len(records) for records in batches.values())
            if not background_commit:
                await consumer.commit()
                continue
            for tp, records in batches.items():
                pending[tp] = records[-1].offset + 1
            if committer is None or committer.done():
                committer = asyncio.create_task(commit_behind())
        if committer is not None:
            await committer
        elapsed = time.perf_counter() - (first or time.perf_counter())
    finally:
        await consumer.stop()
    return {"records": seen, "seconds": round(elapsed, 3), "records_per_s": round(seen / elapsed)}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, with every run's rate in ``samples_records_per_s``."""
    outcome = dict(sorted(runs, key=lambda run: run["records_per_s"])[len(runs) // 2])
    outcome["samples_records_per_s"] = [run["records_per_s"] for run in runs]
    return outcome


# --- the worker as a process ---------------------------------------------------------------------


class Worker:
    def __init__(
        self, bootstrap: str, topics: dict[str, str], model_dir: Path, log: Path, **extra: str
    ) -> None:
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CONSUMER_"))},
            "PYTHONPATH": str(REPO),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TELEMETRY_TOPIC": topics["telemetry"],
            "ANOMALY_TOPIC": topics["anomalies"],
            "DLQ_TOPIC": topics["dlq"],
            "CONSUMER_GROUP": f"bench-worker-{uuid.uuid4().hex[:6]}",
            "MODEL_DIR": str(model_dir),
            "CONSUMER_PORT": str(self.port),
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "WARNING",
            "MODEL_SIGNING_KEY": SIGNING_KEY,
            **extra,
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "consumer"],
                env=self.env,
                cwd=self.log.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    async def health(self) -> dict[str, Any] | None:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}/health")
            return response.json() if response.status_code == 200 else None
        except httpx.HTTPError:
            return None

    async def wait_for(self, predicate: Any, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[
                -3000:
            ]
            health = await self.health()
            if health is not None and predicate(health):
                return health
            await asyncio.sleep(0.1)
        raise TimeoutError(f"worker condition not met in {timeout}s; log: {self.log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


async def worker_throughput(
    bootstrap: str, topics: dict[str, str], model_dir: Path, workdir: Path, total: int, **extra: str
) -> dict[str, Any]:
    """Records/s between the first and the last committed batch (process start-up excluded)."""
    name = "-".join(f"{k}={v}" for k, v in extra.items()).lower().replace("_", "")
    name = "".join(c if c.isalnum() or c in "=-." else "_" for c in name)
    worker = Worker(bootstrap, topics, model_dir, workdir / f"worker-{name}.log", **extra).start()
    try:
        first = await worker.wait_for(lambda h: h["records"] > 0, 120)
        t0, r0 = time.perf_counter(), first["records"]
        last = await worker.wait_for(lambda h: h["records"] >= total, 600)
        elapsed = time.perf_counter() - t0
        done = last["records"] - r0
        return {
            "records": last["records"],
            "verdicts_published": last["verdicts_published"],
            "dead_letters": last["dead_letters"],
            "batches": last["batches_processed"],
            "measured_records": done,
            "seconds": round(elapsed, 3),
            "records_per_s": round(done / elapsed),
        }
    finally:
        worker.stop()
