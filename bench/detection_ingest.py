"""False alarms of a model trained the way a new user trains one: a plain ``POST /ingest``.

    .venv/bin/python -m bench.detection_ingest [--runs 7@12,1@12]

For each of the README's seven runs, a real ``python -m api`` process (its own model
directory, a signing key, no training parameters in the body, so every default applies)
trains on the same ``training_history`` as ``bench.detection``; the version it publishes is
loaded from the registry with the shared loader, and the run's stream is scored offline, which
gives exactly the worker's scores. Reports the figures of each run beside ``bench.detection``'s
(a ``ContextForest`` with its own defaults and ``random_state=42``) and writes
bench/results/detection-ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.api_load import serve_process
from bench.detection import RUNS, figures, parse_runs, run_records, simulated_run
from bench.pipeline_broker import free_port
from cli.metrics import Confusion
from shared.context import epoch_seconds
from shared.detector import load_detector
from shared.registry import ModelRegistry
from shared.verdicts import score_context_rows
from simulator import feature_matrix

RESULTS = Path(__file__).resolve().parent / "results"
KEY = "bench-detection-key"
SIGNING = "bench-detection-signing-key"


@contextmanager
def api(model_dir: Path, log: Path) -> Iterator[str]:
    """``python -m api`` on a free port; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "API_KEYS": KEY,
        "MODEL_SIGNING_KEY": SIGNING,
        "MODEL_DIR": str(model_dir),
        "LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    with serve_process([sys.executable, "-m", "api"], env, base + "/healthz", log):
        yield base


def ingest_run(base: str, model_dir: Path, seed: int, hour: int) -> dict[str, Any]:
    """Train one run's model through ``POST /ingest`` with defaults; score its stream."""
    start, history, stream = run_records(seed, hour)
    body = {"records": [r.to_record() for r in history]}
    answer = httpx.post(base + "/ingest", json=body, headers={"X-API-Key": KEY}, timeout=600)
    answer.raise_for_status()
    version = answer.json()["model_version"]
    detector = load_detector(ModelRegistry(model_dir, signing_key=SIGNING.encode()), version)
    scored = score_context_rows(
        detector,
        detector.new_state(),
        [r.vehicle_id for r in stream],
        epoch_seconds([r.timestamp for r in stream]),
        feature_matrix(stream),
        top_k=0,
    )
    confusion = Confusion.of(
        (r.label, bool(flag), r.kind, r.episode)
        for r, flag in zip(stream, scored.flags, strict=True)
    )
    return {
        "seed": seed,
        "start": start.isoformat().replace("+00:00", "Z"),
        "version": version,
        "params": answer.json().get("params"),
        **figures(confusion),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=parse_runs, default=list(RUNS), help="SEED@HOUR,... (default the seven)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "detection-ingest.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "models"
        with api(model_dir, Path(tmp) / "api.log") as base:
            for seed, hour in args.runs:
                through_api = ingest_run(base, model_dir, seed, hour)
                offline = simulated_run(seed, hour)
                rows.append({"ingest_defaults": through_api, "bench_detection": offline})
                print(
                    f"seed {seed} {hour:02d}:00  POST /ingest defaults: false alarms "
                    f"{through_api['false_alarm_rate']:.4f}, F1 {through_api['f1']:.3f}   "
                    f"bench.detection: {offline['false_alarm_rate']:.4f}, F1 {offline['f1']:.3f}",
                    flush=True,
                )
    worst = max(r["ingest_defaults"]["false_alarm_rate"] for r in rows)
    worst_offline = max(r["bench_detection"]["false_alarm_rate"] for r in rows)
    print(f"worst false-alarm rate: POST /ingest {worst:.4f}, bench.detection {worst_offline:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(),
                "python": platform.python_version(),
                "runs": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
