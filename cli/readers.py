"""Reading telemetry files: CSV, JSON lines, JSON and Parquet.

Every format gives records ``{"vehicle_id", "timestamp", "feature_vector"}`` and, when the file
has them, a ``label`` (0/1, for ``evaluate``) and the injected fault (``injected``/``fault``).

Features come from, in order: the columns named by ``--features``; a ``feature_vector`` column
(a list, or JSON text in CSV); else the columns ``f0``, ``f1``, ... in numeric order; else, for
``evaluate`` (:class:`Columns` with ``numeric_fallback``), every other column whose first value
is a number. :class:`Columns` also names the vehicle, timestamp, label and fault-kind columns.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.errors import CliError
from cli.file_formats import csv_rows, detect_format, json_rows, jsonl_rows, parquet_rows

_F_COLUMN = re.compile(r"^f(\d+)$")
_TRUE = {"1", "true", "yes", "anomaly"}
_FALSE = {"0", "false", "no", "normal"}


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One record of a file, with its label when the file has one."""

    record: dict[str, Any]
    label: int | None = None
    fault: str | None = None


@dataclass(frozen=True, slots=True)
class Columns:
    """Which columns hold what (``evaluate``'s column flags); checked against the first record."""

    vehicle: str = "vehicle_id"
    timestamp: str = "timestamp"
    label: str = "label"
    kind: str | None = None
    numeric_fallback: bool = False

    def flags(self) -> dict[str, str]:
        """Each named column and the flag that names it."""
        found = {
            self.vehicle: "--vehicle-column",
            self.timestamp: "--timestamp-column",
            self.label: "--label-column",
        }
        if self.kind:
            found[self.kind] = "--kind-column"
        return found


def read_records(
    path: Path,
    fmt: str | None = None,
    features: Sequence[str] | None = None,
    columns: Columns | None = None,
) -> list[FileRecord]:
    """All records of ``path``, checked: one dimension, finite numbers, ids and timestamps.

    With ``columns``, a named column missing from the first record is a one-line error.
    """
    return read_table(path, fmt, features, columns)[0]


def read_table(
    path: Path,
    fmt: str | None = None,
    features: Sequence[str] | None = None,
    columns: Columns | None = None,
) -> tuple[list[FileRecord], list[str] | None]:
    """:func:`read_records`, and the feature columns used (``None``: a list or f0..fN)."""
    if not path.exists():
        raise CliError(f"file not found: {path}")
    if not path.is_file():
        raise CliError(f"not a file: {path}")
    kind = detect_format(path, fmt)
    try:
        if kind == "csv":
            rows = csv_rows(path)
        elif kind == "jsonl":
            rows = jsonl_rows(path)
        elif kind == "json":
            rows = json_rows(path)
        else:
            rows = parquet_rows(path)
        rows = list(rows)
        if columns is not None and rows:
            features = _check_columns(path, rows[0][1], columns, features)
        records = [_record(path, where, row, features, columns) for where, row in rows]
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
    return records, list(features) if features else None


def _feature_columns(row: Mapping[str, Any]) -> list[str]:
    numbered = sorted(
        ((int(m.group(1)), name) for name in row if (m := _F_COLUMN.match(name))),
    )
    return [name for _, name in numbered]


def _check_columns(
    path: Path, first: Mapping[str, Any], columns: Columns, features: Sequence[str] | None
) -> Sequence[str] | None:
    """Every named column exists; the feature columns when none are named or numbered."""
    named = dict(columns.flags())
    for name in features or ():
        named.setdefault(name, "--features")
    for name, flag in named.items():
        if name not in first:
            shown = ", ".join(list(first)[:12]) + (", ..." if len(first) > 12 else "")
            raise CliError(f"{path}: no column {name!r} ({flag}); the columns are {shown}")
    if features or "feature_vector" in first or _feature_columns(first):
        return features
    if not columns.numeric_fallback:
        return None
    skip = {*columns.flags(), "injected", "fault"}
    found = [c for c in first if c not in skip and _is_number(first[c])]
    if not found:
        raise CliError(f"{path}: no numeric column to use as a feature: name them with --features")
    return found


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


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
    path: Path,
    where: str,
    row: Mapping[str, Any],
    features: Sequence[str] | None,
    columns: Columns | None = None,
) -> FileRecord:
    columns = columns or Columns()
    vehicle = row.get(columns.vehicle)
    timestamp = row.get(columns.timestamp)
    if vehicle is None or str(vehicle).strip() == "":
        raise CliError(f"{path} {where}: {columns.vehicle} is missing")
    if timestamp is None or str(timestamp).strip() == "":
        raise CliError(f"{path} {where}: {columns.timestamp} is missing")
    timestamp = _timestamp(timestamp)
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
        numbered = _feature_columns(row)
        if not numbered:
            raise CliError(
                f"{path} {where}: no features: give f0..fN columns, a feature_vector column, "
                "or name the columns with --features"
            )
        vector = [_number(row[c], path, where, c) for c in numbered]
    label = (
        _label(row.get(columns.label), path, where, columns.label) if columns.label in row else None
    )
    if columns.kind:
        fault = row.get(columns.kind) if label else None
        fault = None if fault is None or str(fault).strip() in ("", "0", "none") else fault
    else:
        fault = row.get("injected") or row.get("fault") or None
    return FileRecord(
        {"vehicle_id": str(vehicle), "timestamp": str(timestamp), "feature_vector": vector},
        label,
        str(fault) if fault else None,
    )


def _timestamp(value: Any) -> str:
    """RFC 3339 text as it is; a time without a zone as UTC (as a Parquet timestamp column
    without one); a number as seconds since the epoch (a recording's seconds from its start
    give times in 1970, whose gaps are what a context model reads). Anything else is left
    as it is, for the caller's check to refuse."""
    from shared.schemas import format_timestamp, parse_timestamp

    if hasattr(value, "isoformat"):  # a Parquet timestamp column
        return format_timestamp(value) if value.tzinfo else value.isoformat() + "Z"
    if isinstance(value, bool):
        return str(value)
    text = str(value).strip()
    try:
        parse_timestamp(text)
        return text
    except ValueError:
        pass
    try:
        if _is_number(text):
            moment = datetime.fromtimestamp(float(text), UTC)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return text
    return format_timestamp(moment)


def _label(value: Any, path: Path, where: str, column: str = "label") -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise CliError(f"{path} {where}: {column} is {value!r}; use 1/0 or true/false")
