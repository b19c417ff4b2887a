"""The api client's one-line errors, against a stub HTTP server (cli/apiclient.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cli.apiclient import ApiClient, problem_message
from cli.config import Context, KeyChoice
from cli.errors import CliError

ANSWERS: dict[str, tuple[int, dict[str, Any]]] = {
    "/models": (200, {"active": None, "models": []}),
    "/401": (401, {"title": "Unauthorized", "detail": "missing or unknown API key"}),
    "/422": (
        422,
        {
            "detail": "the request body is invalid",
            "errors": [
                {
                    "field": "records.0.feature_vector",
                    "message": "at least 1 item",
                    "type": "too_short",
                },
                {"field": "x", "message": "y", "type": "z"},
            ],
        },
    ),
    "/500": (500, {"detail": "boom"}),
}


class Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        status, body = ANSWERS.get(self.path.split("?")[0], (404, {"title": "Not Found"}))
        data = json.dumps({**body, "key": self.headers.get("X-API-Key")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def client(url: str, key: str | None = "k") -> ApiClient:
    context = Context(
        api_url=url, key=KeyChoice(key, "test"), settings=None, connect_timeout=1, verbose=False
    )
    return ApiClient(context)


def test_a_good_answer_is_decoded_and_the_key_sent(base_url: str) -> None:
    """A 200 answer comes back as JSON; the key travels in X-API-Key."""
    assert client(base_url).request("GET", "/models")["key"] == "k"


def test_missing_and_refused_keys(base_url: str) -> None:
    """401 without a key says one is needed; with a key, that it was refused and how to set one."""
    with pytest.raises(CliError) as missing:
        client(base_url, None).request("GET", "/401")
    assert missing.value.message.startswith(
        "the api needs an API key (401): set --api-key or VEHICLE_ANOMALY_API_KEY"
    )
    with pytest.raises(CliError) as refused:
        client(base_url).request("GET", "/401")
    assert refused.value.message.startswith(
        "the api refused the key (401): set --api-key or VEHICLE_ANOMALY_API_KEY"
    )


def test_refusals_carry_the_apis_reason(base_url: str) -> None:
    """A 422 names the first bad field; a 500 says the api failed."""
    with pytest.raises(CliError) as invalid:
        client(base_url).request("POST", "/422", {"records": []})
    assert invalid.value.message == (
        "the api refused the request (422): the request body is invalid: "
        "records.0.feature_vector: at least 1 item (1 more)"
    )
    with pytest.raises(CliError, match=r"the api failed \(500\): boom"):
        client(base_url).request("GET", "/500")


def test_unreachable_api() -> None:
    """Nobody listening: 'cannot reach the api at URL: connection refused'."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(CliError) as caught:
            client(url).request("GET", "/models")
    assert caught.value.message.startswith(f"cannot reach the api at {url}: connection refused")


def test_problem_message_of_plain_text() -> None:
    """A non-JSON error body gives its first line."""
    assert problem_message(502, "Bad Gateway\nnginx") == "Bad Gateway"
