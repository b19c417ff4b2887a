"""Reading telemetry files: CSV, JSON lines, JSON and Parquet.

Every format gives records ``{"vehicle_id", "timestamp", "feature_vector"}`` and, when the file
has them, a ``label`` (0/1, for ``evaluate``) and the injected fault (``injected``/``fault``).

Features come from, in order: the columns named by ``--features``; a ``feature_vector`` column
(a list, or JSON text in CSV); else the columns ``f0``, ``f1``, ... in numeric order.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.errors import CliError, UsageError

FORMATS = ("csv", "jsonl", "json", "parquet")
_F_COLUMN = re.compile(r"^f(\d+)$")
_TRUE = {"1", "true", "yes", "anomaly"}
_FALSE = {"0", "false", "no", "normal"}


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One record of a file, with its label when the file has one."""

    record: dict[str, Any]
    label: int | None = None
    fault: str | None = None


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


def read_records(
    path: Path, fmt: str | None = None, features: Sequence[str] | None = None
) -> list[FileRecord]:
    """All records of ``path``, checked: one dimension, finite numbers, ids and timestamps."""
    if not path.exists():
        raise CliError(f"file not found: {path}")
    if not path.is_file():
        raise CliError(f"not a file: {path}")
    kind = detect_format(path, fmt)
    try:
        if kind == "csv":
            rows = _csv_rows(path)
        elif kind == "jsonl":
            rows = _jsonl_rows(path)
        elif kind == "json":
            rows = _json_rows(path)
        else:
            rows = _parquet_rows(path)
        records = [_record(path, where, row, features) for where, row in rows]
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise CliError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not records:
        raise CliError(f"{path}: no records")
    width = len(records[0].record["feature_vector"])
    for index, item in enumerate(records):
        if len(item.record["feature_vector"]) != width:
            raise CliError(
                f"{path}: record {index + 1} has {len(item.record['feature_vector'])} features; "
                f"the first has {width} (all records must have the same number)"
            )
    return records


def _csv_rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
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


def _jsonl_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
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


def _json_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
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


def _parquet_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
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


def _feature_columns(row: Mapping[str, Any]) -> list[str]:
    numbered = sorted(
        ((int(m.group(1)), name) for name in row if (m := _F_COLUMN.match(name))),
    )
    return [name for _, name in numbered]


def _number(value: Any, path: Path, where: str, column: str) -> float:
    if isinstance(value, bool) or value is None:
        raise CliError(f"{path} {where}: {column} is {value!r}, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CliError(f"{path} {where}: {column} is {value!r}, not a number") from None
    if not math.isfinite(number):
        raise CliError(f"{path} {where}: {column} is {value!r}; only finite numbers are allowed")
    return number


def _record(
    path: Path, where: str, row: Mapping[str, Any], features: Sequence[str] | None
) -> FileRecord:
    vehicle = row.get("vehicle_id")
    timestamp = row.get("timestamp")
    if vehicle is None or str(vehicle).strip() == "":
        raise CliError(f"{path} {where}: vehicle_id is missing")
    if timestamp is None or str(timestamp).strip() == "":
        raise CliError(f"{path} {where}: timestamp is missing")
    if hasattr(timestamp, "isoformat"):  # a Parquet timestamp column
        from shared.schemas import format_timestamp

        timestamp = format_timestamp(timestamp) if timestamp.tzinfo else timestamp.isoformat() + "Z"
    if features:
        missing = [c for c in features if c not in row]
        if missing:
            raise CliError(f"{path} {where}: no column {missing[0]!r} (from --features)")
        vector = [_number(row[c], path, where, c) for c in features]
    elif "feature_vector" in row:
        raw = row["feature_vector"]
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise CliError(f"{path} {where}: feature_vector is not a JSON list") from None
        if not isinstance(raw, list | tuple) or not raw:
            raise CliError(f"{path} {where}: feature_vector must be a non-empty list of numbers")
        vector = [_number(v, path, where, f"feature_vector[{i}]") for i, v in enumerate(raw)]
    else:
        columns = _feature_columns(row)
        if not columns:
            raise CliError(
                f"{path} {where}: no features: give f0..fN columns, a feature_vector column, "
                "or name the columns with --features"
            )
        vector = [_number(row[c], path, where, c) for c in columns]
    label = _label(row.get("label"), path, where) if "label" in row else None
    fault = row.get("injected") or row.get("fault") or None
    return FileRecord(
        {"vehicle_id": str(vehicle), "timestamp": str(timestamp), "feature_vector": vector},
        label,
        str(fault) if fault else None,
    )


def _label(value: Any, path: Path, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise CliError(f"{path} {where}: label is {value!r}; use 1/0 or true/false")
