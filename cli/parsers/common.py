"""What every command's parser shares: the parser class, its help layout, the common options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NoReturn

from cli.errors import USAGE
from cli.parsers.types import (
    contamination,
    kinds,
    max_samples,
    non_negative_int,
    positive_float,
    positive_int,
    share,
    timestamp,
    unit_share,
)

PROG = "vehicle-anomaly"
DEFAULT_SEED = 7

#: Adds a subcommand (name, help, epilog) with the global options and returns its parser.
AddCommand = Callable[[str, str, str], argparse.ArgumentParser]


class Parser(argparse.ArgumentParser):
    """argparse, with errors on one line (usage is in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
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


def fleet_options(parser: argparse.ArgumentParser, *, count_default: int | None) -> None:
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
        help="fault kinds to inject, comma-separated (default spike,drift,stuck,dropout,noise)",
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


def training_options(
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
