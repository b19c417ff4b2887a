"""`train`: train a model version through the api."""

from __future__ import annotations

from cli.parsers.common import DEFAULT_SEED, AddCommand, training_options
from cli.parsers.types import columns, non_negative_int, positive_float, positive_int, timestamp

EPILOG = """\
Files: CSV (columns vehicle_id, timestamp and f0..fN, or a feature_vector column holding a
JSON list), JSON lines (one record per line), JSON (a list, or {"records": [...]}) or Parquet
(needs the `parquet` extra: uv sync --extra parquet). --features names other columns.
--simulated trains on a clean history of the simulated fleet: bursts of consecutive records
at the stream's 10 s cadence, spread over the two days before --end, with
n_estimators=200 and random_state=42 unless you set them.

examples:
  vehicle-anomaly train --simulated 10000               the model simulate streams against
  vehicle-anomaly train --file history.csv --contamination 0.01
  vehicle-anomaly train --file telemetry.jsonl --n-estimators 300 --no-activate
  vehicle-anomaly train --file fleet.parquet --features speed,rpm,engine_temp
"""


def add(command: AddCommand) -> None:
    """Add the command to the parser."""
    train = command("train", "train a model version through the api", EPILOG)
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", metavar="PATH", help="CSV, JSON lines, JSON or Parquet file")
    source.add_argument(
        "--simulated", type=positive_int, metavar="N", help="N clean records of the simulated fleet"
    )
    train.add_argument(
        "--format",
        choices=("csv", "jsonl", "json", "parquet"),
        help="the file's format (default: from its name)",
    )
    train.add_argument(
        "--features",
        type=columns,
        metavar="COLS",
        help="feature columns, comma-separated, in order",
    )
    train.add_argument(
        "--vehicles",
        type=positive_int,
        default=20,
        metavar="N",
        help="fleet size for --simulated (default 20)",
    )
    train.add_argument(
        "--end",
        type=timestamp,
        metavar="TIME",
        help="--simulated: the history covers the two days before TIME (default now)",
    )
    train.add_argument(
        "--seed",
        type=non_negative_int,
        default=DEFAULT_SEED,
        help=f"fleet for --simulated (default {DEFAULT_SEED})",
    )
    train.add_argument(
        "--timeout",
        type=positive_float,
        default=600.0,
        metavar="SECONDS",
        help="wait this long for the training (default 600)",
    )
    train.add_argument("--json", action="store_true", help="print the api's answer as JSON")
    training_options(train)
    train.set_defaults(run="cli.train:run")
