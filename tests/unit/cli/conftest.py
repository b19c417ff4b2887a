"""A stub api for the command tests: canned answers by method and path, requests recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

KEY = "stub-key"


@dataclass
class Request:
    method: str
    path: str
    query: str
    body: Any
    key: str | None


@dataclass
class StubApi:
    """``answers[(method, path)] = (status, body)``; ``requests`` in the order they came."""

    url: str = ""
    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)

    def argv(self) -> list[str]:
        """The options that point the command at this api."""
        return ["--api", self.url, "--api-key", KEY]

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]


def _handler(stub: StubApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            path, _, query = self.path.partition("?")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            stub.requests.append(
                Request(
                    self.command,
                    path,
                    query,
                    json.loads(raw) if raw else None,
                    self.headers.get("X-API-Key"),
                )
            )
            status, body = stub.answers.get(
                (self.command, path), (404, {"title": "Not Found", "detail": "no such route"})
            )
            data = b"" if status == 204 else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            return

    return Handler


@pytest.fixture
def clean_cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ambient key, api or Kafka setting; the working directory is empty (no .env)."""
    for name in (
        "VEHICLE_ANOMALY_API_KEY",
        "VEHICLE_ANOMALY_API",
        "API_KEYS",
        "VEHICLE_ANOMALY_KEY_FILE",
        "KAFKA_BOOTSTRAP_SERVERS",
        "ANOMALY_TOPIC",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def stub_api(clean_cli_env: Path) -> Iterator[StubApi]:
    stub = StubApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
