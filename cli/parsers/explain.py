"""`explain`: which features made a verdict anomalous."""

from __future__ import annotations

from cli.parsers.common import AddCommand
from cli.parsers.types import positive_float, positive_int

EPILOG = """\
An anomalous verdict carries its attribution: the features that drove it, ranked by their
share of the record's isolation. Each gets a bar as long as its share, the record's value and
where the value lies against the training data's typical range (its 5th to 95th percentile):
↑ above, ↓ below, or within it. Features are named when the model was trained with names
(`train --simulated`, `simulate --train` and `train --features` give them), else `feature N`.
A normal verdict has no attribution. Verdicts: JSON lines as `tail --json` prints them, one
JSON object, or a JSON list, from FILE or stdin (-); --record scores telemetry records
through the api (POST /score) and explains the answers; --from-topic reads the anomalies
topic (ANOMALY_TOPIC) without a consumer group, as tail does.

examples:
  vehicle-anomaly tail --json | vehicle-anomaly explain       explain verdicts as they arrive
  vehicle-anomaly explain verdict.json                        one verdict, or JSON lines
  vehicle-anomaly explain --record record.json                score a record through the api
  vehicle-anomaly explain --from-topic --last 5 --vehicle VH-002
  vehicle-anomaly explain --from-topic --json | jq '.[0].name'
"""


def add(command: AddCommand) -> None:
    """Add the command to the parser."""
    explain = command("explain", "show which features made a verdict anomalous, as bars", EPILOG)
    source = explain.add_mutually_exclusive_group()
    source.add_argument(
        "verdicts",
        nargs="?",
        metavar="FILE",
        help="verdicts as JSON (JSON lines, an object or a list); - for stdin (the default "
        "when stdin is not a terminal)",
    )
    source.add_argument(
        "--record",
        metavar="FILE",
        help="telemetry records (JSON, - for stdin) to score through the api and explain",
    )
    source.add_argument(
        "--from-topic",
        action="store_true",
        help="the latest anomalous verdicts on the anomalies topic",
    )
    explain.add_argument("--vehicle", metavar="ID", help="only the verdicts of this vehicle")
    explain.add_argument(
        "--model",
        metavar="VERSION",
        help="--record: score with this version (default: the active one)",
    )
    topic_options = explain.add_argument_group("with --from-topic")
    topic_options.add_argument(
        "--last", type=positive_int, metavar="N", help="the latest N anomalous verdicts (default 1)"
    )
    topic_options.add_argument(
        "--topic",
        metavar="NAME",
        help="anomalies topic (env ANOMALY_TOPIC; default telemetry.anomalies)",
    )
    topic_options.add_argument(
        "--scan",
        type=positive_int,
        metavar="N",
        help="look at most N verdicts back on each partition (default 10000)",
    )
    topic_options.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="give up reading after this long (default 30)",
    )
    explain.add_argument(
        "--width",
        type=positive_int,
        default=30,
        metavar="N",
        help="a 100%% share's bar length, in characters (default 30)",
    )
    explain.add_argument(
        "--json",
        action="store_true",
        help="print each verdict's attribution as received, one JSON list a line (null for a "
        "verdict without one)",
    )
    explain.set_defaults(run="cli.explain:run")
