"""Logging set-up shared by both services: one JSON object per line, or readable console lines.

Every line carries the service name and, when present, the request id (a context variable
the api sets per request) and the active OpenTelemetry trace and span ids. Repeated warnings
and errors are rate-limited by :class:`RepeatFilter` (``LOG_REPEAT_SECONDS``): the first line
of a kind is written, the repeats within the window are counted, and one summary line says
how many there were; a different line (a recovery) is always written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import msgspec
from opentelemetry.trace import get_current_span

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's copy of the message with terminal colour codes
}


def trace_ids() -> tuple[str | None, str | None]:
    context = get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


# One encoder for every line (json.dumps with ``default`` builds a new one per call): msgspec's,
# a fifth of the json module's cost, with the json module's for what msgspec refuses.
_ENCODER = msgspec.json.Encoder(enc_hook=str)
_FALLBACK = json.JSONEncoder(default=str)


def encode_line(body: dict[str, Any]) -> str:
    """One log line's JSON text."""
    try:
        return _ENCODER.encode(body).decode("utf-8")
    except (TypeError, ValueError, OverflowError, RecursionError):
        return _FALLBACK.encode(body)


def line_body(
    created: float,
    level: str,
    logger: str,
    message: str,
    service: str,
    request_id: str | None,
    trace_id: str | None,
    span_id: str | None,
    fields: Iterable[tuple[str, Any]],
) -> dict[str, Any]:
    """A JSON line's object: its fixed fields, then each of ``fields`` that is not one of a
    ``LogRecord``'s own attributes (nor private, nor a fixed field)."""
    body: dict[str, Any] = {
        "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": logger,
        "message": message,
        "service": service,
        "request_id": request_id,
        "trace_id": trace_id,
        "span_id": span_id,
    }
    for key, value in fields:
        if key not in _RESERVED and key not in body and not key.startswith("_"):
            body[key] = value
    return body


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object with the ids and any ``extra`` fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):  # logged before configure_logging installed the stamp
            _stamp(record)
        body = line_body(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            self.service,
            getattr(record, "request_id", None),
            getattr(record, "trace_id", None),
            getattr(record, "span_id", None),
            vars(record).items(),
        )
        if record.exc_info:
            body["exc_info"] = self.formatException(record.exc_info)
        return encode_line(body)


class ConsoleFormatter(logging.Formatter):
    """A readable line for local use: time, level, logger, message, then the extras."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: v
            for k, v in vars(record).items()
            if k not in _RESERVED
            and not k.startswith("_")
            and v is not None
            and k != "color_message"
        }
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{moment} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if tail:
            line += f"  {tail}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


# The root handler configure_logging installed (``shared.log_lines`` writes to it directly).
configured_handler: logging.Handler | None = None

_base_factory = logging.getLogRecordFactory()


def _stamped_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Stamp the request and trace ids when a line is logged, not when it is formatted."""
    return _stamp(_base_factory(*args, **kwargs))


def _stamp(record: logging.LogRecord) -> logging.LogRecord:
    record.request_id = request_id_var.get()
    record.trace_id, record.span_id = trace_ids()
    return record


class RepeatFilter(logging.Filter):
    """Lets the first of each kind of line through per ``window`` seconds, and counts the rest.

    A kind is the logger, the level and the message *template* (``record.msg``, before its
    arguments): aiokafka's "Marking the coordinator dead (node %s)..." is one kind whatever
    the node. Lines below ``min_level`` always pass. When a kind that was held back shows
    again after its window, that line carries ``repeated`` (how many were held back) and
    ``repeated_seconds``; a kind that stops altogether gets a summary line of its own, written
    with the next line that passes. ``clock`` is for tests.
    """

    def __init__(
        self,
        window: float,
        *,
        min_level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = 10_000,
    ) -> None:
        super().__init__()
        self.window = window
        self.min_level = min_level
        self.clock = clock
        self.max_kinds = max_kinds
        # kind -> (window start, lines held back since, one of them for the summary)
        self._seen: dict[tuple[str, int, str], tuple[float, int, logging.LogRecord]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.window <= 0 or record.levelno < self.min_level or hasattr(record, "repeated"):
            return True
        now = self.clock()
        kind = (record.name, record.levelno, str(record.msg))
        with self._lock:
            lingering = self._expired(now, kind)
            seen = self._seen.get(kind)
            if seen is not None and now - seen[0] < self.window:
                self._seen[kind] = (seen[0], seen[1] + 1, record)
                passes = False
            else:
                if seen is not None and seen[1]:
                    record.repeated = seen[1]
                    record.repeated_seconds = round(now - seen[0], 1)
                if len(self._seen) >= self.max_kinds:
                    self._seen.clear()
                self._seen[kind] = (now, 0, record)
                passes = True
        for summary in lingering:
            logging.getLogger(summary.name).handle(summary)
        return passes

    def _expired(self, now: float, current: tuple[str, int, str]) -> list[logging.LogRecord]:
        """Summaries of the kinds whose window ended with lines held back (not ``current``)."""
        summaries = []
        for kind, (start, held, last) in list(self._seen.items()):
            if kind == current or now - start < self.window:
                continue
            del self._seen[kind]
            if held:
                summary = logging.makeLogRecord(vars(last))
                summary.repeated = held
                summary.repeated_seconds = round(now - start, 1)
                summary.msg = f"{last.getMessage()} (and {held} more like it)"
                summary.args = None
                summary.exc_info = summary.exc_text = None
                summaries.append(summary)
        return summaries


def configure_logging(
    service: str, log_format: str = "json", level: str = "INFO", repeat_seconds: float = 0.0
) -> None:
    """Route every logger (uvicorn's and FastStream's included) through one formatter.

    ``repeat_seconds`` > 0: repeated warnings and errors are rate-limited (:class:`RepeatFilter`).
    """
    logging.setLogRecordFactory(_stamped_record)
    # What no formatter here writes is not collected for every line (the logging HOWTO's
    # "Optimization"): the thread, the process, and the caller's file, function and line.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if log_format == "json" else ConsoleFormatter())
    if repeat_seconds > 0:
        handler.addFilter(RepeatFilter(repeat_seconds))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    global configured_handler
    configured_handler = handler
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "aiokafka"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
