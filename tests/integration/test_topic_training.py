"""POST /ingest/from-topic against a real broker, through `python -m api` over real HTTP.

Records are produced with chosen Kafka timestamps (an hour ago and later), so every test knows
the training order, (Kafka timestamp, partition, offset), of what it produced; the equality
tests post the same records in that order to POST /ingest and compare the two models'
offline scores of a probe (``score_records`` for a context model) with ==.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
from aiokafka import AIOKafkaProducer

from shared.context import ContextForest
from tests.integration.signing import SIGNING_KEY
from tests.integration.worker_helpers import Topics

API_KEY = "topic-training-key"
AUTH = {"X-API-Key": API_KEY}
PARAMS = {"n_estimators": 50, "random_state": 42}


@dataclass(frozen=True)
class Sent:
    """One produced record: where it landed and what it holds."""

    timestamp: int
    partition: int
    offset: int
    value: bytes | None

    @property
    def order(self) -> tuple[int, int, int]:
        return (self.timestamp, self.partition, self.offset)


@dataclass
class Api:
    base_url: str
    model_dir: Path
    log: Path
    client: httpx.AsyncClient

    async def train_from_topic(
        self, body: dict[str, Any], *, activate: bool = True, within: float = 120
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Start a job and poll its report until it ends: (final report, every report seen)."""
        accepted = await self.client.post(
            "/ingest/from-topic", params={"activate": str(activate).lower()}, json=body
        )
        assert accepted.status_code == 202, accepted.text
        location = accepted.headers["location"]
        assert location == f"/jobs/{accepted.json()['job_id']}"
        seen = [accepted.json()]
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            response = await self.client.get(location)
            assert response.status_code == 200, response.text
            seen.append(response.json())
            if seen[-1]["status"] in ("succeeded", "failed"):
                return seen[-1], seen
            await asyncio.sleep(0.02)
        raise AssertionError(f"the job did not end in {within} s: {seen[-1]}\n{self.log_tail()}")

    async def ingest(self, values: Sequence[bytes | None], **params: Any) -> dict[str, Any]:
        """POST /ingest with these records, in this order."""
        body = {
            "records": [json.loads(v) for v in values if v is not None],
            "params": params or PARAMS,
        }
        response = await self.client.post("/ingest", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def scores(self, version: str, probe: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The version's offline scores of the probe (a context model's: as a stream of five
        vehicles, one record a second)."""
        model = joblib.load(self.model_dir / version / "model.joblib")
        scores: np.ndarray[Any, Any]
        if isinstance(model, ContextForest):
            ids = [f"VH-{i % 5}" for i in range(probe.shape[0])]
            times = 1_705_312_800.0 + np.arange(probe.shape[0], dtype=np.float64)
            scores = model.score_records(ids, times, probe)
        else:
            scores = model.decision_function(probe)
        return scores

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def run_api(tmp: Path, bootstrap: str, topics: Topics, **env: str) -> AsyncIterator[Api]:
    """`python -m api` for these topics, stopped with SIGTERM on exit."""
    port = _free_port()
    variables = {
        **os.environ,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_KEYS": API_KEY,
        "AUTH_DISABLED": "false",
        "MODEL_DIR": str(tmp / "models"),
        "MODEL_SIGNING_KEY": SIGNING_KEY,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TELEMETRY_TOPIC": topics.telemetry,
        "ANOMALY_TOPIC": topics.anomalies,
        "LOG_FORMAT": "json",
        "RATE_LIMIT_PER_SECOND": "10000",
        "RATE_LIMIT_BURST": "10000",
        **env,
    }
    log = tmp / "api.log"
    process = _spawn(variables, tmp, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=120) as client:
            deadline = time.monotonic() + 180
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the api exited:\n{log.read_text()}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the api did not start:\n{log.read_text()}")
                await asyncio.sleep(0.1)
            yield Api(base_url, tmp / "models", log, client)
    finally:
        _stop(process)


def _spawn(env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "api"], env=env, cwd=cwd, stdout=sink, stderr=sink
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def record_value(vehicle: str, vector: Sequence[float]) -> bytes:
    return json.dumps(
        {"vehicle_id": vehicle, "timestamp": "2024-01-15T10:00:00Z", "feature_vector": list(vector)}
    ).encode()


async def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes | None],
    timestamps: Sequence[int],
    keys: Sequence[str | None] | None = None,
) -> list[Sent]:
    """Send ``values`` with these Kafka timestamps (keyed, so spread over the partitions)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        futures = []
        for i, value in enumerate(values):
            key = keys[i] if keys is not None else f"VH-{i % 23}"
            futures.append(
                await producer.send(
                    topic,
                    value=value,
                    key=key.encode() if key is not None else None,
                    timestamp_ms=timestamps[i],
                )
            )
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [
        Sent(timestamps[i], meta.partition, meta.offset, values[i]) for i, meta in enumerate(metas)
    ]


def base_ms() -> int:
    """An hour ago: recent enough for the topic's retention, in the past for the broker."""
    return (int(time.time()) - 3600) * 1000


def in_order(sent: Sequence[Sent]) -> list[Sent]:
    """The documented training order."""
    return sorted(sent, key=lambda s: s.order)


def rows(count: int, width: int, seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).normal(size=(count, width)).round(6)


PROBE = np.random.default_rng(99).normal(size=(500, 4)) * 2


async def assert_same_model(api: Api, report: dict[str, Any], ordered: Sequence[Sent]) -> None:
    """The job's version == POST /ingest of these records in this order, to the last bit."""
    assert report["status"] == "succeeded", report
    from_topic = report["result"]
    from_ingest = await api.ingest([s.value for s in ordered])
    assert from_topic["record_count"] == from_ingest["record_count"] == len(ordered)
    assert from_topic["n_features"] == from_ingest["n_features"]
    assert from_topic["params"] == from_ingest["params"]
    topic_scores = api.scores(from_topic["model_version"], PROBE)
    ingest_scores = api.scores(from_ingest["model_version"], PROBE)
    assert np.array_equal(topic_scores, ingest_scores)
    topic_meta = json.loads((api.model_dir / from_topic["model_version"] / "meta.json").read_text())
    ingest_meta = json.loads(
        (api.model_dir / from_ingest["model_version"] / "meta.json").read_text()
    )
    assert topic_meta["record_count"] == ingest_meta["record_count"]
    assert topic_meta["n_features"] == ingest_meta["n_features"]
    assert topic_meta["reference"] == ingest_meta["reference"]


# --- the tests ------------------------------------------------------------------------------


async def test_training_from_the_topic_equals_posting_the_records_in_order(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """Timestamps out of offset order and tied across partitions: the documented order decides,
    and it gives exactly POST /ingest's model; another order gives another model."""
    count = 3000
    data = rows(count, 4, seed=1)
    values = [record_value(f"VH-{i % 23}", r) for i, r in enumerate(data)]
    # shuffled timestamps, seven records per millisecond: ties broken by partition, then offset
    stamps = [base_ms() + int(t) // 7 for t in np.random.default_rng(2).permutation(count)]
    sent = await produce(kafka_bootstrap, topics.telemetry, values, stamps)
    async with run_api(tmp_path, kafka_bootstrap, topics) as api:
        names = ["speed", "rpm", "temp", "oil"]
        report, _ = await api.train_from_topic(
            {"last": 10_000, "params": PARAMS, "feature_names": names}
        )
        version = report["result"]["model_version"]
        meta = json.loads((api.model_dir / version / "meta.json").read_text())
        assert meta["feature_names"] == names  # verdicts' attributions will name them
        progress = report["progress"]
        assert progress["records_expected"] == count
        assert progress["records_read"] == count
        assert progress["records_selected"] == count
        assert progress["records_used"] == count
        assert progress["skipped"] == {}
        assert sorted(p["partition"] for p in progress["partitions"]) == [0, 1, 2]
        ordered = in_order(sent)
        await assert_same_model(api, report, ordered)
        # the order matters: offset order (per partition) is another model
        by_offset = sorted(sent, key=lambda s: (s.partition, s.offset))
        other = await api.ingest([s.value for s in by_offset])
        assert not np.array_equal(
            api.scores(other["model_version"], PROBE),
            api.scores(report["result"]["model_version"], PROBE),
        )
        versions = (await api.client.get("/models")).json()
        assert versions["active"] == other["model_version"]
        assert len(versions["models"]) == 3  # .jobs is not a version
        assert (api.model_dir / ".jobs" / f"{report['job_id']}.json").is_file()


async def test_last_reads_only_the_newest_records(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """`last: N` finds where the newest N begin (offsets_for_times) and reads just those."""
    base = base_ms()
    old = [record_value("VH-1", r) for r in rows(500, 4, seed=3)]
    new = [record_value("VH-2", r) for r in rows(300, 4, seed=4)]
    sent = await produce(
        kafka_bootstrap,
        topics.telemetry,
        old + new,
        [base + i for i in range(500)] + [base + 10_000 + i for i in range(300)],
    )
    async with run_api(tmp_path, kafka_bootstrap, topics) as api:
        report, _ = await api.train_from_topic({"last": 300, "params": PARAMS})
        assert report["progress"]["records_read"] == 300  # not the 800 of the topic
        assert report["progress"]["records_expected"] == 300
        await assert_same_model(api, report, in_order(sent)[-300:])
        # a boundary inside a millisecond's records: the newest N in the order, exactly
        report, _ = await api.train_from_topic({"last": 450, "params": PARAMS})
        await assert_same_model(api, report, in_order(sent)[-450:])


async def test_since_until_trains_on_the_window(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """[since, until) by Kafka timestamp; until defaults to the job's start."""
    base = base_ms()
    values = [record_value(f"VH-{i % 5}", r) for i, r in enumerate(rows(600, 4, seed=5))]
    sent = await produce(
        kafka_bootstrap, topics.telemetry, values, [base + 100 * i for i in range(600)]
    )

    def rfc3339(ms: int) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"

    async with run_api(tmp_path, kafka_bootstrap, topics) as api:
        body = {"since": rfc3339(base + 10_000), "until": rfc3339(base + 40_000), "params": PARAMS}
        report, _ = await api.train_from_topic(body)
        window = [s for s in in_order(sent) if base + 10_000 <= s.timestamp < base + 40_000]
        assert len(window) == 300
        assert report["progress"]["records_selected"] == 300
        assert report["progress"]["outside_range"] == 0
        await assert_same_model(api, report, window)
        report, _ = await api.train_from_topic({"since": rfc3339(base + 50_000), "params": PARAMS})
        await assert_same_model(api, report, in_order(sent)[500:])
        # an empty window: the job fails, with the problem a synchronous request would have had
        empty = {"since": rfc3339(base - 60_000), "until": rfc3339(base - 1)}
        report, _ = await api.train_from_topic(empty)
        assert report["status"] == "failed"
        assert report["result"] is None
        assert report["problem"]["type"] == "urn:vehicle-anomaly:problem:training-rejected"
        assert report["problem"]["status"] == 422
        assert "the range holds 0 record(s)" in report["problem"]["detail"]
        assert report["progress"]["records_expected"] == 0


async def test_exclude_flagged_leaves_out_what_a_verdict_flagged(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """Verdicts name their record by source partition and offset: flagged ones are excluded."""
    base = base_ms()
    values = [record_value(f"VH-{i % 7}", r) for i, r in enumerate(rows(200, 4, seed=6))]
    sent = await produce(kafka_bootstrap, topics.telemetry, values, [base + i for i in range(200)])
    flagged, spared, elsewhere = sent[10], sent[20], sent[30]

    def verdict(target: Sent, *, anomaly: bool, topic: str = topics.telemetry) -> bytes:
        return json.dumps(
            {
                "vehicle_id": "VH-1",
                "timestamp": "2024-01-15T10:00:00Z",
                "anomaly_score": -0.1 if anomaly else 0.1,
                "is_anomaly": anomaly,
                "model_version": "20240115100000",
                "scored_at": "2024-01-15T10:00:00.100Z",
                "source": {"topic": topic, "partition": target.partition, "offset": target.offset},
                "attribution": [],
            }
        ).encode()

    verdicts = [
        verdict(flagged, anomaly=True),
        verdict(flagged, anomaly=True),  # a repeated verdict (at-least-once): still one record
        verdict(sent[40], anomaly=True),
        verdict(spared, anomaly=False),
        verdict(elsewhere, anomaly=True, topic="some.other.topic"),
        b"not a verdict",
    ]
    await produce(kafka_bootstrap, topics.anomalies, verdicts, [base] * len(verdicts))
    async with run_api(tmp_path, kafka_bootstrap, topics) as api:
        report, _ = await api.train_from_topic(
            {"last": 1000, "exclude_flagged": True, "params": PARAMS}
        )
        progress = report["progress"]
        assert progress["verdicts_read"] == 6
        assert progress["verdicts_unreadable"] == 1
        assert progress["flagged_records"] == 2
        assert progress["excluded_flagged"] == 2
        assert progress["records_used"] == 198
        kept = [s for s in in_order(sent) if s not in (flagged, sent[40])]
        await assert_same_model(api, report, kept)
        report, _ = await api.train_from_topic({"last": 1000, "params": PARAMS})
        assert report["progress"]["excluded_flagged"] == 0
        assert report["result"]["record_count"] == 200


async def test_invalid_records_are_skipped_and_counted(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """Invalid records are skipped by reason; the model equals one trained on the valid ones."""
    base = base_ms()
    good = [record_value(f"VH-{i % 3}", r) for i, r in enumerate(rows(120, 4, seed=7))]
    bad: list[bytes | None] = [
        b"{not json",
        b"",
        None,
        json.dumps({"vehicle_id": "VH 1", "timestamp": "x", "feature_vector": [1]}).encode(),
        json.dumps({"vehicle_id": "VH-1", "feature_vector": [1.0, 2.0, 3.0, 4.0]}).encode(),
        b'{"vehicle_id": "VH-1", "timestamp": "2024-01-15T10:00:00Z", "feature_vector": [NaN, 1, 2, 3]}',
        record_value("VH-1", [1.0, 2.0, 3.0, 4.0, 5.0]),
        record_value("VH-1", [1.0, 2.0]),
        b"\xff\xfe\xfd",
    ]
    values = good[:50] + bad + good[50:]
    sent = await produce(
        kafka_bootstrap, topics.telemetry, values, [base + i for i in range(len(values))]
    )
    async with run_api(tmp_path, kafka_bootstrap, topics) as api:
        report, _ = await api.train_from_topic({"last": 1000, "params": PARAMS})
        progress = report["progress"]
        assert progress["records_read"] == len(values)
        assert progress["skipped"] == {
            "invalid_json": 1,
            "empty": 2,
            "schema": 2,
            "non_finite": 1,
            "dimension_mismatch": 2,
            "invalid_utf8": 1,
        }
        assert progress["records_used"] == 120
        valid = [s for s in in_order(sent) if s.value in good]
        await assert_same_model(api, report, valid)


async def test_progress_is_visible_while_a_job_runs(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """GET /jobs/{id} shows the job running and its counts growing; unknown ids are 404."""
    count = 100_000
    data = rows(count, 8, seed=8)
    values = [record_value(f"VH-{i % 50}", r) for i, r in enumerate(data)]
    base = base_ms()
    await produce(kafka_bootstrap, topics.telemetry, values, [base + i // 10 for i in range(count)])
    async with run_api(tmp_path, kafka_bootstrap, topics) as api:
        missing = await api.client.get("/jobs/0123456789abcdef0123456789abcdef")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["type"] == "urn:vehicle-anomaly:problem:job-not-found"
        report, seen = await api.train_from_topic({"last": count, "params": {"n_estimators": 50}})
        assert report["status"] == "succeeded", report
        assert seen[0]["status"] == "queued"
        running = [r for r in seen if r["status"] == "running"]
        assert running, seen
        read = [r["progress"]["records_read"] for r in seen]
        assert read == sorted(read)
        assert any(0 < n < count for n in read), read
        assert {r["progress"]["phase"] for r in running} >= {"reading"}
        assert report["progress"]["records_read"] == count
        assert report["result"]["record_count"] == count
        assert report["progress"]["read_seconds"] > 0
        metrics = (await api.client.get("/metrics")).text
        assert 'vehicle_anomaly_api_topic_jobs_total{outcome="succeeded"} 1.0' in metrics
        assert f"vehicle_anomaly_api_topic_job_records_total {float(count)}" in metrics


async def test_a_missing_topic_fails_the_job(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    """A job on a topic that does not exist fails with a topic-not-found problem naming it."""
    absent = Topics(topics.telemetry + "-absent", topics.anomalies, topics.dlq, topics.group)
    async with run_api(tmp_path, kafka_bootstrap, absent) as api:
        report, _ = await api.train_from_topic({"last": 10})
    assert report["status"] == "failed"
    assert report["problem"]["type"] == "urn:vehicle-anomaly:problem:topic-not-found"
    assert absent.telemetry in report["problem"]["detail"]
