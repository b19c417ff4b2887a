"""Hostile clients over real HTTP: a body that never arrives is a 408, a client that disconnects
mid-body is neither an unhandled exception nor a 500, huge or trickling headers are cut off,
and /metrics has one spelling."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.api_helpers import API_KEY, Server, start_api, stop_api


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    api = start_api(
        tmp_path_factory.mktemp("slow"),
        BODY_READ_TIMEOUT_SECONDS="1",
        HEADER_READ_TIMEOUT_SECONDS="2",
    )
    yield api
    stop_api(api)


def _open(server: Server, declared: int, sent: bytes) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"POST /score HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    return sock


def test_a_body_that_never_arrives_is_a_408(server: Server) -> None:
    """Declaring 1,000 bytes and sending 2: a 408 problem after BODY_READ_TIMEOUT_SECONDS."""
    with _open(server, 1000, b"{}") as sock:
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"application/problem+json" in answer


def test_a_client_that_disconnects_is_no_500(server: Server) -> None:
    """A client gone mid-body is logged as a disconnect, not an unhandled exception or a 500."""
    _open(server, 1000, b'{"vehicle_id"').close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = server.log_lines()
        if any(line.get("message") == "client disconnected" for line in lines):
            break
        time.sleep(0.1)
    lines = server.log_lines()
    assert any(line.get("message") == "client disconnected" for line in lines)
    assert not [line for line in lines if line.get("message") == "unhandled exception"]
    assert not [line for line in lines if line.get("status") == 500]
    metrics = httpx.get(server.base_url + "/metrics").text
    assert 'status="500"' not in metrics


def test_metrics_is_not_reachable_by_an_encoded_path(server: Server) -> None:
    """Over real HTTP (uvicorn decodes the path), /%6detrics is a 404 while /metrics is 200."""
    host, port = server.base_url.removeprefix("http://").split(":")
    for raw, expected in (
        (b"/metrics", b"200"),
        (b"/%6detrics", b"404"),
        (b"/%6D%65trics", b"404"),
    ):
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"GET " + raw + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = sock.recv(65536)
        assert answer.split(b" ", 2)[1] == expected, (raw, answer[:100])


def test_huge_headers_are_refused_with_431(server: Server) -> None:
    """A 50 MB header is cut off at HEADER_MAX_BYTES with a 431; /healthz answers meanwhile."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        answer = b""
        try:
            for _ in range(50 * 16):  # up to 50 MB, 64 KiB at a time, until the api hangs up
                sock.sendall(b"a" * 65536)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert httpx.get(server.base_url + "/healthz", timeout=5).status_code == 200


def test_headers_that_trickle_in_are_cut_off(server: Server) -> None:
    """Headers still incomplete HEADER_READ_TIMEOUT_SECONDS after the first byte: closed."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # the api closed the connection without answering
    assert time.monotonic() - started < 25  # closed by the deadline, not the test's timeout
