"""The labelled set `evaluate` replays: a simulated fleet, or a file whose records carry labels."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cli.errors import CliError, UsageError
from cli.simulate import fleet_config


@dataclass(frozen=True, slots=True)
class Item:
    """One labelled record to replay."""

    record: dict[str, Any]
    label: int
    fault: str | None
    episode: int | None = None

    @property
    def kind(self) -> str | None:
        return self.fault.split(":", 1)[0] if self.fault else None

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [("x-label", str(self.label).encode())]
        if self.fault:
            headers.append(("x-injected", self.fault.encode()))
        return headers


@dataclass(frozen=True, slots=True)
class Labelled:
    """The labelled records (a file's in file order) and their times in POSIX seconds."""

    items: list[Item]
    times: npt.NDArray[np.float64]
    feature_names: list[str] | None = None


def labelled_items(args: argparse.Namespace) -> list[Item]:
    """The records to replay: from --file (each with a label), else the simulated fleet."""
    return labelled(args).items


def labelled(args: argparse.Namespace) -> Labelled:
    """The labelled set of the command line: ``--file`` with its column flags, or the fleet."""
    if args.file:
        return read_labelled(args)
    from shared.context import epoch_seconds
    from simulator import FleetSimulator

    simulator = FleetSimulator(fleet_config(args, args.start or datetime.now(UTC)))
    items = [Item(r.to_record(), r.label, r.fault, r.episode) for r in simulator.take(args.count)]
    return Labelled(items, epoch_seconds([i.record["timestamp"] for i in items]))


def read_labelled(args: argparse.Namespace) -> Labelled:
    """A labelled file, read with the command line's column flags; every record needs a label."""
    from cli.readers import Columns, read_table
    from shared.schemas import parse_timestamp

    path = Path(args.file)
    columns = Columns(
        vehicle=getattr(args, "vehicle_column", "vehicle_id"),
        timestamp=getattr(args, "timestamp_column", "timestamp"),
        label=getattr(args, "label_column", "label"),
        kind=getattr(args, "kind_column", None),
        numeric_fallback=True,
    )
    features = getattr(args, "features", None)
    found, names = read_table(path, args.format, features, columns)
    times = np.empty(len(found), dtype=np.float64)
    for index, item in enumerate(found):
        if item.label is None:
            raise CliError(
                f"{path}: record {index + 1} has no label "
                f"(a {columns.label} field of 1/0 is needed; --label-column names another)"
            )
        try:
            times[index] = parse_timestamp(item.record["timestamp"]).timestamp()
        except ValueError:
            raise CliError(
                f"{path}: record {index + 1}: {columns.timestamp} "
                f"{item.record['timestamp']!r} is not a time (RFC 3339, a date-time without "
                "a zone for UTC, or seconds since the epoch)"
            ) from None
    items = [Item(i.record, int(i.label or 0), i.fault) for i in found]
    return Labelled(items, times, names)


def with_faults(items: list[Item]) -> list[Item]:
    """The items (in replay order) with their fault numbers: runs of one vehicle and kind."""
    from cli.evaluate_split import fault_runs

    numbers = fault_runs(
        [str(i.record["vehicle_id"]) for i in items],
        [i.label for i in items],
        [i.kind for i in items],
    )
    return [replace(item, episode=n) for item, n in zip(items, numbers, strict=True)]


@dataclass(frozen=True, slots=True)
class Plan:
    """What to train on (labelled records left out) and what to replay, in time order."""

    how: str
    train: list[Item]
    left_out: int  # labelled records of the training part
    replay: list[Item]
    feature_names: list[str] | None = None


def plan_of(args: argparse.Namespace) -> Plan:
    """The labelled set of the command line, split as its flags ask."""
    from cli.evaluate_split import split

    chosen = [f for f in ("train_fraction", "train_until", "train_count") if getattr(args, f)]
    if chosen and not args.file:
        flag = "--" + chosen[0].replace("_", "-")
        raise UsageError(f"{flag} splits a --file; the simulated fleet is replayed whole")
    if getattr(args, "model_dir", None) and not args.offline:
        raise UsageError("--model-dir is for --offline (the worker reads its own MODEL_DIR)")
    found = labelled(args)
    items = found.items
    if not args.file:
        return Plan("none: the simulated fleet, every record replayed", [], 0, items)
    plan = split(
        found.times, fraction=args.train_fraction, until=args.train_until, count=args.train_count
    )
    part = [items[i] for i in plan.train]
    return Plan(
        plan.how,
        [i for i in part if not i.label],
        sum(1 for i in part if i.label),
        with_faults([items[i] for i in plan.replay]),
        found.feature_names,
    )
