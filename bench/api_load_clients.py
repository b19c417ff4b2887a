"""The load clients of the api benchmark: ``wrk`` with a Lua script, or an asyncio closed loop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

API_KEY = "bench-key"
RECORD = {
    "vehicle_id": "VH-002",
    "timestamp": "2024-01-15T10:05:00Z",
    "feature_vector": [0.7, 0.2, 0.9, 0.5, 0.1, 0.3, 0.6, 0.4],
}

_WRK_POST = """
wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "%(key)s"
"""
_WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d, " ..
    "\\"p50_us\\": %d, \\"p99_us\\": %d, \\"mean_us\\": %f}\\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def run_wrk(url: str, duration: float, connections: int, tmp: Path, post: bool) -> dict[str, Any]:
    script = tmp / "load.lua"
    head = _WRK_POST % {"body": json.dumps(RECORD), "key": API_KEY} if post else ""
    script.write_text(head + _WRK_DONE)
    threads = max(1, min(2, connections))
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--timeout", "10s",
        "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=True
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "errors": raw["errors"],
        "seconds": round(seconds, 3),
        "requests_per_second": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "mean_ms": round(raw["mean_us"] / 1000, 3),
    }


def _raw_request(url: str, post: bool) -> tuple[str, int, bytes]:
    """The bytes of one keep-alive HTTP/1.1 request to ``url``, and where to send them."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if post:
        body = json.dumps(RECORD).encode()
        head = (
            f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nX-API-Key: {API_KEY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return host, port, head.encode() + body
    return host, port, f"GET {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


async def _python_load(
    url: str, duration: float, connections: int, max_requests: int, post: bool
) -> dict[str, Any]:
    """A closed loop over ``connections`` keep-alive connections (plain asyncio streams: an
    HTTP client library would cost more than the server being measured)."""
    host, port, request = _raw_request(url, post)
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    stop_at = started + duration

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < stop_at and len(latencies) + errors < max_requests:
                sent = time.perf_counter()
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                if head[9:10] == b"2":  # "HTTP/1.1 2xx"
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    seconds = time.perf_counter() - started
    ordered = np.array(sorted(latencies)) * 1000
    return {
        "requests": len(latencies) + errors,
        "errors": errors,
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(ordered, 50)), 3) if len(ordered) else None,
        "p99_ms": round(float(np.percentile(ordered, 99)), 3) if len(ordered) else None,
        "mean_ms": round(float(ordered.mean()), 3) if len(ordered) else None,
    }


def run_python(
    url: str, duration: float, connections: int, max_requests: int, post: bool
) -> dict[str, Any]:
    return asyncio.run(_python_load(url, duration, connections, max_requests, post))
