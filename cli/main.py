"""``vehicle-anomaly``: feed a fleet, train models, watch verdicts, measure the detector.

Every failure is one line on stderr (``vehicle-anomaly: ...``) and exit status 1 (the
operation failed) or 2 (a bad argument or setting); Ctrl-C stops a command with status 130
(``simulate`` prints its summary first and exits 0). ``--verbose`` shows the clients' logs,
``VEHICLE_ANOMALY_DEBUG=1`` shows a traceback for an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

from cli.errors import USAGE, CliError

PROG = "vehicle-anomaly"
DEFAULT_SEED = 7


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (usage is in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


# --- argument types ------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, not {text}")
    return value


def timestamp(text: str) -> datetime:
    from shared.schemas import parse_timestamp

    if text == "now":
        return datetime.now(UTC)
    try:
        return parse_timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time with a zone, e.g. 2024-01-15T10:00:00Z"
        ) from None


def kinds(text: str) -> list[str]:
    from simulator import FaultKind

    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    allowed = [k.value for k in FaultKind]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose among {', '.join(allowed)} (comma-separated)"
        )
    return list(dict.fromkeys(names))


def max_samples(text: str) -> int | float | str:
    if text == "auto":
        return text
    try:
        value: int | float = float(text) if "." in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give auto, a count (256) or a share (0.5)"
        ) from None
    if value <= 0 or (isinstance(value, float) and value > 1):
        raise argparse.ArgumentTypeError(f"{text!r}: a count must be >= 1, a share in (0, 1]")
    return value


def contamination(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give auto or a share in (0, 0.5]") from None
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"{text!r}: give auto or a share in (0, 0.5]")
    return value


def unit_share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one column")
    return names


# --- the parser ----------------------------------------------------------------------------


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes; on subcommands they default to 'not given'."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("connection (before or after the command)")
    group.add_argument(
        "--api",
        metavar="URL",
        default=default(None),
        help="the api's base URL (env VEHICLE_ANOMALY_API; default http://127.0.0.1:8000)",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        default=default(None),
        help="API key (env VEHICLE_ANOMALY_API_KEY; else the first of API_KEYS; else var/dev-api-key)",
    )
    group.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        default=default(None),
        help="Kafka brokers (env KAFKA_BOOTSTRAP_SERVERS; default localhost:9092); security "
        "and topic names come from the services' variables (KAFKA_SECURITY_PROTOCOL, ...)",
    )
    group.add_argument(
        "--connect-timeout",
        metavar="SECONDS",
        type=positive_float,
        default=default(5.0),
        help="give up connecting to Kafka after this long (default 5)",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="no progress display"
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="show the clients' logs",
    )


def _fleet_options(parser: argparse.ArgumentParser, *, count_default: int | None) -> None:
    group = parser.add_argument_group("simulated fleet")
    group.add_argument(
        "--vehicles", type=positive_int, default=20, metavar="N", help="fleet size (default 20)"
    )
    group.add_argument(
        "--anomaly-rate",
        type=share,
        default=0.02,
        metavar="SHARE",
        help="share of records with an injected fault (default 0.02)",
    )
    group.add_argument(
        "--kinds",
        type=kinds,
        default=None,
        metavar="LIST",
        help="fault kinds to inject, comma-separated (default spike,drift,stuck)",
    )
    group.add_argument(
        "--seed",
        type=non_negative_int,
        default=DEFAULT_SEED,
        help=f"picks the fleet and its noise: the same seed, the same records (default {DEFAULT_SEED})",
    )
    group.add_argument(
        "--start",
        type=timestamp,
        default=None,
        metavar="TIME",
        help="simulated time of the first record, RFC 3339 (default now)",
    )
    group.add_argument(
        "--interval",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="simulated seconds between two records of one vehicle (default 10)",
    )


def _training_options(
    parser: argparse.ArgumentParser,
    title: str = "IsolationForest parameters (default: the api's settings)",
) -> None:
    group = parser.add_argument_group(title)
    group.add_argument("--n-estimators", type=positive_int, metavar="N", help="trees")
    group.add_argument(
        "--max-samples", type=max_samples, metavar="N|SHARE|auto", help="samples per tree"
    )
    group.add_argument(
        "--contamination", type=contamination, metavar="SHARE|auto", help="expected anomaly share"
    )
    group.add_argument(
        "--max-features", type=unit_share, metavar="SHARE", help="share of features per tree"
    )
    group.add_argument(
        "--random-state", type=non_negative_int, metavar="N", help="seed of the forest"
    )
    group.add_argument(
        "--no-activate", action="store_true", help="publish the version without making it active"
    )


SIMULATE_EPILOG = """\
--train first trains on a clean two-day history of the same fleet (same --seed and
--vehicles), with n_estimators=200, max_samples=1.0, contamination=auto, random_state=42
unless set below. A simulated fleet: each vehicle has its own baselines; its eight sensors (speed, rpm,
engine_temp, coolant_temp, oil_pressure, battery_voltage, fuel_rate, vibration) follow one
latent speed and load, with daily traffic and temperature cycles. Injected sensor faults:
spike (one far-off reading), drift (a reading drifting away over 6-20 records), stuck (a
reading frozen for 6-20 records). Each record is keyed by its vehicle id and labelled in its
headers: x-label (1/0) and, for a fault, x-injected (e.g. spike:engine_temp).

examples:
  vehicle-anomaly simulate --train                      train a model first, then stream 50/s
  vehicle-anomaly simulate --rate 200 --duration 60     a minute at 200 records/s
  vehicle-anomaly simulate --count 1000 --vehicles 5 --anomaly-rate 0.05 --seed 3
  vehicle-anomaly simulate --kinds spike --rate 10      only spikes, slowly
"""

TRAIN_EPILOG = """\
Files: CSV (columns vehicle_id, timestamp and f0..fN, or a feature_vector column holding a
JSON list), JSON lines (one record per line), JSON (a list, or {"records": [...]}) or Parquet
(needs the `parquet` extra: uv sync --extra parquet). --features names other columns.
--simulated trains on a clean history of the simulated fleet spread over two days, with
n_estimators=200, max_samples=1.0, contamination=auto and random_state=42 unless you set them.

examples:
  vehicle-anomaly train --simulated 10000               the model simulate streams against
  vehicle-anomaly train --file history.csv --contamination 0.01
  vehicle-anomaly train --file telemetry.jsonl --n-estimators 300 --no-activate
  vehicle-anomaly train --file fleet.parquet --features speed,rpm,engine_temp
"""

TAIL_EPILOG = """\
Reads the anomalies topic (ANOMALY_TOPIC, default telemetry.anomalies) without a consumer
group, so it disturbs nobody and commits nothing. TIME is the record's own timestamp; SOURCE
is the raw record's partition and offset.

examples:
  vehicle-anomaly tail                                  new verdicts, as a table
  vehicle-anomaly tail --from-beginning --limit 20      the first 20 verdicts kept
  vehicle-anomaly tail --json | jq .anomaly_score       JSON lines
"""

EVALUATE_EPILOG = """\
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

EXPLAIN_EPILOG = """\
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

SHADOW_EPILOG = """\
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

MODELS_EPILOG = """\
examples:
  vehicle-anomaly models list                           ROLE: active, or candidate (shadow)
  vehicle-anomaly models activate 20240115100000        roll back (or forward)
  vehicle-anomaly models delete 20240114090000          the active version cannot be deleted
  vehicle-anomaly models shadow 20240116090000          score it in shadow (the candidate)
  vehicle-anomaly models unshadow 20240116090000        stop scoring it in shadow
"""

MAIN_EPILOG = """\
quick start (after `make run` in another terminal):
  vehicle-anomaly simulate --train      train on a simulated fleet, then stream it
  vehicle-anomaly tail                  watch the verdicts
  vehicle-anomaly explain --from-topic  why the latest anomaly is one
  vehicle-anomaly evaluate              precision and recall against injected faults

Each command has --help with examples.
"""


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Feed a vehicle fleet to the anomaly pipeline, train models, watch verdicts.",
        epilog=MAIN_EPILOG,
        formatter_class=Formatter,
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, help_: str, epilog: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_, description=help_, epilog=epilog, formatter_class=Formatter
        )
        _global_options(sub, suppress=True)
        return sub

    simulate = command(
        "simulate", "publish synthetic fleet telemetry to the raw topic", SIMULATE_EPILOG
    )
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
    _fleet_options(simulate, count_default=None)
    _training_options(simulate, title="IsolationForest parameters for --train")
    simulate.set_defaults(run="cli.simulate:run")

    train = command("train", "train a model version through the api", TRAIN_EPILOG)
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
    _training_options(train)
    train.set_defaults(run="cli.train:run")

    tail = command("tail", "print the verdicts on the anomalies topic as they arrive", TAIL_EPILOG)
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

    evaluate = command(
        "evaluate", "measure precision and recall through the running pipeline", EVALUATE_EPILOG
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
    _fleet_options(evaluate, count_default=10_000)
    evaluate.set_defaults(run="cli.evaluate:run")

    explain = command(
        "explain", "show which features made a verdict anomalous, as bars", EXPLAIN_EPILOG
    )
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

    shadow = command(
        "shadow", "compare a shadow candidate's verdicts with the active model's", SHADOW_EPILOG
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

    models = command("models", "list, activate, delete or shadow model versions", MODELS_EPILOG)
    actions = models.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    listing = actions.add_parser(
        "list", help="every version, newest first", formatter_class=Formatter
    )
    listing.add_argument("--json", action="store_true", help="print the api's answer as JSON")
    _global_options(listing, suppress=True)
    activate = actions.add_parser(
        "activate", help="make VERSION the active model", formatter_class=Formatter
    )
    activate.add_argument("version", metavar="VERSION")
    _global_options(activate, suppress=True)
    delete = actions.add_parser(
        "delete", help="delete VERSION (not the active one)", formatter_class=Formatter
    )
    delete.add_argument("version", metavar="VERSION")
    _global_options(delete, suppress=True)
    start_shadow = actions.add_parser(
        "shadow",
        help="make VERSION the shadow candidate: the workers score it beside the active one",
        formatter_class=Formatter,
    )
    start_shadow.add_argument("version", metavar="VERSION")
    _global_options(start_shadow, suppress=True)
    stop_shadow = actions.add_parser(
        "unshadow", help="stop scoring VERSION in shadow", formatter_class=Formatter
    )
    stop_shadow.add_argument("version", metavar="VERSION")
    _global_options(stop_shadow, suppress=True)
    models.set_defaults(run="cli.models:run")
    return parser


def _load(target: str) -> Callable[..., int]:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _fail(message: str, code: int) -> int:
    first = " ".join(str(message).split()) or "failed"
    print(f"{PROG}: {first}", file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("choose a command: simulate, train, tail, evaluate, explain, shadow or models")
    if args.command == "models" and args.action is None:
        parser.error(
            "models needs an action: list, activate VERSION, delete VERSION, "
            "shadow VERSION or unshadow VERSION"
        )
    from cli.kafkaio import quiet_kafka_logs

    quiet_kafka_logs(args.verbose)
    if not args.verbose:
        import warnings

        warnings.simplefilter("ignore")  # library warnings are not the operator's business
    try:
        from cli.config import build_context

        context = build_context(
            api=args.api,
            api_key=args.api_key,
            bootstrap=args.bootstrap,
            connect_timeout=args.connect_timeout,
            verbose=args.verbose,
        )
        return _load(args.run)(args, context)
    except CliError as error:
        return _fail(error.message, error.code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): quietly stop
        with _devnull():
            pass
        return 0
    except Exception as error:
        if os.environ.get("VEHICLE_ANOMALY_DEBUG"):
            raise
        text = textwrap.shorten(str(error) or type(error).__name__, 300)
        return _fail(
            f"unexpected error: {type(error).__name__}: {text} (VEHICLE_ANOMALY_DEBUG=1 shows the traceback)",
            1,
        )


class _devnull:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""

    def __enter__(self) -> None:
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, sys.stdout.fileno())
            os.close(fd)
        except (OSError, ValueError):
            pass

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    sys.exit(main())
