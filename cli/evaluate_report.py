"""What `evaluate` reports: the figures of a replay, as JSON or as a short printed report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cli import ui
from cli.errors import CliError
from cli.evaluate_input import Item
from cli.metrics import Confusion


def figures(
    items: list[Item],
    verdicts: dict[int, dict[str, Any]],
    dead: dict[int, str],
    topics: dict[str, str],
    group: str,
    seconds: float,
    scoring_seconds: float,
) -> dict[str, Any]:
    """The figures of an evaluation: the confusion matrix and its rates, and what was read."""
    if len(dead) == len(items):
        reasons = Counter(dead.values()).most_common(1)[0][0]
        raise CliError(
            f"all {len(items):,} records were dead-lettered ({reasons}) on {topics['dlq']!r}: "
            "does the active model expect this many features?"
        )
    confusion = Confusion.of(
        (item.label, bool(verdicts.get(i, {}).get("is_anomaly", False)), item.kind, item.episode)
        for i, item in enumerate(items)
        if i not in dead
    )
    versions = sorted({str(v.get("model_version")) for v in verdicts.values()})
    return {
        **confusion.as_dict(),
        "produced": len(items),
        "dead_lettered": dict(Counter(dead.values())),
        "verdicts": len(verdicts),
        "model_versions": versions,
        "topic": topics["raw"],
        "group": group,
        "seconds": round(seconds, 2),
        "scoring_seconds": round(scoring_seconds, 2),
    }


def print_result(result: dict[str, Any]) -> None:
    """The figures as a short report on stdout."""
    c = result["confusion"]
    print(
        f"evaluated {result['records']:,} records ({result['anomalies']:,} with injected faults) "
        f"through {result['topic']} in {result['seconds']:.1f} s"
    )
    if result["model_versions"]:
        print(f"model version(s) in the verdicts: {', '.join(result['model_versions'])}")
    if result["dead_lettered"]:
        counts = ", ".join(f"{k} {v}" for k, v in result["dead_lettered"].items())
        print(f"dead-lettered and not counted: {counts}")
    print()
    print(
        ui.table(
            ["", "predicted anomaly", "predicted normal"],
            [
                ["actual anomaly", f"{c['tp']:,}", f"{c['fn']:,}"],
                ["actual normal", f"{c['fp']:,}", f"{c['tn']:,}"],
            ],
            right=(1, 2),
        )
    )
    print()
    print(f"precision            {result['precision']:.3f}")
    print(f"recall               {result['recall']:.3f}")
    print(f"F1                   {result['f1']:.3f}")
    print(f"false-positive rate  {result['false_positive_rate']:.3f}")
    kinds = result["recall_by_kind"]
    if kinds:
        print(
            "recall by kind:      "
            + ", ".join(
                f"{k} {v['recall']:.2f} ({v['caught']}/{v['injected']})" for k, v in kinds.items()
            )
        )
    faults = result["faults_caught"]
    if faults:
        print(
            "faults caught:       "
            + ", ".join(f"{k} {v['caught']}/{v['injected']}" for k, v in faults.items())
            + "  (caught: at least one of its records flagged)"
        )
