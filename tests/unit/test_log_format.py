"""The JSON log line: one object per line, whatever the ``extra`` values are."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from shared.observability import JsonFormatter


def _line(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("api.access", logging.INFO, __file__, 1, "%s %s", ("GET", "/"), None)
    for key, value in extra.items():
        setattr(record, key, value)
    text = JsonFormatter("api").format(record)
    assert "\n" not in text
    decoded: dict[str, object] = json.loads(text)
    return decoded


def test_the_fixed_fields_come_first_and_the_extras_follow() -> None:
    """time, level, logger, message, service and the ids, then each extra under its name."""
    line = _line(status=200, duration_ms=0.35, caller="key-0123abcd")
    assert list(line)[:8] == [
        "time", "level", "logger", "message", "service", "request_id", "trace_id", "span_id",
    ]  # fmt: skip
    assert line["message"] == "GET /" and line["level"] == "info" and line["service"] == "api"
    assert (line["status"], line["duration_ms"], line["caller"]) == (200, 0.35, "key-0123abcd")


def test_values_json_cannot_hold_are_written_as_text() -> None:
    """A path, an exception, a set, a non-ASCII text, a number past 64 bits, a NaN and bytes:
    still one valid JSON object (NaN as null, bytes as base64, the rest as their text or a
    list)."""
    line = _line(
        path=Path("/models/v1"),
        error=ValueError("bad"),
        hops={"a"},
        place="Zürich",
        big=10**30,
        ratio=float("nan"),
        raw=b"ab",
    )
    assert line["path"] == "/models/v1" and line["error"] == "bad" and line["hops"] == ["a"]
    assert line["place"] == "Zürich" and line["big"] == 10**30 and line["ratio"] is None
    assert line["raw"] == "YWI="


def test_a_value_the_fast_encoder_refuses_falls_back_to_the_json_module() -> None:
    """A text with a lone surrogate (a file name decoded with ``surrogateescape``) is not
    UTF-8, which msgspec refuses: the json module's escaped text is written instead."""
    line = _line(file="report-\udc80.csv", status=500)
    assert line["status"] == 500 and line["file"] == "report-\udc80.csv"
