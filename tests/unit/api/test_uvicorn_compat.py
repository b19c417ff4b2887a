"""The uvicorn internals :mod:`api.uvicorn_compat` builds on are still there."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.uvicorn_compat import BoundedHttpToolsProtocol, bounded_protocol


def test_the_parser_callbacks_it_overrides_exist() -> None:
    """HttpToolsProtocol still has the callbacks the bounded protocol extends."""
    for name in ("data_received", "on_message_begin", "on_headers_complete", "connection_lost"):
        assert callable(getattr(HttpToolsProtocol, name, None)), name


def test_bounded_protocol_carries_its_limits() -> None:
    """bounded_protocol makes a subclass with the given limits."""
    protocol = bounded_protocol(4096, 2.5)
    assert issubclass(protocol, BoundedHttpToolsProtocol)
    assert (protocol.max_header_bytes, protocol.header_timeout) == (4096, 2.5)
