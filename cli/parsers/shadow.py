"""`shadow`: compare a shadow candidate with the active model."""

from __future__ import annotations

from cli.parsers.common import AddCommand

EPILOG = """\
A candidate is a version the workers score beside the active one without publishing its
verdicts: `train --no-activate` makes the new version the candidate, `models shadow VERSION`
chooses one, `models unshadow VERSION` stops it. The report: each model's anomalies and
anomaly rate, the verdicts that would flip each way, agreement, the rank correlation of the
two models' scores (Spearman, over the workers' latest score pairs), how many workers' figures
were merged and whether they are stale. --promote activates the candidate afterwards, after a
confirmation on the terminal (or at once with --yes).

examples:
  vehicle-anomaly shadow                                the current candidate
  vehicle-anomaly shadow 20240116090000 --against 20240115100000
  vehicle-anomaly shadow --json | jq .agreement
  vehicle-anomaly shadow --promote                      show, ask, then activate it
"""


def add(command: AddCommand) -> None:
    """Add the command to the parser."""
    shadow = command(
        "shadow", "compare a shadow candidate's verdicts with the active model's", EPILOG
    )
    shadow.add_argument(
        "version",
        nargs="?",
        metavar="VERSION",
        help="the candidate (default: the registry's current candidate)",
    )
    shadow.add_argument(
        "--against",
        metavar="VERSION",
        help="the active version it was compared with (default: the active one now)",
    )
    shadow.add_argument("--json", action="store_true", help="print the api's report as JSON")
    shadow.add_argument(
        "--promote",
        action="store_true",
        help="then make the candidate the active model (asks first; see --yes)",
    )
    shadow.add_argument(
        "-y", "--yes", action="store_true", help="with --promote: do not ask, promote"
    )
    shadow.set_defaults(run="cli.shadow:run")
