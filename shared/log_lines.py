"""One INFO line per request without a ``LogRecord``, when only the JSON handler would see it.

The api writes an access line for every request; through ``logging`` that line costs a record
of some thirty attributes, the handler chain, and a formatter that walks the record, which was
a fifth of a ``POST /score``. :func:`info_line` builds the same JSON object with the
formatter's own :func:`~shared.observability.line_body` and writes it straight to the handler
:func:`shared.observability.configure_logging` installed, under its lock, when the logger tree
is as that left it: no handler or filter on the way, the root's one handler that one, its
filters only :class:`~shared.observability.RepeatFilter` (which lets every INFO line through).
Anything else (a test's capturing handler, a user's logging configuration, a level above INFO)
sends the line through ``logger.info`` as before, so what is written, and where, does not
change.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from shared import observability
from shared.observability import (
    JsonFormatter,
    RepeatFilter,
    encode_line,
    line_body,
    request_id_var,
    trace_ids,
)


def _direct_handler(logger: logging.Logger) -> logging.StreamHandler[Any] | None:
    """The configured JSON handler when it alone would write ``logger``'s INFO lines."""
    handler = observability.configured_handler
    if not isinstance(handler, logging.StreamHandler) or handler.level > logging.INFO:
        return None
    if not isinstance(handler.formatter, JsonFormatter):
        return None
    if any(not isinstance(f, RepeatFilter) or f.min_level <= logging.INFO for f in handler.filters):
        return None
    node: logging.Logger | None = logger
    while node is not None:
        if node.disabled or node.filters:
            return None
        if node.parent is None:  # the root
            return handler if node.handlers == [handler] else None
        if node.handlers or not node.propagate:
            return None
        node = node.parent
    return None  # pragma: no cover - every logger's chain ends at the root


def info_line(logger: logging.Logger, message: str, fields: dict[str, Any]) -> None:
    """``logger.info(message, extra=fields)``, written directly when that is the same line."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _direct_handler(logger)
    if handler is None:
        logger.info("%s", message, extra=fields)
        return
    formatter = handler.formatter
    assert isinstance(formatter, JsonFormatter)  # checked by _direct_handler
    body = line_body(
        time.time(),
        "info",
        logger.name,
        message,
        formatter.service,
        request_id_var.get(),
        *trace_ids(),
        fields.items(),
    )
    line = encode_line(body) + handler.terminator
    handler.acquire()
    try:
        handler.stream.write(line)
        handler.flush()
    except Exception:  # as StreamHandler.emit: report it, never raise into the request
        handler.handleError(
            logger.makeRecord(logger.name, logging.INFO, "", 0, message, (), None, extra=fields)
        )
    finally:
        handler.release()
