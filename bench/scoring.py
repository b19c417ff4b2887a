"""Scoring throughput: scikit-learn's decision_function against CompiledForest, same run.

    .venv/bin/python -m bench.scoring [--features 8] [--trees 100] [--seconds 1.0]

For each batch size it times both scorers on the same model and rows, prints rows/s and the
ratio, and writes bench/results/scoring.json. Also times decoding a Kafka batch of raw JSON
values into a feature matrix (msgspec) against pydantic's validation of the same values.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter
from sklearn.ensemble import IsolationForest

from shared.decoding import decode_batch
from shared.forest import CompiledForest
from shared.schemas import TelemetryRecord

RESULTS = Path(__file__).parent / "results"
BATCH_SIZES = [1, 10, 100, 1_000, 10_000]


def rate(score: Callable[[np.ndarray], object], rows: np.ndarray, seconds: float) -> float:
    """Rows per second over repeated calls lasting about ``seconds`` (after one warm-up call)."""
    score(rows)
    calls, started = 0, time.perf_counter()
    while True:
        score(rows)
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and calls >= 3:
            return float(calls * rows.shape[0] / elapsed)


def bench_scoring(features: int, trees: int, seconds: float) -> list[dict[str, float]]:
    rng = np.random.default_rng(0)
    model = IsolationForest(n_estimators=trees, random_state=0).fit(
        rng.normal(size=(10_000, features))
    )
    forest = CompiledForest.from_sklearn(model)
    rows_all = rng.normal(size=(max(BATCH_SIZES), features))
    results = []
    for size in BATCH_SIZES:
        rows = rows_all[:size]
        assert np.array_equal(forest.decision_function(rows), model.decision_function(rows))
        sklearn_rate = rate(model.decision_function, rows, seconds)
        compiled_rate = rate(forest.decision_function, rows, seconds)
        results.append(
            {
                "batch": size,
                "sklearn_rows_per_s": sklearn_rate,
                "compiled_rows_per_s": compiled_rate,
                "ratio": compiled_rate / sklearn_rate,
            }
        )
    return results


def bench_decoding(features: int, seconds: float) -> dict[str, float]:
    rng = np.random.default_rng(1)
    values = [
        json.dumps(
            {
                "vehicle_id": f"VH-{i % 500:03d}",
                "timestamp": "2024-01-15T10:00:00Z",
                "feature_vector": rng.normal(size=features).round(6).tolist(),
            }
        ).encode()
        for i in range(1_000)
    ]
    adapter = TypeAdapter(list[TelemetryRecord])

    def with_pydantic(_: object) -> object:
        return np.array(
            [r.feature_vector for r in adapter.validate_json(b"[" + b",".join(values) + b"]")]
        )

    def with_msgspec(_: object) -> object:
        return decode_batch(values, features).features

    marker = np.empty((len(values), 0))
    pydantic_rate = rate(with_pydantic, marker, seconds)
    msgspec_rate = rate(with_msgspec, marker, seconds)
    return {
        "batch": len(values),
        "pydantic_records_per_s": pydantic_rate,
        "msgspec_records_per_s": msgspec_rate,
        "ratio": msgspec_rate / pydantic_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=1.0, help="timing window per measurement")
    args = parser.parse_args()

    scoring = bench_scoring(args.features, args.trees, args.seconds)
    print(f"IsolationForest, {args.features} features, {args.trees} trees (rows/s)")
    print(f"{'batch':>7} {'scikit-learn':>14} {'CompiledForest':>15} {'ratio':>8}")
    for row in scoring:
        print(
            f"{row['batch']:>7} {row['sklearn_rows_per_s']:>14,.0f} {row['compiled_rows_per_s']:>15,.0f} "
            f"{row['ratio']:>7.1f}x"
        )
    decoding = bench_decoding(args.features, args.seconds)
    print(f"\ndecoding a batch of {decoding['batch']} raw values (records/s)")
    print(
        f"  pydantic {decoding['pydantic_records_per_s']:,.0f}   msgspec {decoding['msgspec_records_per_s']:,.0f}"
        f"   ratio {decoding['ratio']:.1f}x"
    )

    RESULTS.mkdir(exist_ok=True)
    out = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpu_count": __import__("os").cpu_count(),
            "platform": platform.platform(),
        },
        "model": {"features": args.features, "trees": args.trees},
        "scoring": scoring,
        "decoding": decoding,
        "targets": {"single_row_ratio_min": 200, "batch_1000_ratio_min": 5},
        "targets_met": {
            "single_row": scoring[0]["ratio"] >= 200,
            "batch_1000": next(r for r in scoring if r["batch"] == 1_000)["ratio"] >= 5,
        },
    }
    (RESULTS / "scoring.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {RESULTS / 'scoring.json'}")


if __name__ == "__main__":
    main()
