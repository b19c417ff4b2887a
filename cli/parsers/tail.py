"""`tail`: print the verdicts on the anomalies topic, or the alert episodes."""

from __future__ import annotations

from cli.parsers.common import AddCommand
from cli.parsers.types import positive_float, positive_int

EPILOG = """\
Reads the anomalies topic (ANOMALY_TOPIC, default telemetry.anomalies) without a consumer
group, so it disturbs nobody and commits nothing. TIME is the record's own timestamp; SOURCE
is the raw record's partition and offset.

With --alerts it reads the alerts topic (ALERT_TOPIC, default telemetry.alerts) instead: one
line per episode event (opened, updated, closed; "silent" for one closed because its vehicle
sent nothing for ALERT_SILENCE_SECONDS), with the episode's records so far, its severity
(0-1), its worst score, its leading sensors and its id. A replay after a crash may repeat an
event: the same id, event and RECORDS.

examples:
  vehicle-anomaly tail                                  new verdicts, as a table
  vehicle-anomaly tail --from-beginning --limit 20      the first 20 verdicts kept
  vehicle-anomaly tail --json | jq .anomaly_score       JSON lines
  vehicle-anomaly tail --alerts                         episodes as they open, change and close
"""


def add(command: AddCommand) -> None:
    """Add the command to the parser."""
    tail = command("tail", "print the verdicts on the anomalies topic as they arrive", EPILOG)
    tail.add_argument(
        "--topic",
        metavar="NAME",
        help="anomalies topic (env ANOMALY_TOPIC; default telemetry.anomalies), or with "
        "--alerts the alerts topic (env ALERT_TOPIC; default telemetry.alerts)",
    )
    tail.add_argument(
        "--alerts",
        action="store_true",
        help="show the alert episodes (opened, updated, closed) instead of the verdicts",
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
