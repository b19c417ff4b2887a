"""The labelled set `evaluate` replays: a simulated fleet, or a file whose records carry labels."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.errors import CliError
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


def labelled_items(args: argparse.Namespace) -> list[Item]:
    """The records to replay: from --file (each with a label), else the simulated fleet."""
    if args.file:
        from cli.readers import read_records

        path = Path(args.file)
        found = read_records(path, args.format)
        for index, item in enumerate(found, start=1):
            if item.label is None:
                raise CliError(
                    f"{path}: record {index} has no label (a label field of 1/0 is needed)"
                )
        return [Item(i.record, int(i.label or 0), i.fault) for i in found]
    from simulator import FleetSimulator

    simulator = FleetSimulator(fleet_config(args, args.start or datetime.now(UTC)))
    return [Item(r.to_record(), r.label, r.fault, r.episode) for r in simulator.take(args.count)]
