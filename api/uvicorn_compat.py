"""uvicorn's httptools protocol with a bound on request headers: size and time to arrive.

uvicorn bounds neither with httptools (``h11_max_incomplete_event_size`` is for h11 only, and
``timeout_keep_alive`` is reset by every byte), and an ASGI middleware runs only once the
headers are in: a 50 MB header was accepted, and a client trickling its headers held its
connection. :func:`bounded_protocol` counts a request's bytes until its headers are complete:
past ``max_header_bytes`` it answers 431 and closes; if they are not complete within
``header_timeout`` seconds of the request's first byte, it closes the connection. (The chunk
that holds a request's first byte is not counted: the bound is exceeded by at most one read.)

This is the one place that subclasses a uvicorn internal (``HttpToolsProtocol`` and its parser
callbacks ``on_message_begin`` and ``on_headers_complete``); tests/unit/api checks they
are still there.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("api.http")

_BODY = json.dumps(
    {
        "type": "urn:vehicle-anomaly:problem:headers-too-large",
        "title": "Request Header Fields Too Large",
        "status": 431,
        "detail": "the request's headers are larger than the api accepts (HEADER_MAX_BYTES)",
    }
).encode()
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/problem+json\r\nconnection: close\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that bounds each request's header bytes and header time."""

    max_header_bytes = 64 * 1024
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = False  # set when a request's first byte is parsed
        self._header_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                logger.warning("request headers too large", extra={"bytes": self._header_bytes})
                self._disarm()
                self.transport.write(_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        # A request's first byte: its headers are counted and timed from here. (Bytes of a
        # body that arrive after an early answer, a 413 say, belong to no new message.)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._disarm()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._expire)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = 0
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _expire(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers and not self.transport.is_closing():
            logger.warning("request headers not received in time; connection closed")
            self.transport.close()


def bounded_protocol(max_header_bytes: int, header_timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class for ``uvicorn.run(http=...)`` with these bounds."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout": header_timeout},
    )
