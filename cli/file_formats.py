"""The file formats that ``train --file`` and ``evaluate --file`` read: rows of named values."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cli.errors import CliError, UsageError

FORMATS = ("csv", "jsonl", "json", "parquet")


def detect_format(path: Path, explicit: str | None) -> str:
    if explicit:
        return explicit
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        raise UsageError(f"{path}: compressed files are not read; decompress it first")
    ext = suffixes[-1].lstrip(".") if suffixes else ""
    if ext in ("csv", "tsv"):
        return "csv"
    if ext in ("jsonl", "ndjson"):
        return "jsonl"
    if ext == "json":
        return "json"
    if ext in ("parquet", "pq"):
        return "parquet"
    raise UsageError(
        f"{path}: cannot tell the format from the name; use --format {{{','.join(FORMATS)}}}"
    )


def csv_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = "\t" if "\t" in sample.split("\n", 1)[0] else ","
        reader = csv.DictReader(handle, delimiter=delimiter)
        if not reader.fieldnames:
            raise CliError(f"{path}: empty CSV (no header line)")
        found = []
        for line_number, row in enumerate(reader, start=2):
            if None in row:
                raise CliError(f"{path} line {line_number}: more values than header columns")
            found.append((f"line {line_number}", dict(row)))
        return found


def jsonl_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise CliError(f"{path} line {line_number}: not JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise CliError(f"{path} line {line_number}: a JSON object is expected")
            found.append((f"line {line_number}", row))
    return found


def json_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise CliError(f"{path}: not JSON ({error})") from None
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        data = data["records"]
    if not isinstance(data, list):
        raise CliError(f'{path}: expected a list of records or {{"records": [...]}}')
    found = []
    for index, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            raise CliError(f"{path} record {index}: a JSON object is expected")
        found.append((f"record {index}", row))
    return found


def parquet_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError:
        raise CliError(
            "reading Parquet needs pyarrow: install the extra "
            "(`uv sync --extra parquet`, or `pip install 'vehicle-anomaly[parquet]'`)"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises its own ArrowInvalid etc.
        raise CliError(f"{path}: not a readable Parquet file ({error})") from None
    return [(f"row {i + 1}", row) for i, row in enumerate(table.to_pylist())]
