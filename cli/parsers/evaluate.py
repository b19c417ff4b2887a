"""`evaluate`: precision and recall through the running pipeline."""

from __future__ import annotations

import argparse

from cli.parsers.common import AddCommand, fleet_options
from cli.parsers.types import (
    columns,
    non_negative_int,
    open_share,
    positive_float,
    positive_int,
    timestamp,
)

EPILOG = """\
Produces a labelled set to the raw topic (a simulated fleet, or --file with a label column),
then waits until the worker's consumer group (CONSUMER_GROUP) has committed past every
record, reading the verdicts (ANOMALY_TOPIC) and dead letters (DLQ_TOPIC) that cite them. A
record without a verdict counts as predicted normal (by default the worker publishes only
anomalies). Needs the worker running with an active model; the simulated fleet should be
the one the model was trained on (same --seed and --vehicles as `simulate --train`).

--file: records are replayed in time order (ties keep the file's order). A split flag trains
a model on the leading part first (through POST /ingest, activated; its labelled records are
left out) and replays the rest; --model names an existing version instead. --offline scores
here with no broker: --model VERSION (or the active version) from --model-dir, else a model
trained here on the leading part, with the api's defaults. A fault is a run of consecutive
labelled records of one vehicle with the same kind; it is caught when one of them is flagged.

examples:
  vehicle-anomaly evaluate                              10,000 records, 2% anomalies
  vehicle-anomaly evaluate --count 5000 --kinds spike --json
  vehicle-anomaly evaluate --file labelled.jsonl
  vehicle-anomaly evaluate --file incidents.csv --train-fraction 0.5 --kind-column fault
  vehicle-anomaly evaluate --file var/realdata/csv/wsn_motes.csv --offline --train-fraction 0.5
  vehicle-anomaly evaluate --file fleet.parquet --model 20240115100000 --offline
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
    file_columns(evaluate)
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
    model_options(evaluate)
    fleet_options(evaluate, count_default=10_000)
    evaluate.set_defaults(run="cli.evaluate:run")


def file_columns(evaluate: argparse.ArgumentParser) -> None:
    """The --file column flags."""
    group = evaluate.add_argument_group("--file columns")
    for flag, default, what in (
        ("--vehicle-column", "vehicle_id", "vehicle ids"),
        ("--timestamp-column", "timestamp", "RFC 3339 timestamps"),
        ("--label-column", "label", "labels (1/0, true/false)"),
    ):
        group.add_argument(
            flag, default=default, metavar="NAME", help=f"the column of {what} (default {default})"
        )
    group.add_argument(
        "--kind-column",
        metavar="NAME",
        help="the fault kind of a labelled row, for recall by kind (default: an injected or "
        "fault column, when there is one)",
    )
    group.add_argument(
        "--features",
        type=columns,
        metavar="COLS",
        help="feature columns, comma-separated, in order (default: f0..fN or feature_vector, "
        "else every other numeric column)",
    )


def model_options(evaluate: argparse.ArgumentParser) -> None:
    """Which model judges the replay, and where it scores."""
    group = evaluate.add_argument_group("the model (with --file: train on a leading part)")
    split = group.add_mutually_exclusive_group()
    split.add_argument(
        "--train-fraction",
        type=open_share,
        metavar="F",
        help="train on the records before the time that leaves F of all records before it",
    )
    split.add_argument(
        "--train-until", type=timestamp, metavar="TIME", help="train on the records before TIME"
    )
    split.add_argument(
        "--train-count",
        type=positive_int,
        metavar="N",
        help="train on the first N records in time order",
    )
    split.add_argument("--model", metavar="VERSION", help="an existing version: train nothing")
    group.add_argument(
        "--detector",
        choices=("context", "point"),
        help="the kind of model to train (default: the api's, context)",
    )
    group.add_argument(
        "--false-alarm-rate",
        type=open_share,
        metavar="SHARE",
        help="the false-alarm rate a context model is calibrated to (default: the api's)",
    )
    group.add_argument(
        "--random-state", type=non_negative_int, metavar="N", help="seed of the forest"
    )
    group.add_argument(
        "--offline",
        action="store_true",
        help="score here, with no broker: the model from --model-dir, or trained here",
    )
    group.add_argument(
        "--model-dir",
        metavar="DIR",
        help="--offline: the registry to load --model from (env MODEL_DIR)",
    )
