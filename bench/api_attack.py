"""``/healthz`` latency while one key holder attacks the api's memory (issue 16, item 1).

Starts ``python -m api`` as ``bench/api_load.py`` does, then, for each attack, probes
``GET /healthz`` every 10 ms on its own connection while the attack runs, and reports the
probes' p50/p99/max and the api process's peak resident memory (``VmHWM``):

* ``score_60mb``: four concurrent 60 MB ``POST /score`` bodies (refused from Content-Length);
* ``ingest_10k_x_256``: eight concurrent ``POST /ingest`` of 10,000 records of 256 features.

A baseline of the probes with no attack runs first, in the same minute. Writes
``bench/results/api_attack.json``.

    .venv/bin/python -m bench.api_attack [--idle 3]

Traffic goes to 127.0.0.1 only; the server is stopped (by pid) when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.api_load import api_process
from bench.api_load_clients import API_KEY

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "api_attack.json"
MiB = 1024 * 1024
AUTH = {"X-API-Key": API_KEY, "Content-Type": "application/json"}


def _ingest_body() -> bytes:
    rows = np.round(np.random.default_rng(0).normal(size=(10_000, 256)), 6).tolist()
    records = [
        {
            "vehicle_id": f"VH-{i % 50}",
            "timestamp": f"2024-01-15T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "feature_vector": row,
        }
        for i, row in enumerate(rows)
    ]
    return json.dumps({"records": records, "params": {"detector": "point"}}).encode()


async def _post(client: httpx.AsyncClient, path: str, body: bytes) -> str:
    try:
        response = await client.post(path, content=body, headers=AUTH, timeout=300)
    except httpx.TransportError as error:
        return type(error).__name__
    return str(response.status_code)


def _probe(base: str, stop: threading.Event, times: list[float]) -> None:
    # A thread of its own, off the attacker's event loop, so that sending the attack's
    # bodies does not delay the probes on this side.
    with httpx.Client(base_url=base) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/healthz", timeout=60).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)


async def _run(
    base: str, path: str | None, body: bytes, copies: int, idle: float
) -> dict[str, Any]:
    stop = threading.Event()
    probed: list[float] = []
    probe = threading.Thread(target=_probe, args=(base, stop, probed), daemon=True)
    probe.start()
    answers: list[str] = []
    started = time.perf_counter()
    if path is None:
        await asyncio.sleep(idle)
    else:
        async with httpx.AsyncClient(base_url=base) as client:
            answers = list(
                await asyncio.gather(*(_post(client, path, body) for _ in range(copies)))
            )
    elapsed = time.perf_counter() - started
    stop.set()
    probe.join(timeout=120)
    times = np.asarray(probed)
    return {
        "seconds": round(elapsed, 2),
        "answers": {a: answers.count(a) for a in sorted(set(answers))},
        "probes": int(times.size),
        "healthz_p50_ms": round(float(np.percentile(times, 50)), 2),
        "healthz_p99_ms": round(float(np.percentile(times, 99)), 2),
        "healthz_max_ms": round(float(times.max()), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of the baseline")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    score_body = b'{"vehicle_id": "VH-1", "pad": "' + b"x" * (60 * MiB) + b'"}'
    ingest_body = _ingest_body()
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="api-attack-") as scratch,
        api_process(Path(scratch)) as (base, pid),
    ):
        results["idle"] = asyncio.run(_run(base, None, b"", 0, args.idle))
        results["score_60mb"] = asyncio.run(_run(base, "/score", score_body, 4, 0))
        results["score_60mb"]["peak_rss_mib"] = _vm_hwm(pid)
        results["ingest_10k_x_256"] = asyncio.run(_run(base, "/ingest", ingest_body, 8, 0))
        results["ingest_10k_x_256"]["peak_rss_mib"] = _vm_hwm(pid)
    report = {
        "benchmark": "GET /healthz every 10 ms while one key holder attacks the api's memory",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{'attack':<18} {'answers':<28} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'peak MiB':>9}"
    )
    for name, row in results.items():
        print(
            f"{name:<18} {json.dumps(row['answers']):<28} {row['healthz_p50_ms']:>8.2f} "
            f"{row['healthz_p99_ms']:>8.2f} {row['healthz_max_ms']:>8.2f} "
            f"{row.get('peak_rss_mib', ''):>9}"
        )
    print(f"written to {args.output}")
    return 0


def _vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


if __name__ == "__main__":
    sys.exit(main())
