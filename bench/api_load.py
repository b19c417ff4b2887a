# One concern, the api benchmark's servers, their turns and its report, keeps this module past 300 lines.
"""Load benchmark of ``POST /score`` against a bare FastAPI route, both served by uvicorn.

Starts ``python -m api`` (one uvicorn worker, a temporary model registry, a model trained on
5,000 records of 8 features) and a trivial FastAPI app with one POST route answering a
constant JSON (served by uvicorn the same way), then drives each on loopback with a closed
loop of a fixed number of connections for a fixed time, the targets taking turns in
``--rounds`` rounds (the machine is shared: a change of load falls on every target alike, and
the ratio reported is the median of the rounds' ratios): ``wrk`` when it is installed, else an
asyncio + httpx client. The api's ``GET /healthz`` is measured too, to tell its middleware's
cost from the scoring's. Writes ``bench/results/api.json`` and prints a table.

    .venv/bin/python -m bench.api_load [--duration 10] [--rounds 5] [--connections 8]
        [--client auto|wrk|python] [--detector context|point]

Bounded: each run lasts ``--duration`` seconds (at most 60) and the Python client also stops
at ``--max-requests``; the servers are stopped (by pid) when it ends. Traffic goes to
127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI

from bench.api_load_clients import API_KEY, run_python, run_wrk
from bench.pipeline_broker import free_port
from shared.schemas import ScoreRequest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "api.json"
CONSTANT = {"vehicle_id": "VH-002", "anomaly_score": 0.1, "is_anomaly": False}

# The trivial app: what FastAPI + uvicorn cost on their own.
bare_app = FastAPI()


@bare_app.post("/score")
async def bare_score() -> dict[str, Any]:
    return CONSTANT


@bare_app.post("/parse")
async def bare_parse(record: ScoreRequest) -> dict[str, Any]:
    """The baseline /score is held to: the same record parsed with pydantic, a small dict back."""
    return {"vehicle_id": record.vehicle_id, "anomaly_score": 0.1, "is_anomaly": False}


def _wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer within 60 s:\n{log.read_text()[-3000:]}")


@contextmanager
def serve_process(command: list[str], env: dict[str, str], probe: str, log: Path) -> Iterator[int]:
    """Run ``command`` (its output to ``log``) until ``probe`` answers; yield its pid; SIGTERM."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_up(probe, process, log)
        yield process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextmanager
def api_server(tmp: Path, detector: str = "context") -> Iterator[str]:
    """``python -m api`` with a trained model; yields its base URL."""
    with api_process(tmp, detector) as (base, _):
        yield base


@contextmanager
def api_process(tmp: Path, detector: str = "context") -> Iterator[tuple[str, int]]:
    """``python -m api`` with a trained model; yields its base URL and pid."""
    port = free_port()
    env = {
        **os.environ,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_KEYS": API_KEY,
        "MODEL_SIGNING_KEY": "bench-signing-key",
        "MODEL_DIR": str(tmp / "models"),
        "RATE_LIMIT_PER_SECOND": "1000000000",
        "RATE_LIMIT_BURST": "1000000000",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",  # as deployed: one access line per request (to a file here)
    }
    base = f"http://127.0.0.1:{port}"
    with serve_process(
        [sys.executable, "-m", "api"], env, base + "/healthz", tmp / "api.log"
    ) as pid:
        rows = np.random.default_rng(0).normal(size=(5_000, 8)).round(6).tolist()
        batch = {
            "records": [
                {
                    "vehicle_id": f"VH-{i % 50}",
                    "timestamp": "2024-01-15T10:00:00Z",
                    "feature_vector": r,
                }
                for i, r in enumerate(rows)
            ],
            "params": {"random_state": 0, "detector": detector},
        }
        trained = httpx.post(
            base + "/ingest", json=batch, headers={"X-API-Key": API_KEY}, timeout=120
        )
        trained.raise_for_status()
        yield base, pid


@contextmanager
def bare_server(tmp: Path) -> Iterator[tuple[str, int]]:
    """The trivial app under uvicorn, configured like ``python -m api``; yields its base URL
    and pid."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--no-server-header", "api_load:bare_app",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with serve_process(command, env, base + "/score", tmp / "bare.log") as pid:
        yield base, pid


def cpu_seconds(pid: int) -> float:
    """The user + system CPU time of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- main ------------------------------------------------------------------------------------


def measure(
    url: str,
    args: argparse.Namespace,
    client: str,
    tmp: Path,
    *,
    post: bool = True,
    duration: float | None = None,
    warmup: bool = True,
    pid: int | None = None,
) -> dict[str, Any]:
    """One target's figures over ``duration`` seconds (default ``--duration``), after a warm-up
    of up to 2 s unless ``warmup`` is false; with the server's ``pid``, the CPU seconds it
    spent meanwhile too."""

    def run(seconds: float) -> dict[str, Any]:
        if client == "wrk":
            return run_wrk(url, seconds, args.connections, tmp, post)
        return run_python(url, seconds, args.connections, args.max_requests, post)

    seconds = args.duration if duration is None else duration
    if warmup:
        run(min(2.0, seconds))
    before = cpu_seconds(pid) if pid is not None else 0.0
    row = run(seconds)
    if pid is not None:
        row["server_cpu_seconds"] = cpu_seconds(pid) - before
    return row


def _combined(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's rounds as one row: the counts summed, the latencies the rounds' median."""
    seconds = sum(r["seconds"] for r in rounds)
    answered = sum(r["requests"] - r["errors"] for r in rounds)

    def median(key: str) -> float | None:
        values = [r[key] for r in rounds if r[key] is not None]
        return round(float(np.median(values)), 3) if values else None

    cpu = sum(r.get("server_cpu_seconds", 0.0) for r in rounds)
    return {
        "requests": sum(r["requests"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "seconds": round(seconds, 3),
        "requests_per_second": round(answered / seconds, 1),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "mean_ms": median("mean_ms"),
        "rounds_requests_per_second": [r["requests_per_second"] for r in rounds],
        # the server's CPU per answer: what the machine's other work does not change much
        "server_cpu_us_per_request": round(cpu / answered * 1e6, 1) if answered else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per target (<= 60)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="the targets take turns this many times"
    )
    parser.add_argument("--connections", type=int, default=8, help="concurrent connections")
    parser.add_argument("--max-requests", type=int, default=200_000, help="Python client cap")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--detector", choices=["context", "point"], default="context", help="the model's kind"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.duration = min(max(args.duration, 1.0), 60.0)
    args.rounds = min(max(args.rounds, 1), 20)
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --client python")

    rounds: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="api-bench-") as scratch:
        tmp = Path(scratch)
        with (
            bare_server(tmp) as (bare, bare_pid),
            api_process(tmp, args.detector) as (base, api_pid),
        ):
            targets = {
                "bare_fastapi": (bare + "/score", True, bare_pid),
                "bare_pydantic": (bare + "/parse", True, bare_pid),
                "api_score": (base + "/score", True, api_pid),
                # the same server's cheapest route: what its middleware costs without scoring
                "api_healthz": (base + "/healthz", False, api_pid),
            }
            # The targets take turns, each round a share of --duration, so that a change in
            # the machine's load (it is shared) falls on all of them alike.
            for turn in range(args.rounds):
                for name, (url, post, pid) in targets.items():
                    rounds.setdefault(name, []).append(
                        measure(
                            url,
                            args,
                            client,
                            tmp,
                            post=post,
                            duration=args.duration / args.rounds,
                            warmup=turn == 0,
                            pid=pid,
                        )
                    )
    results = {name: _combined(rows) for name, rows in rounds.items()}
    ratios = [
        score["requests_per_second"] / bare["requests_per_second"]
        for score, bare in zip(rounds["api_score"], rounds["bare_pydantic"], strict=True)
    ]

    report = {
        "benchmark": "POST /score vs a bare FastAPI POST route, uvicorn, one worker, loopback",
        "targets": {
            "bare_fastapi": "trivial FastAPI app, POST returning a constant JSON",
            "bare_pydantic": "trivial FastAPI app, POST parsing the same record into "
            "ScoreRequest (a pydantic body parameter) and returning a small dict: the baseline",
            "api_score": "python -m api, POST /score with an API key (auth, rate limit, "
            "validation, the cached active version, the compiled forest, log line)",
            "api_healthz": "python -m api, GET /healthz (request id, metrics, access log only)",
        },
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "client": client,
        "connections": args.connections,
        "duration_seconds": args.duration,
        "rounds": args.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "model": {"records": 5_000, "features": 8, "n_estimators": 100, "detector": args.detector},
        "results": results,
        # the median of the rounds' ratios (each round's two targets ran a minute apart at most)
        "score_over_bare_pydantic": round(float(np.median(ratios)), 3),
        "score_over_bare_pydantic_rounds": [round(r, 3) for r in ratios],
        # the same ratio from the servers' CPU per request (bare's over the api's)
        "score_over_bare_pydantic_cpu": round(
            results["bare_pydantic"]["server_cpu_us_per_request"]
            / results["api_score"]["server_cpu_us_per_request"],
            3,
        ),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"client={client} connections={args.connections} duration={args.duration:g}s per target "
        f"in {args.rounds} turns"
    )
    print(
        f"{'target':<14} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'requests':>9} "
        f"{'errors':>7} {'cpu us/req':>10}"
    )
    for name, row in results.items():
        print(
            f"{name:<14} {row['requests_per_second']:>10.1f} {row['p50_ms']:>9.2f} "
            f"{row['p99_ms']:>9.2f} {row['requests']:>9d} {row['errors']:>7d} "
            f"{row['server_cpu_us_per_request']:>10.1f}"
        )
    print(
        f"/score over the bare pydantic route: {report['score_over_bare_pydantic']:.3f} "
        f"(median of the rounds: {report['score_over_bare_pydantic_rounds']}); "
        f"from the CPU per request: {report['score_over_bare_pydantic_cpu']:.3f}"
    )
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
