"""`tail`: print the verdicts on the anomalies topic."""

from __future__ import annotations

from cli.parsers.common import AddCommand
from cli.parsers.types import positive_float, positive_int

EPILOG = """\
Reads the anomalies topic (ANOMALY_TOPIC, default telemetry.anomalies) without a consumer
group, so it disturbs nobody and commits nothing. TIME is the record's own timestamp; SOURCE
is the raw record's partition and offset.

examples:
  vehicle-anomaly tail                                  new verdicts, as a table
  vehicle-anomaly tail --from-beginning --limit 20      the first 20 verdicts kept
  vehicle-anomaly tail --json | jq .anomaly_score       JSON lines
"""


def add(command: AddCommand) -> None:
    """Add the command to the parser."""
    tail = command("tail", "print the verdicts on the anomalies topic as they arrive", EPILOG)
    tail.add_argument(
        "--topic",
        metavar="NAME",
        help="anomalies topic (env ANOMALY_TOPIC; default telemetry.anomalies)",
    )
    tail.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the oldest verdict kept, not at new ones",
    )
    tail.add_argument("--limit", type=positive_int, metavar="N", help="exit after N verdicts")
    tail.add_argument(
        "--timeout",
        type=positive_float,
        metavar="SECONDS",
        help="exit after this long; with --limit, fewer verdicts than N is an error (status 1)",
    )
    tail.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    tail.set_defaults(run="cli.tail:run")
