"""``vehicle-anomaly tail --alerts``: alert episodes as table lines."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    ("TIME", 24),
    ("VEHICLE", 10),
    ("EVENT", 7),
    ("RECORDS", 7),
    ("SEVERITY", 8),
    ("WORST", 8),
    ("SENSORS", 24),
    ("EPISODE", 0),
)
RIGHT = {"RECORDS", "SEVERITY", "WORST"}


def _line(cells: list[str]) -> str:
    return "  ".join(
        cell.rjust(width) if name in RIGHT else cell.ljust(width)
        for (name, width), cell in zip(COLUMNS, cells, strict=True)
    ).rstrip()


def header() -> str:
    return _line([name for name, _ in COLUMNS])


def sensors(event: dict[str, Any]) -> str:
    """The leading sensors, by name where the model has names, with their shares."""
    parts = []
    for lead in event.get("leading_sensors") or []:
        name = lead.get("name") or f"#{lead.get('feature', '?')}"
        share = lead.get("share")
        parts.append(f"{name} {share:.0%}" if isinstance(share, int | float) else str(name))
    return ", ".join(parts) or "-"


def row(event: dict[str, Any]) -> str:
    """One alert event as a table line (a closed one says why)."""
    kind = str(event.get("event", "?"))
    if kind == "closed" and event.get("reason") == "silent":
        kind = "silent"
    severity, worst = event.get("severity"), event.get("worst_score")
    return _line(
        [
            str(event.get("at", "?")),
            str(event.get("vehicle_id", "?")),
            kind,
            str(event.get("record_count", "?")),
            f"{severity:.2f}" if isinstance(severity, int | float) else "?",
            f"{worst:+.4f}" if isinstance(worst, int | float) else "?",
            sensors(event),
            str(event.get("episode_id", "?")),
        ]
    )
