"""`evaluate`: precision and recall through the running pipeline."""

from __future__ import annotations

from cli.parsers.common import AddCommand, fleet_options
from cli.parsers.types import positive_float, positive_int

EPILOG = """\
Produces a labelled set to the raw topic (a simulated fleet, or --file with a `label` field),
then waits until the worker's consumer group (CONSUMER_GROUP) has committed past every
record, reading the verdicts (ANOMALY_TOPIC) and dead letters (DLQ_TOPIC) that cite them. A
record without a verdict counts as predicted normal (by default the worker publishes only
anomalies). Needs the worker running with an active model; the simulated fleet should be
the one the model was trained on (same --seed and --vehicles as `simulate --train`).

examples:
  vehicle-anomaly evaluate                              10,000 records, 2% anomalies
  vehicle-anomaly evaluate --count 5000 --kinds spike --json
  vehicle-anomaly evaluate --file labelled.jsonl
"""


def add(command: AddCommand) -> None:
    """Add the command to the parser."""
    evaluate = command(
        "evaluate", "measure precision and recall through the running pipeline", EPILOG
    )
    evaluate.add_argument(
        "--file",
        metavar="PATH",
        help="labelled records (JSON lines, CSV, JSON, Parquet with a label field)",
    )
    evaluate.add_argument(
        "--format",
        choices=("csv", "jsonl", "json", "parquet"),
        help="the file's format (default: from its name)",
    )
    evaluate.add_argument(
        "--count",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="simulated records (default 10000)",
    )
    evaluate.add_argument("--topic", metavar="NAME", help="raw topic (env TELEMETRY_TOPIC)")
    evaluate.add_argument(
        "--anomaly-topic", metavar="NAME", help="verdicts topic (env ANOMALY_TOPIC)"
    )
    evaluate.add_argument("--dlq-topic", metavar="NAME", help="dead-letter topic (env DLQ_TOPIC)")
    evaluate.add_argument(
        "--group", metavar="NAME", help="the worker's consumer group (env CONSUMER_GROUP)"
    )
    evaluate.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="SECONDS",
        help="give up after this long (default 300)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    fleet_options(evaluate, count_default=10_000)
    evaluate.set_defaults(run="cli.evaluate:run")
