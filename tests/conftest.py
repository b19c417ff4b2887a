"""Fixtures shared by every test directory. None of them starts a Kafka broker.

The broker fixture (``kafka_bootstrap``) lives in ``tests/integration/conftest.py``, so the unit
tests never start one; the Kafka client helpers live in ``tests/integration/kafka_helpers.py``.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_NOT_IN_TOPIC = re.compile(r"[^a-zA-Z0-9._-]+")


def topic_name(label: str, suffix: str = "") -> str:
    """A unique, legal Kafka topic name: ``t-<label>[-<suffix>]-<8 hex digits>``."""
    label = _NOT_IN_TOPIC.sub("-", label).strip("-.")[:80] or "test"
    suffix = _NOT_IN_TOPIC.sub("-", suffix).strip("-.")[:40]
    parts = ["t", label, suffix, uuid.uuid4().hex[:8]]
    return "-".join(part for part in parts if part)


@pytest.fixture
def unique_topic(request: pytest.FixtureRequest) -> Callable[..., str]:
    """Unique topic names for this test: ``unique_topic()``, ``unique_topic("dlq")``."""
    label = request.node.originalname if isinstance(request.node, pytest.Function) else "test"

    def make(suffix: str = "") -> str:
        return topic_name(label, suffix)

    return make


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A fresh, empty directory for a model registry (``MODEL_DIR``)."""
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log line of the test, formatted by the services' JSON formatter."""
    from shared.observability import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
