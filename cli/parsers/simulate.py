"""`simulate`: publish a synthetic fleet to the raw topic."""

from __future__ import annotations

from cli.parsers.common import AddCommand, fleet_options, training_options
from cli.parsers.types import positive_float, positive_int

EPILOG = """\
--train first trains on a clean history of the same fleet (same --seed and --vehicles):
bursts of consecutive records at the stream's 10 s cadence spread over two days, with n_estimators=200 and random_state=42
unless set below. A simulated fleet: each vehicle has its own baselines; its eight sensors (speed, rpm,
engine_temp, coolant_temp, oil_pressure, battery_voltage, fuel_rate, vibration) follow one
latent speed and load, with daily traffic and temperature cycles. Injected sensor faults:
spike (one far-off reading), drift (a reading drifting away over 6-20 records), stuck (a
reading frozen for 6-20 records), dropout (a dead sensor reading 0 for 6-20 records), noise
(a loose connector: 2-4 deviations of noise for 6-20 records). Each record is keyed by its vehicle id and labelled in its
headers: x-label (1/0) and, for a fault, x-injected (e.g. spike:engine_temp).

examples:
  vehicle-anomaly simulate --train                      train a model first, then stream 50/s
  vehicle-anomaly simulate --rate 200 --duration 60     a minute at 200 records/s
  vehicle-anomaly simulate --count 1000 --vehicles 5 --anomaly-rate 0.05 --seed 3
  vehicle-anomaly simulate --kinds spike --rate 10      only spikes, slowly
"""


def add(command: AddCommand) -> None:
    """Add the command to the parser."""
    simulate = command("simulate", "publish synthetic fleet telemetry to the raw topic", EPILOG)
    simulate.add_argument(
        "--rate",
        type=positive_float,
        default=50.0,
        metavar="N",
        help="records per second (default 50)",
    )
    amount = simulate.add_mutually_exclusive_group()
    amount.add_argument(
        "--duration", type=positive_float, metavar="SECONDS", help="stop after this long"
    )
    amount.add_argument(
        "--count",
        type=positive_int,
        metavar="N",
        help="stop after N records (default: run until Ctrl-C)",
    )
    simulate.add_argument(
        "--topic", metavar="NAME", help="raw topic (env TELEMETRY_TOPIC; default telemetry.raw)"
    )
    simulate.add_argument(
        "--train",
        action="store_true",
        help="first train a model through the api on a clean history of the same fleet",
    )
    simulate.add_argument(
        "--train-records",
        type=positive_int,
        default=10_000,
        metavar="N",
        help="history size for --train (default 10000)",
    )
    simulate.add_argument("--json", action="store_true", help="print the summary as JSON")
    fleet_options(simulate, count_default=None)
    training_options(simulate, title="IsolationForest parameters for --train")
    simulate.set_defaults(run="cli.simulate:run")
