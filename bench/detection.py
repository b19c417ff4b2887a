"""Detection quality of the context model, offline: the README's seven runs and real recordings.

    .venv/bin/python -m bench.detection [--runs 7@12,1@12] [--real DIR | --no-real]
                                        [--only wsn_motes,water_flow] [--max-rows N]
                                        [--false-alarm-rate R] [--max-samples N]
                                        [--random-state N] [--jobs 2]

Simulated runs: 20 vehicles, 10,000 records with 2% faults of all five kinds, starting at
2025-03-01 at the run's hour; the model is a ``ContextForest`` with its defaults (and a fixed
``random_state``) trained on ``training_history(20, 10000, seed=..., end=start)``; scores
come from ``score_records`` in stream order, exactly what the worker publishes.

Real recordings (``--real``, default ``var/realdata/csv`` when it exists): each is trained on
the first half of each vehicle's records (less the rows its source labels anomalous), then the second half is scored clean (its false
alarms) and with faults of the five kinds injected by a seeded injector (see
:mod:`bench.detection_real`). Rows the source labels anomalous (``wsn_motes``) are kept in the
replay, for context, but left out of the figures; how many of them were flagged is reported.

``--false-alarm-rate``, ``--max-samples`` and ``--random-state`` train every model with that
``ContextForest`` parameter instead of its default, or of 42 for the seed (the trade-offs in
docs/detection.md and docs/performance.md; other forests of the same data); ``--jobs``
evaluates that many runs and recordings at once (the figures do not depend on it). Prints a
table per part and writes bench/results/detection.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.detection_real import Injected, first_half, inject, load
from cli.metrics import Confusion
from shared.context import ContextForest, epoch_seconds
from simulator import FleetSimulator, SimRecord, SimulationConfig, feature_matrix, training_history

RESULTS = Path(__file__).parent / "results"
REAL_DIR = Path("var/realdata/csv")
RUNS = ((7, 0), (7, 6), (7, 12), (7, 18), (1, 12), (2, 12), (3, 12))
RANDOM_STATE = 42
KINDS = ("spike", "drift", "stuck", "dropout", "noise")
# The real recordings' second injection: drift, stuck, dropout and noise of 60-300 rows on
# about a tenth of the rows, in LONG_TRIALS seeded trials.
LONG_FAULTS = (60, 300)
LONG_RATE = 0.1
LONG_TRIALS = 8


def figures(confusion: Confusion) -> dict[str, Any]:
    """The reported figures of one evaluation."""
    found = confusion.as_dict()
    return {
        "records": found["records"],
        "anomalies": found["anomalies"],
        "precision": found["precision"],
        "recall": found["recall"],
        "f1": found["f1"],
        "false_alarm_rate": found["false_positive_rate"],
        "recall_by_kind": {k: v["recall"] for k, v in found["recall_by_kind"].items()},
        "faults_caught": found["faults_caught"],
        "faults": found["faults"],
        "confusion": found["confusion"],
    }


def run_records(seed: int, hour: int) -> tuple[datetime, list[SimRecord], list[SimRecord]]:
    """One of the README's runs: its start, the training history before it, and its stream
    (10,000 records of 20 vehicles with 2% injected faults)."""
    start = datetime(2025, 3, 1, hour, tzinfo=UTC)
    history = training_history(20, 10_000, seed=seed, end=start)
    stream = FleetSimulator(
        SimulationConfig(vehicles=20, anomaly_rate=0.02, seed=seed, start=start)
    ).take(10_000)
    return start, history, stream


def simulated_run(
    seed: int, hour: int, params: dict[str, Any] | None = None, random_state: int = RANDOM_STATE
) -> dict[str, Any]:
    """One of the README's runs, trained (``ContextForest`` defaults, or ``params``) and scored
    offline."""
    began = time.perf_counter()
    start, history, stream = run_records(seed, hour)
    model = ContextForest(random_state=random_state, **(params or {})).fit(
        [r.vehicle_id for r in history],
        epoch_seconds([r.timestamp for r in history]),
        feature_matrix(history),
    )
    trained = time.perf_counter() - began
    scores = model.score_records(
        [r.vehicle_id for r in stream],
        epoch_seconds([r.timestamp for r in stream]),
        feature_matrix(stream),
    )
    confusion = Confusion.of(
        (r.label, bool(s < 0), r.kind, r.episode) for r, s in zip(stream, scores, strict=True)
    )
    return {
        "seed": seed,
        "start": start.isoformat().replace("+00:00", "Z"),
        **figures(confusion),
        "train_seconds": round(trained, 2),
        "seconds": round(time.perf_counter() - began, 2),
    }


def real_run(
    path: Path,
    rate: float,
    seed: int,
    max_rows: int | None,
    params: dict[str, Any] | None = None,
    random_state: int = RANDOM_STATE,
) -> dict[str, Any]:
    """One real recording: trained on each vehicle's first half, the second half replayed."""
    began = time.perf_counter()
    rec = load(path)
    if max_rows is not None and len(rec.vehicles) > max_rows:
        return {"name": rec.name, "skipped": f"{len(rec.vehicles):,} rows > --max-rows"}
    half = first_half(rec)
    train = half & (rec.source_label == 0)  # rows the source labels anomalous do not train
    ids = [v for v, t in zip(rec.vehicles, train, strict=True) if t]
    model = ContextForest(random_state=random_state, **(params or {})).fit(
        ids, rec.times[train], rec.X[train]
    )
    rest = ~half
    replay_ids = [v for v, t in zip(rec.vehicles, rest, strict=True) if t]
    times, clean = rec.times[rest], rec.X[rest]
    source = rec.source_label[rest].astype(bool)
    counted = ~source
    clean_flags = model.score_records(replay_ids, times, clean) < 0
    sd = rec.X[train].std(axis=0)
    faults = inject(replay_ids, clean, sd, rate, seed)
    confusion = Confusion.of(_labelled(model, replay_ids, times, faults, counted))
    # Long faults are few per replay: LONG_TRIALS seeded injections, their faults numbered
    # apart, make one confusion matrix.
    long_confusion = Confusion.of(
        row
        for trial in range(LONG_TRIALS)
        for row in _labelled(
            model,
            replay_ids,
            times,
            inject(replay_ids, clean, sd, LONG_RATE, seed + trial, lengths=LONG_FAULTS),
            counted,
            numbered_from=trial * 1_000_000,
        )
    )
    result = {
        "name": rec.name,
        "sensors": len(rec.sensors),
        "vehicles": len(set(rec.vehicles)),
        "trained_on": int(train.sum()),
        "training_labelled_left_out": int((half & ~train).sum()),
        "replayed": int(rest.sum()),
        "masked_glitches": rec.masked,
        **figures(confusion),
        "clean_false_alarm_rate": round(float(clean_flags[counted].mean()), 4),
        "long_faults": {
            "rows": list(LONG_FAULTS),
            "rate": LONG_RATE,
            "trials": LONG_TRIALS,
            **figures(long_confusion),
        },
        "seconds": round(time.perf_counter() - began, 2),
    }
    if source.any():
        result["source_labelled"] = {
            "rows": int(source.sum()),
            "flagged": int(clean_flags[source].sum()),
        }
    return result


def _labelled(
    model: ContextForest,
    ids: list[str],
    times: Any,
    faults: Injected,
    counted: Any,
    numbered_from: int = 0,
) -> list[tuple[int, bool, str | None, int | None]]:
    """(label, flagged, kind, fault number) of each counted row of one injected replay."""
    flags = model.score_records(ids, times, faults.X) < 0
    return [
        (int(bool(k)), bool(f), k or None, None if e is None else numbered_from + e)
        for k, f, e, keep in zip(faults.kind, flags, faults.episode, counted, strict=True)
        if keep
    ]


def parse_runs(text: str) -> list[tuple[int, int]]:
    """``SEED@HOUR,...`` (an hour left out is 12) as (seed, hour) pairs."""
    runs = []
    for part in text.split(","):
        seed, _, hour = part.partition("@")
        runs.append((int(seed), int(hour or 12)))
    return runs


def _caught(result: dict[str, Any]) -> str:
    found = result["faults"]
    return f"{found['caught']}/{found['total']}"


def _kinds(result: dict[str, Any]) -> str:
    by_kind = result["recall_by_kind"]
    return " / ".join(f"{by_kind[k]:.2f}" if k in by_kind else "-" for k in KINDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=parse_runs, default=list(RUNS), help="SEED@HOUR,... (default the seven)"
    )
    parser.add_argument("--no-simulated", action="store_true", help="skip the simulated runs")
    parser.add_argument(
        "--real",
        type=Path,
        default=REAL_DIR if REAL_DIR.is_dir() else None,
        help=f"the real recordings' CSV directory (default {REAL_DIR} when it exists)",
    )
    parser.add_argument("--no-real", action="store_true", help="skip the real recordings")
    parser.add_argument("--only", type=lambda t: t.split(","), help="real recordings by name")
    parser.add_argument("--max-rows", type=int, help="skip real recordings with more rows")
    parser.add_argument("--rate", type=float, default=0.02, help="injected fault share (0.02)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the injector (7)")
    parser.add_argument(
        "--false-alarm-rate", type=float, help="train with this false_alarm_rate (its default)"
    )
    parser.add_argument("--max-samples", type=int, help="train with this max_samples (its default)")
    parser.add_argument(
        "--random-state", type=int, default=RANDOM_STATE, help=f"the forests' seed ({RANDOM_STATE})"
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs evaluated at once (1)")
    parser.add_argument("--out", type=Path, default=RESULTS / "detection.json", help="JSON file")
    args = parser.parse_args()
    params: dict[str, Any] = {}
    if args.false_alarm_rate is not None:
        params["false_alarm_rate"] = args.false_alarm_rate
    if args.max_samples is not None:
        params["max_samples"] = args.max_samples
    runs = [] if args.no_simulated else args.runs
    replay_real = args.real is not None and not args.no_real
    paths: list[Path] = []
    if replay_real:
        paths = sorted(args.real.glob("*.csv"))
        if args.only:
            paths = [p for p in paths if p.stem in args.only]
    with ProcessPoolExecutor(args.jobs) if args.jobs > 1 else nullcontext() as pool:
        mapped = pool.map if pool is not None else map
        simulated = list(
            mapped(
                partial(simulated_run, params=params, random_state=args.random_state),
                [s for s, _ in runs],
                [h for _, h in runs],
            )
        )
        real = list(
            mapped(
                partial(
                    real_run,
                    rate=args.rate,
                    seed=args.seed,
                    max_rows=args.max_rows,
                    params=params,
                    random_state=args.random_state,
                ),
                paths,
            )
        )
    header = "spike / drift / stuck / dropout / noise"
    if simulated:
        print(f"seed  start  precision  recall  F1     false alarms  recall: {header}")
        for r in simulated:
            print(
                f"{r['seed']:>4}  {r['start'][11:16]}  {r['precision']:>9.3f}  {r['recall']:>6.3f}"
                f"  {r['f1']:.3f}  {r['false_alarm_rate']:>12.4f}  {_kinds(r)}"
            )
    if replay_real:
        print(
            f"\nrecording  precision  recall  F1  false alarms (faults / clean)  recall: {header}"
        )
        for r in real:
            if "skipped" in r:
                print(f"{r['name']}: skipped ({r['skipped']})")
                continue
            print(
                f"{r['name']}  {r['precision']:.3f}  {r['recall']:.3f}  {r['f1']:.3f}  "
                f"{r['false_alarm_rate']:.4f} / {r['clean_false_alarm_rate']:.4f}  {_kinds(r)}"
            )
        low, high = LONG_FAULTS
        print(f"\nlong faults ({low}-{high} rows)  precision  recall  F1  recall: {header}")
        for r in real:
            if "skipped" not in r:
                x = r["long_faults"]
                print(
                    f"{r['name']}  {x['precision']:.3f}  {x['recall']:.3f}  {x['f1']:.3f}  "
                    f"{_kinds(x)}  caught {_caught(x)}"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "random_state": args.random_state,
        "model_params": params,
        "simulated": simulated,
        "real": real,
        "real_injection": {"rate": args.rate, "seed": args.seed},
    }
    args.out.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
