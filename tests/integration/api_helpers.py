"""The api as a real process for the integration tests: ``python -m api`` on a free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.signing import SIGNING_KEY

API_KEY = "integration-key"
AUTH = {"X-API-Key": API_KEY}


@dataclass
class Server:
    """A running api process: its base URL, its log file and its model directory."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    model_dir: Path

    def peak_rss_bytes(self) -> int:
        """The process's peak resident memory so far (``VmHWM``), in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/<pid>/status")

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for raw in self.log.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
        return lines


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_api(tmp: Path, **extra: str) -> Server:
    """Start ``python -m api`` on a free loopback port and return once /healthz answers.

    ``extra`` adds or overrides environment variables (``INGEST_MAX_BODY_BYTES="..."``).
    """
    port = _free_port()
    env = {
        **os.environ,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_KEYS": API_KEY,
        "AUTH_DISABLED": "false",
        "MODEL_DIR": str(tmp / "models"),
        "MODEL_SIGNING_KEY": SIGNING_KEY,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT_PER_SECOND": "1000",
        "RATE_LIMIT_BURST": "1000",
        **extra,
    }
    log = tmp / "api.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "api"],
            env=env,
            cwd=tmp,  # no .env file there
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log, tmp / "models")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the api exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.base_url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_api(server)
    raise RuntimeError(f"the api did not answer within 60 s:\n{log.read_text()}")


def stop_api(server: Server) -> int:
    """SIGTERM the api (SIGKILL after 30 s) and return its exit code."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)
    return server.process.returncode
