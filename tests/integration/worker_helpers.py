"""Helpers for the worker's integration tests: models, telemetry, worker processes, coverage.

:func:`publish_model` trains and activates a small model; :func:`telemetry` makes valid records;
:class:`WorkerProcess` runs ``python -m consumer`` (or a test wrapper of it); :func:`running_worker` runs the app
in-process; :func:`collect_outputs` reads verdicts and dead letters by the offset they answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sklearn.ensemble import IsolationForest

from shared.settings import Settings
from tests.integration.broker import free_ports
from tests.integration.kafka_helpers import Record, to_record
from tests.integration.signing import SIGNING_KEY, signed_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
N_FEATURES = 4

# --- models and telemetry -----------------------------------------------------------------


def publish_model(
    model_dir: Path, seed: int = 0, n_features: int = N_FEATURES, n_estimators: int = 25
) -> tuple[str, IsolationForest]:
    """Train a small IsolationForest and publish it as the active version."""
    rng = np.random.default_rng(seed)
    model = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(
        rng.normal(size=(256, n_features))
    )
    meta = signed_registry(model_dir).publish(
        model, n_features=n_features, record_count=256, params={"n_estimators": n_estimators}
    )
    return meta.version, model


def record_value(vehicle_id: str, features: Iterable[float], timestamp: str | None = None) -> bytes:
    return json.dumps(
        {
            "vehicle_id": vehicle_id,
            "timestamp": timestamp or "2024-01-15T10:00:00Z",
            "feature_vector": list(features),
        }
    ).encode()


def telemetry(
    count: int, *, seed: int = 1, vehicles: int = 20, anomaly_every: int = 25, start: int = 0
) -> tuple[list[bytes], list[bytes]]:
    """``count`` valid records (values, keys); every ``anomaly_every``-th one is far out."""
    rng = np.random.default_rng(seed)
    values, keys = [], []
    for i in range(start, start + count):
        vehicle = f"VH-{i % vehicles:03d}"
        row = rng.normal(size=N_FEATURES)
        if anomaly_every and i % anomaly_every == 0:
            row = row * 0 + 8.0
        values.append(record_value(vehicle, row.tolist()))
        keys.append(vehicle.encode())
    return values, keys


def features_of(value: bytes) -> list[float]:
    return list(json.loads(value)["feature_vector"])


# --- settings and processes -----------------------------------------------------------------


@dataclass(frozen=True)
class Topics:
    telemetry: str
    anomalies: str
    dlq: str
    group: str
    alerts: str = ""  # the alert episodes' topic; unset: the worker's default

    @property
    def all(self) -> list[str]:
        return [self.telemetry, self.anomalies, self.dlq, *([self.alerts] if self.alerts else [])]


def worker_env(
    bootstrap: str, topics: Topics, model_dir: Path, port: int, **extra: Any
) -> dict[str, str]:
    """Environment of a worker process (its settings, ``CONSUMER_*`` included)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KAFKA_", "CONSUMER_", "MODEL_", "PUBLISH_", "BATCH_"))
    }
    env.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TELEMETRY_TOPIC": topics.telemetry,
            "ANOMALY_TOPIC": topics.anomalies,
            "DLQ_TOPIC": topics.dlq,
            "CONSUMER_GROUP": topics.group,
            **({"ALERT_TOPIC": topics.alerts} if topics.alerts else {}),
            "MODEL_DIR": str(model_dir),
            "MODEL_SIGNING_KEY": SIGNING_KEY,
            "MODEL_POLL_SECONDS": "0.2",
            "CONSUMER_PORT": str(port),
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "INFO",
        }
    )
    env.update({key.upper(): str(value) for key, value in extra.items()})
    return env


def worker_settings(bootstrap: str, topics: Topics, model_dir: Path, **extra: Any) -> Settings:
    """Settings for an in-process worker (no ``.env`` file read)."""
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        telemetry_topic=topics.telemetry,
        anomaly_topic=topics.anomalies,
        dlq_topic=topics.dlq,
        consumer_group=topics.group,
        model_dir=model_dir,
        model_poll_seconds=0.2,
        _env_file=None,
        **extra,
    )


class WorkerProcess:
    """``python -m consumer`` as a subprocess, with its log in a file and HTTP on a free port.

    ``module`` runs another entry module instead (``tests.integration.slow_worker``).
    """

    def __init__(
        self, env: Mapping[str, str], log_path: Path, cwd: Path, module: str = "consumer"
    ) -> None:
        self.env = dict(env)
        self.module = module
        self.port = int(self.env["CONSUMER_PORT"])
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def make(
        cls,
        bootstrap: str,
        topics: Topics,
        model_dir: Path,
        workdir: Path,
        name: str,
        *,
        module: str = "consumer",
        **extra: Any,
    ) -> WorkerProcess:
        (port,) = free_ports(1)
        env = worker_env(bootstrap, topics, model_dir, port, **extra)
        return cls(env, workdir / f"{name}.log", workdir, module)

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def get(self, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(timeout=3.0) as client:
                return await client.get(f"http://127.0.0.1:{self.port}{path}")
        except httpx.HTTPError:
            return None

    async def health(self) -> dict[str, Any] | None:
        response = await self.get("/health")
        return response.json() if response is not None and response.status_code == 200 else None

    async def wait_for(self, predicate: Any, timeout: float, what: str) -> dict[str, Any]:  # noqa: ASYNC109
        """Poll /health until ``predicate(health)`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited while waiting for {what}:\n{self.tail()}")
            health = await self.health()
            if health is not None and predicate(health):
                return health
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker: no {what} within {timeout}s:\n{self.tail()}")

    async def wait_ready(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited before it was ready:\n{self.tail()}")
            response = await self.get("/health/ready")
            if response is not None and response.status_code == 200:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.tail()}")

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if self.process is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
        return self.process.wait(10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.asynccontextmanager
async def stopping(*workers: WorkerProcess) -> AsyncIterator[None]:
    """Stop every worker (by its own pid) when the block ends, however it ends."""
    try:
        yield
    finally:
        for worker in workers:
            worker.stop()


# --- what the worker produced -----------------------------------------------------------------


@dataclass
class Outputs:
    """Verdicts and dead letters by the (partition, offset) of the record they answer."""

    verdicts: dict[tuple[int, int], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    verdict_records: dict[tuple[int, int], list[Record]] = field(
        default_factory=lambda: defaultdict(list)
    )
    dead_letters: dict[tuple[int, int], list[Record]] = field(
        default_factory=lambda: defaultdict(list)
    )

    def add(self, record: Record, anomalies: str) -> None:
        if record.topic == anomalies:
            body = json.loads(record.value or b"{}")
            where = (body["source"]["partition"], body["source"]["offset"])
            self.verdicts[where].append(body)
            self.verdict_records[where].append(record)
        else:
            headers = dict(record.headers)
            where = (int(headers["source_partition"]), int(headers["source_offset"]))
            self.dead_letters[where].append(record)

    def answered(self) -> set[tuple[int, int]]:
        return set(self.verdicts) | set(self.dead_letters)

    def duplicates(self) -> int:
        return sum(len(v) - 1 for v in self.verdicts.values()) + sum(
            len(v) - 1 for v in self.dead_letters.values()
        )

    def total(self) -> int:
        return sum(len(v) for v in self.verdicts.values()) + sum(
            len(v) for v in self.dead_letters.values()
        )


async def collect_outputs(
    bootstrap: str,
    topics: Topics,
    expected: set[tuple[int, int]],
    timeout: float = 60,  # noqa: ASYNC109
    settle: float = 1.0,
) -> Outputs:
    """Read the anomaly and dead-letter topics until every expected offset is answered.

    Then polls ``settle`` seconds more for late duplicates. Returns what arrived even when
    some offsets are still unanswered at ``timeout`` (the caller asserts).
    """
    consumer = AIOKafkaConsumer(
        topics.anomalies,
        topics.dlq,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    outputs = Outputs()
    try:
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if settle_until is None and expected <= outputs.answered():
                settle_until = now + settle
            if now > deadline or (settle_until is not None and now > settle_until):
                break
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                for message in messages:
                    outputs.add(to_record(message), topics.anomalies)
    finally:
        await consumer.stop()
    return outputs


async def group_offsets(
    bootstrap: str,
    group: str,
    timeout: float = 20,  # noqa: ASYNC109
) -> dict[TopicPartition, int]:
    """The group's committed offsets ({} when the group never committed), retrying briefly."""
    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
            return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        except KafkaError:
            if time.monotonic() > deadline:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(0.3)


async def list_groups(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return {group[0] for group in await admin.list_consumer_groups()}
    finally:
        await admin.close()


def expected_offsets(metas: Iterable[Any]) -> set[tuple[int, int]]:
    return {(meta.partition, meta.offset) for meta in metas}


# --- an in-process worker -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, *, span_exporter: Any = None) -> AsyncIterator[Any]:
    """Run the worker app's lifespan in this event loop; yields its :class:`Worker`."""
    from consumer.app import create_app

    app = create_app(settings, span_exporter=span_exporter)
    async with app.start_lifespan_context():
        yield app.worker  # type: ignore[attr-defined]  # create_app hangs the worker on the app


async def asgi_get(worker: Any, path: str) -> httpx.Response:
    """GET ``path`` from an in-process worker's ASGI app."""
    transport = httpx.ASGITransport(app=worker.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        return await client.get(path)


async def wait_until(predicate: Any, timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout}s")
        await asyncio.sleep(0.05)
