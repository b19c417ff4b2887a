"""The access line written directly is the line ``logging`` would write, and only then direct."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from shared import log_lines, observability
from shared.log_lines import info_line
from shared.observability import configure_logging, request_id_var

FIELDS = {"method": "POST", "path": "/score", "status": 200, "duration_ms": 0.35, "caller": "k"}


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """``configure_logging`` as the services call it, writing to a string; undone after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogRecordFactory())
    saved_flags = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    saved_srcfile = logging._srcfile
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(observability, "configured_handler", None)
    configure_logging("api", "json", "INFO", repeat_seconds=60.0)
    token = request_id_var.set("req-1")
    try:
        yield stream
    finally:
        request_id_var.reset(token)
        root.handlers[:], level, factory = saved
        root.setLevel(level)
        logging.setLogRecordFactory(factory)
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved_flags
        logging._srcfile = saved_srcfile


@contextmanager
def _alone() -> Iterator[None]:
    """The configured handler as the root's only one, as in the services (pytest adds its
    own capturing handlers to the root while a test runs)."""
    root = logging.getLogger()
    others = root.handlers[:]
    root.handlers[:] = [h for h in others if h is observability.configured_handler]
    try:
        yield
    finally:
        root.handlers[:] = others


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_the_direct_line_is_the_formatted_one(configured: io.StringIO) -> None:
    """Written directly, and through logger.info: the same keys in the same order, the same
    values but the time."""
    logger = logging.getLogger("api.access")
    with _alone():
        assert log_lines._direct_handler(logger) is observability.configured_handler
        info_line(logger, "POST /score 200", FIELDS)
        logger.info("%s", "POST /score 200", extra=FIELDS)
    direct, formatted = _lines(configured)
    assert list(direct) == list(formatted)
    del direct["time"], formatted["time"]
    assert direct == formatted
    assert direct["request_id"] == "req-1" and direct["service"] == "api"


def test_another_handler_or_filter_gets_the_line_through_logging(
    configured: io.StringIO, caplog: pytest.LogCaptureFixture
) -> None:
    """A capturing handler on the root sees the line; so does a filter on the way."""
    logger = logging.getLogger("api.access")
    with caplog.at_level(logging.INFO):
        assert log_lines._direct_handler(logger) is None
        info_line(logger, "GET /healthz 200", FIELDS)
    assert [r.getMessage() for r in caplog.records] == ["GET /healthz 200"]
    assert caplog.records[0].status == 200  # type: ignore[attr-defined]

    held: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    logger.addFilter(keep)
    try:
        info_line(logger, "GET /healthz 200", FIELDS)
    finally:
        logger.removeFilter(keep)
    assert len(held) == 1
    assert len(_lines(configured)) == 1  # the one caplog's level let through to the root


def test_above_info_nothing_is_written(configured: io.StringIO) -> None:
    """A logger set to WARNING writes no access line, direct or not."""
    logger = logging.getLogger("api.access")
    logger.setLevel(logging.WARNING)
    try:
        info_line(logger, "POST /score 200", FIELDS)
    finally:
        logger.setLevel(logging.NOTSET)
    assert configured.getvalue() == ""


def test_a_failed_write_is_reported_not_raised(
    configured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that refuses the line goes to the handler's handleError, as StreamHandler's
    own emit would; the request goes on."""
    handler = observability.configured_handler
    assert isinstance(handler, logging.StreamHandler)
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)

    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError("gone")

    monkeypatch.setattr(handler, "stream", Broken())
    with _alone():
        assert log_lines._direct_handler(logging.getLogger("api.access")) is handler
        info_line(logging.getLogger("api.access"), "POST /score 200", FIELDS)
    assert [r.getMessage() for r in reported] == ["POST /score 200"]
