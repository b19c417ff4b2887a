"""Fixtures for the tests that talk to a real Kafka broker; every test here is marked integration.

``kafka_bootstrap`` is session-scoped: one broker serves the whole session. It is
``KAFKA_BOOTSTRAP_SERVERS`` when set, else a testcontainers Kafka when Docker answers, else
``scripts/kafka-local`` on free ports (stopped when the session ends); see ``broker.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.api_helpers import Server, start_api, stop_api
from tests.integration.broker import kafka_broker
from tests.integration.kafka_helpers import create_topics
from tests.integration.secured_broker import SecuredBroker, secured_broker
from tests.integration.worker_helpers import Topics

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A conftest hook sees every collected item, not only this directory's.
    for item in items:
        if item.path.resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The "host:port" of a Kafka broker shared by the whole test session."""
    with kafka_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    """A second broker, TLS + SASL/SCRAM + ACLs, for the secured tests only (stopped at the end)."""
    with secured_broker(tmp_path_factory.mktemp("kafka-secured")) as broker:
        yield broker


@pytest.fixture
async def topics(kafka_bootstrap: str, unique_topic: Callable[..., str]) -> Topics:
    """A worker's raw, anomalies and dead-letter topics (3 partitions each) and its group."""
    made = Topics(
        unique_topic("raw"), unique_topic("anomalies"), unique_topic("dlq"), unique_topic("group")
    )
    await create_topics(kafka_bootstrap, made.all, partitions=3)
    return made


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Server]:
    """``python -m api`` over real HTTP, its model directory ``tmp_path/"models"``."""
    server = start_api(tmp_path)
    try:
        yield server
    finally:
        stop_api(server)
