"""Writing a dataset as a labelled CSV file, and its statistics for ``stats.json``.

The layout is the one ``vehicle-anomaly train/evaluate --file`` reads::

    vehicle_id,timestamp,<sensor columns...>[,label]

Rows go by time, then by vehicle, the way a fleet's stream arrives; timestamps are RFC 3339 in
UTC with a ``Z``.
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .convert import Table

HEADER = ("vehicle_id", "timestamp")


def rfc3339(t: dt.datetime) -> str:
    """``t`` in UTC with a ``Z``, with as many fractional digits as it needs."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"a naive time has no place in UTC: {t.isoformat()}")
    t = t.astimezone(dt.UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}".rstrip("0")
    return text + "Z"


def ordered_rows(table: Table) -> list[list[str]]:
    """The table's rows as CSV cells, by time and then by vehicle."""
    ordered = sorted(table.rows, key=lambda row: (row[0], row[1]))
    return [[vehicle, rfc3339(t), *map(str, cells)] for t, vehicle, cells in ordered]


def write_csv(path: Path, table: Table) -> list[list[str]]:
    """Write ``table`` to ``path`` (replacing it whole); the rows as written."""
    rows = ordered_rows(table)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*HEADER, *table.columns])
        writer.writerows(rows)
    partial.replace(path)
    return rows


def column_stats(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Row counts per vehicle and, per column, the figures docs/real-data.md quotes.

    ``repeat_share`` is the share of consecutive readings of one vehicle that are exactly equal;
    ``smallest_step`` the smallest gap between distinct values, which shows the quantization.
    """
    vehicles: dict[str, int] = {}
    for row in rows:
        vehicles[row[0]] = vehicles.get(row[0], 0) + 1
    stats: dict[str, Any] = {"rows": len(rows), "vehicles": vehicles, "columns": {}}
    if rows:
        stats["first"], stats["last"] = rows[0][1], rows[-1][1]
    for j, name in enumerate(columns, start=len(HEADER)):
        stats["columns"][name] = _one_column([(row[0], row[j]) for row in rows])
    return stats


def _one_column(cells: list[tuple[str, str]]) -> dict[str, Any]:
    values: list[float] = []
    same = pairs = missing = 0
    previous: dict[str, float] = {}
    for vehicle, cell in cells:
        if cell == "":
            missing += 1
            previous.pop(vehicle, None)
            continue
        x = float(cell)
        values.append(x)
        before = previous.get(vehicle)
        if before is not None:
            pairs += 1
            same += before == x
        previous[vehicle] = x
    if not values:
        return {"missing": missing}
    n = len(values)
    mean = sum(values) / n
    distinct = sorted(set(values))
    steps = [b - a for a, b in itertools.pairwise(distinct)]
    return {
        "n": n,
        "missing": missing,
        "mean": round(mean, 4),
        "std": round(math.sqrt(sum((v - mean) ** 2 for v in values) / n), 4),
        "min": min(values),
        "max": max(values),
        "distinct": len(distinct),
        "integer_share": round(sum(v == int(v) for v in values) / n, 4),
        "smallest_step": round(min(steps), 6) if steps else None,
        "repeat_share": round(same / pairs, 4) if pairs else None,
    }


def read_stats(path: Path) -> dict[str, Any]:
    """The statistics written before (``--only`` updates some datasets and keeps the rest)."""
    if not path.exists():
        return {}
    found = json.loads(path.read_text(encoding="utf-8"))
    return found if isinstance(found, dict) else {}


def write_stats(path: Path, stats: dict[str, Any]) -> None:
    path.write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
