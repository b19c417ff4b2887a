"""Alert episodes on the README's seven simulated runs: the figures of the defaults, and a sweep.

    .venv/bin/python -m bench.episodes [--runs 7@12,1@12] [--sweep] [--out FILE]

Each run is the one of :mod:`bench.detection` (20 vehicles, 10,000 records, 2% faults of the
five kinds, a ``ContextForest`` with its defaults and ``random_state`` 42), scored in stream
order with attributions exactly as the worker scores one partition, and fed to an
:class:`shared.episodes.EpisodeBook` with the ``ALERT_*`` defaults. ``--sweep`` repeats the
episodes over a grid of N of M, K and S (``ALERT_OPEN_SEVERITY``; scoring once per run) and prints, per setting, the
worst precision and recall over the runs, the false alerts per 1,000 vehicle-hours and the
alert messages per anomalous verdict: the table the defaults were chosen from
(``docs/alerts.md``). Writes bench/results/episodes.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.detection import RANDOM_STATE, RUNS, parse_runs, run_records
from cli.episode_metrics import episode_figures, episode_spans, fault_spans, vehicle_hours
from consumer.wiring import episode_rules
from shared.context import ContextForest, epoch_seconds
from shared.detector import Detector
from shared.episodes import EpisodeBook, EpisodeRules
from shared.settings import Settings
from shared.training import context_meta
from shared.training_schemas import ModelMeta
from simulator import feature_matrix
from simulator.sensors import FEATURES

RESULTS = Path(__file__).parent / "results"
TOPIC = "telemetry.raw"
INTERVAL_SECONDS = 10.0


@dataclass(frozen=True)
class ScoredRun:
    """One run's records, scores, flags and attributions, in stream order."""

    seed: int
    start: str
    vehicle_ids: list[str]
    timestamps: list[str]
    times: npt.NDArray[np.float64]
    faults: list[int | None]
    scores: npt.NDArray[np.float64]
    flags: npt.NDArray[np.bool_]
    attributions: dict[int, list[dict[str, Any]]]
    version: str
    scale: float


def scored_run(seed: int, hour: int, top_k: int) -> ScoredRun:
    """One of the README's runs, trained and scored as one partition of the worker."""
    start, history, stream = run_records(seed, hour)
    ids = [r.vehicle_id for r in history]
    times = epoch_seconds([r.timestamp for r in history])
    X = feature_matrix(history)
    model = ContextForest(random_state=RANDOM_STATE).fit(ids, times, X)
    extra = {**context_meta(model, ids, times, X), "feature_names": list(FEATURES)}
    meta = ModelMeta.model_validate(
        {
            "version": f"bench-{seed}-{hour}",
            "created_at": start,
            "n_features": X.shape[1],
            "record_count": len(ids),
            "params": {},
            "sha256": "0" * 64,
            **extra,
        }
    )
    detector = Detector(meta, model)
    from shared.verdicts import score_context_rows

    stream_ids = [r.vehicle_id for r in stream]
    stream_times = epoch_seconds([r.timestamp for r in stream])
    scored = score_context_rows(
        detector,
        detector.new_state(),
        stream_ids,
        stream_times,
        feature_matrix(stream),
        top_k,
        np.arange(len(stream), dtype=np.int64),
    )
    return ScoredRun(
        seed,
        start.isoformat().replace("+00:00", "Z"),
        stream_ids,
        [r.timestamp for r in stream],
        stream_times,
        [r.episode for r in stream],
        scored.scores,
        scored.flags,
        scored.attributions,
        detector.version,
        1.0 + float(detector.isolation_forest.offset_),
    )


def episodes_of(run: ScoredRun, rules: EpisodeRules) -> dict[str, Any]:
    """The run's episode figures under ``rules``."""
    book = EpisodeBook(rules, run.scale)
    events = book.feed(
        TOPIC,
        0,
        run.vehicle_ids,
        run.timestamps,
        run.times,
        range(len(run.vehicle_ids)),
        run.scores,
        run.flags,
        run.attributions,
        run.version,
    )
    bodies = [json.loads(e.encode()) for e in events]
    faults = fault_spans(zip(run.vehicle_ids, run.times.tolist(), run.faults, strict=True))
    hours = vehicle_hours(zip(run.vehicle_ids, run.times.tolist(), strict=True), INTERVAL_SECONDS)
    found = episode_figures(
        faults,
        episode_spans(bodies, open_until=float(run.times.max())),
        messages=len(bodies),
        anomalous_verdicts=int(run.flags.sum()),
        hours=hours,
        closed=sum(1 for b in bodies if b["event"] == "closed"),
    )
    found["by_event"] = {
        kind: sum(1 for b in bodies if b["event"] == kind)
        for kind in ("opened", "updated", "closed")
    }
    return {"seed": run.seed, "start": run.start, **found}


def _sweep(runs: list[ScoredRun]) -> list[dict[str, Any]]:
    rows = []
    grid = itertools.product(
        ((1, 1), (2, 3), (2, 5), (3, 10)), (3, 10, 30, 60), (0.05, 0.08, 0.1, 0.2, 1.0)
    )
    for (n, m), k, s in grid:
        if n == 1 and s < 1.0:
            continue  # one anomalous record opens an episode anyway
        rules = EpisodeRules(open_anomalous=n, open_window=m, close_normal=k, open_severity=s)
        per_run = [episodes_of(run, rules) for run in runs]
        rows.append(
            {
                "N": n,
                "M": m,
                "K": k,
                "S": s,
                "min_precision": min(r["precision"] or 0 for r in per_run),
                "min_recall": min(r["recall"] or 0 for r in per_run),
                "false_per_1000_vehicle_hours": round(
                    float(np.mean([r["false_per_1000_vehicle_hours"] for r in per_run])), 1
                ),
                "messages_per_anomalous_verdict": round(
                    sum(r["messages"] for r in per_run)
                    / sum(r["anomalous_verdicts"] for r in per_run),
                    3,
                ),
                "messages_per_episode": round(
                    sum(r["messages"] for r in per_run) / sum(r["episodes"] for r in per_run), 2
                ),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=parse_runs, default=list(RUNS), help="SEED@HOUR,... (default the seven)"
    )
    parser.add_argument("--sweep", action="store_true", help="also sweep N of M, K and T")
    parser.add_argument("--out", type=Path, default=RESULTS / "episodes.json", help="JSON file")
    args = parser.parse_args()
    settings = Settings()
    rules = episode_rules(settings)
    runs = [scored_run(s, h, max(settings.attribution_top_k, 3)) for s, h in args.runs]
    results = [episodes_of(run, rules) for run in runs]
    print(
        f"defaults: N={rules.open_anomalous} of M={rules.open_window}, K={rules.close_normal}, "
        f"T={rules.silence_seconds:g} s, S={rules.open_severity:g}"
    )
    print(
        "seed  start  episodes  faults  precision  recall  false/1000 vh  "
        "messages  per episode  per anomalous verdict"
    )
    for r in results:
        print(
            f"{r['seed']:>4}  {r['start'][11:16]}  {r['episodes']:>8}  {r['faults']:>6}  "
            f"{r['precision']:>9.3f}  {r['recall']:>6.3f}  {r['false_per_1000_vehicle_hours']:>13.1f}"
            f"  {r['messages']:>8}  {r['messages_per_episode']:>11.2f}  "
            f"{r['messages_per_anomalous_verdict']:>21.3f}"
        )
    sweep = _sweep(runs) if args.sweep else []
    if sweep:
        print("\n N   M    K     S  min P  min R  false/1000 vh  msgs/verdict  msgs/episode")
        for row in sweep:
            print(
                f"{row['N']:>2}  {row['M']:>2}  {row['K']:>3}  {row['S']:>4g}  "
                f"{row['min_precision']:.3f}  {row['min_recall']:.3f}  "
                f"{row['false_per_1000_vehicle_hours']:>13.1f}  "
                f"{row['messages_per_anomalous_verdict']:>12.3f}  {row['messages_per_episode']:>12.2f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "random_state": RANDOM_STATE,
        "rules": {
            "N": rules.open_anomalous,
            "M": rules.open_window,
            "K": rules.close_normal,
            "T": rules.silence_seconds,
            "S": rules.open_severity,
        },
        "runs": results,
        "sweep": sweep,
    }
    args.out.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
