"""``vehicle-anomaly shadow``: how a candidate model's verdicts compare with the active one's.

The workers score every record with the active version and, in shadow, with the candidate
(trained with ``train --no-activate``, or chosen with ``models shadow VERSION``), and the api
merges their figures (``GET /models/{candidate}/shadow``). This prints them as a table and,
with ``--promote``, makes the candidate the active model once the operator agrees.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cli import ui
from cli.apiclient import ApiClient
from cli.config import Context
from cli.errors import CliError, UsageError
from cli.models import version_path

NO_CANDIDATE = (
    "no shadow candidate: train one with `vehicle-anomaly train ... --no-activate`, or choose "
    "a version with `vehicle-anomaly models shadow VERSION`"
)


def percent(value: Any, digits: int = 2) -> str:
    return f"{value * 100:.{digits}f}%" if isinstance(value, int | float) else "-"


def count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def render(report: dict[str, Any]) -> str:
    """The report as text: which versions, the two models side by side, then the agreement."""
    candidate = report.get("candidate", "?")
    active = report.get("active")
    records = report.get("records") or 0
    if report.get("shadowing"):
        shadowing = "scored in shadow now"
    elif records:
        shadowing = "not scored in shadow now: the figures are from when it was"
    else:
        shadowing = "not scored in shadow: `vehicle-anomaly models shadow VERSION` starts it"
    lines = [f"candidate {candidate} ({shadowing})"]
    if active is None:
        lines.append("compared with: nothing (there is no active model to compare with)")
        return "\n".join(lines)
    lines.append(f"compared with {active}")
    if not records:
        lines.append("")
        lines.append(
            "no records compared yet: the workers score the candidate beside the active model "
            "as records arrive and write their figures every few seconds"
            + (
                " (no worker wrote recently: are the workers running?)"
                if report.get("stale")
                else ""
            )
        )
        return "\n".join(lines)
    sample = report.get("rank_correlation_sample")
    correlation = report.get("rank_correlation")
    stale = report.get("stale")
    models = [
        ["version", active, candidate],
        [
            "anomalies",
            count(report.get("active_anomalies")),
            count(report.get("candidate_anomalies")),
        ],
        [
            "anomaly rate",
            percent(report.get("active_anomaly_rate"), 3),
            percent(report.get("candidate_anomaly_rate"), 3),
        ],
    ]
    agreement = [
        ["records compared", count(records), "scored by both models"],
        [
            "flips to anomaly",
            count(report.get("flips_to_anomaly")),
            "normal for the active model, anomalous for the candidate",
        ],
        [
            "flips to normal",
            count(report.get("flips_to_normal")),
            "anomalous for the active model, normal for the candidate",
        ],
        ["agreement", percent(report.get("agreement"), 3), "records with the same verdict"],
        [
            "rank correlation",
            f"{correlation:.4f}" if isinstance(correlation, int | float) else "-",
            f"Spearman, of the scores, over a sample of {count(sample)} records",
        ],
        ["workers", count(report.get("workers")), "whose figures were merged"],
        [
            "stale",
            "yes" if stale else "no",
            "no worker wrote recently: are the workers running?"
            if stale
            else "the workers wrote recently",
        ],
    ]
    # both tables' labels in one column
    width = max(len(row[0]) for row in models + agreement)
    for row in models + agreement:
        row[0] = row[0].ljust(width)
    lines += ["", ui.table(["", "ACTIVE", "CANDIDATE"], models, right=(1, 2))]
    lines += ["", ui.table(None, agreement, right=(1,))]
    if report.get("observed_at"):
        lines += ["", f"observed at {report['observed_at']}"]
    return "\n".join(lines)


def current_candidate(client: ApiClient) -> str:
    """The registry's candidate (``GET /models``), or a one-line error when there is none."""
    answer = client.request("GET", "/models")
    candidate = answer.get("candidate") if isinstance(answer, dict) else None
    if not candidate:
        raise CliError(NO_CANDIDATE)
    return str(candidate)


def run(args: argparse.Namespace, context: Context) -> int:
    if args.yes and not args.promote:
        raise UsageError("--yes goes with --promote")
    if args.promote and not args.yes and not sys.stdin.isatty():
        raise UsageError("--promote asks for a confirmation on a terminal; elsewhere add --yes")
    for name in (args.version, args.against):
        if name is not None:
            version_path(name)  # a bad name is a usage error, before any request
    client = ApiClient(context)
    version = args.version or current_candidate(client)
    path = version_path(version)
    query = {"against": args.against} if args.against else None
    report = client.request("GET", path + "/shadow", query=query)
    if not isinstance(report, dict):
        raise CliError(f"the api answered GET {path}/shadow with something unexpected")
    if args.json:
        print(json.dumps(report, sort_keys=True), flush=True)
    else:
        print(render(report), flush=True)
    if not args.promote:
        return 0
    replacing = (
        f" (replacing {report['active']})" if report.get("active") and not args.against else ""
    )
    if not args.yes and not ui.confirm(f"promote {version} to the active model{replacing}?"):
        raise CliError(f"not promoted: {version} stays a candidate")
    answer = client.request("POST", path + "/activate")
    if args.json:
        print(json.dumps(answer, sort_keys=True), flush=True)
    else:
        print(f"\nmodel {version} is now active{replacing}")
    return 0
