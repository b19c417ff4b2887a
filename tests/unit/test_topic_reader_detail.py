"""A job that cannot reach Kafka reports why without naming the broker's address."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import pytest

from shared.errors import KafkaUnavailableError
from shared.jobs import JobProgress
from shared.kafka.topic_reader import KafkaTopicReader
from shared.settings import load_settings
from shared.topic_training import TopicTrainingSpec


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_the_problem_detail_names_no_bootstrap_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """KafkaUnavailableError's detail (shown in the job report) has no host:port; the log has."""
    servers = f"127.0.0.1:{_closed_port()}"
    settings = load_settings(kafka_bootstrap_servers=servers, model_signing_key="k", _env_file=None)
    reader = KafkaTopicReader(settings)
    with caplog.at_level(logging.WARNING), pytest.raises(KafkaUnavailableError) as caught:
        await reader.read(
            TopicTrainingSpec(last=10), JobProgress(), now=datetime.now(UTC), max_records=10
        )
    assert servers not in caught.value.detail
    assert "127.0.0.1" not in caught.value.detail
    assert any(getattr(r, "bootstrap_servers", None) == servers for r in caplog.records)
