"""The api's training from the topic and the command-line tool against the secured broker.

Each signs in with credentials from the environment as a principal holding only the README's
ACLs (``api``, ``cli``); a wrong password or a principal without ACLs fails the job, or the
command, with a reason that names authentication or authorization.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from shared.kafka import client_options
from simulator import FEATURES
from tests.integration.cli_helpers import assert_ok, clean_env, run_cli
from tests.integration.secured_broker import ANOMALIES, DLQ, GROUP, RAW, SecuredBroker
from tests.integration.test_topic_training import PARAMS, record_value, run_api
from tests.integration.worker_helpers import Topics, WorkerProcess, publish_model, stopping

TOPICS = Topics(RAW, ANOMALIES, DLQ, GROUP)
# The first test also waits for the secured broker (and, on a fresh clone with Docker, for its jars).
pytestmark = pytest.mark.timeout(900)


async def produce_newest(broker: SecuredBroker, count: int) -> None:
    """``count`` records stamped a minute ahead: the newest on the raw topic, whatever it holds."""
    producer = AIOKafkaProducer(**client_options(broker.settings("cli")), acks="all")
    await producer.start()
    ahead = (int(time.time()) + 60) * 1000
    try:
        rows = np.random.default_rng(5).normal(size=(count, 4)).round(6)
        for i, row in enumerate(rows):
            value = record_value(f"VH-{i % 7}", row.tolist())
            await producer.send(RAW, value, key=f"VH-{i % 7}".encode(), timestamp_ms=ahead + i)
        await producer.flush()
    finally:
        await producer.stop()


async def test_api_trains_from_the_topic_with_only_its_documented_acls(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """Signed in as ``api``, a job reads the raw and anomalies topics over TLS and trains."""
    await produce_newest(secured_kafka, 200)
    async with run_api(
        tmp_path, secured_kafka.bootstrap, TOPICS, **secured_kafka.client_env("api")
    ) as api:
        report, _ = await api.train_from_topic(
            {"last": 200, "exclude_flagged": True, "params": PARAMS}
        )
    assert report["status"] == "succeeded", report
    assert report["result"]["record_count"] == 200


async def test_api_job_with_a_wrong_password_fails_naming_authentication(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """A wrong password fails the job with a kafka-unavailable problem naming authentication."""
    env = secured_kafka.client_env("api", password="not-the-password")
    async with run_api(tmp_path, secured_kafka.bootstrap, TOPICS, **env) as api:
        report, _ = await api.train_from_topic({"last": 10})
        log = api.log.read_text()
    assert report["status"] == "failed"
    assert report["problem"]["type"] == "urn:vehicle-anomaly:problem:kafka-unavailable"
    assert "Kafka authentication failed" in report["problem"]["detail"]
    assert "Kafka authentication failed" in log


async def test_api_job_without_acls_fails_naming_authorization(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """Without Read on the raw topic, Kafka hides it: the job fails naming the topic and a missing ACL."""
    env = secured_kafka.client_env("outsider")
    async with run_api(tmp_path, secured_kafka.bootstrap, TOPICS, **env) as api:
        report, _ = await api.train_from_topic({"last": 10})
    assert report["status"] == "failed"
    assert report["problem"]["type"] == "urn:vehicle-anomaly:problem:topic-not-found"
    detail = report["problem"]["detail"]
    assert "Kafka authorization" in detail and "missing ACL" in detail and RAW in detail


def cli_env(broker: SecuredBroker, user: str, password: str | None = None) -> dict[str, str]:
    return clean_env(
        **broker.client_env(user, password),
        TELEMETRY_TOPIC=RAW,
        ANOMALY_TOPIC=ANOMALIES,
        VEHICLE_ANOMALY_KEY_FILE="/nonexistent/key-file",
    )


async def test_cli_simulates_and_tails_through_the_worker_with_only_their_acls(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """``simulate`` and ``tail`` as ``cli``, the worker as ``worker``: verdicts come back over TLS."""
    publish_model(tmp_path / "models", n_features=len(FEATURES))
    extra = {key.lower(): value for key, value in secured_kafka.client_env("worker").items()}
    process = WorkerProcess.make(
        secured_kafka.bootstrap, TOPICS, tmp_path / "models", tmp_path, "worker", **extra
    )
    async with stopping(process.start()):
        await process.wait_ready(timeout=120)
        env = cli_env(secured_kafka, "cli")
        sent = assert_ok(
            run_cli(
                "simulate",
                "--count",
                "200",
                "--rate",
                "1000",
                "--anomaly-rate",
                "0.2",
                "--json",
                env=env,
                cwd=tmp_path,
            )
        )
        assert json.loads(sent)["sent"] == 200
        first = assert_ok(
            run_cli(
                "tail",
                "--from-beginning",
                "--limit",
                "1",
                "--timeout",
                "60",
                "--json",
                env=env,
                cwd=tmp_path,
            )
        )
    assert json.loads(first)["source"]["topic"] == RAW


def test_cli_with_a_wrong_password_fails_in_one_line_naming_authentication(
    secured_kafka: SecuredBroker, tmp_path: Path
) -> None:
    """``simulate`` with a wrong password: status 1, one stderr line naming authentication."""
    env = cli_env(secured_kafka, "cli", password="not-the-password")
    result = run_cli("simulate", "--count", "1", env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Kafka authentication failed" in lines[0], result.stderr
