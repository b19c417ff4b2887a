"""What `evaluate` reports: the figures of a replay, as JSON or as a short printed report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cli import ui
from cli.evaluate_input import Item
from cli.metrics import Confusion


def figures(
    items: list[Item],
    verdicts: dict[int, dict[str, Any]],
    dead: dict[int, str],
    where: dict[str, Any],
) -> dict[str, Any]:
    """The figures of an evaluation: the confusion matrix and its rates, and what was read.

    ``where`` says how the records were scored (``mode``: ``pipeline`` with its topic, group
    and timings, or ``offline`` with the model).
    """
    confusion = Confusion.of(
        (item.label, bool(verdicts.get(i, {}).get("is_anomaly", False)), item.kind, item.episode)
        for i, item in enumerate(items)
        if i not in dead
    )
    versions = sorted({str(v.get("model_version")) for v in verdicts.values()})
    counted = confusion.as_dict()
    return {
        **counted,
        "false_alarm_rate": counted["false_positive_rate"],
        "produced": len(items) if where.get("mode") == "pipeline" else 0,
        "dead_lettered": dict(Counter(dead.values())),
        "verdicts": len(verdicts),
        "model_versions": versions,
        **where,
    }


def print_result(result: dict[str, Any]) -> None:
    """The figures as a short report on stdout."""
    c = result["confusion"]
    through = (
        f"offline ({result['model']})"
        if result.get("mode") == "offline"
        else f"through {result['topic']}"
    )
    print(
        f"evaluated {result['records']:,} records ({result['anomalies']:,} labelled anomalous) "
        f"{through} in {result['seconds']:.1f} s"
    )
    if result.get("trained_on"):
        print(
            f"trained on {result['trained_on']:,} records ({result['split']}); "
            f"{result['training_labelled_left_out']:,} labelled records of that part left out"
        )
    if result["model_versions"] and result.get("mode") != "offline":
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
    print(f"false-alarm rate     {result['false_alarm_rate']:.4f}")
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
    if result.get("episodes"):
        from cli.evaluate_episodes import print_episodes

        print_episodes(result["episodes"])
    for warning in result.get("warnings") or []:
        print(f"warning: {warning}")
