"""How `explain` draws a verdict: one bar per attributed feature (pure: verdict in, lines out)."""

from __future__ import annotations

from typing import Any

from cli import ui

ARROWS = {"above": "↑", "below": "↓", "within": " "}
ASCII_ARROWS = {"above": "^", "below": "v", "within": " "}
EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
STYLES = {"above": "red", "below": "blue", "within": "yellow"}
DEFAULT_WIDTH = 30


def bar(share: float, width: int, *, ascii_only: bool = False) -> str:
    """A bar of ``share`` (0..1) of ``width`` cells, padded with spaces to ``width``.

    With block characters a cell is split in eighths; a share above 0 always shows something.
    """
    share = min(max(share, 0.0), 1.0)
    cells = share * width
    if ascii_only:
        count = round(cells)
        if share > 0 and count == 0:
            count = 1
        return ("#" * count).ljust(width)
    full = int(cells)
    eighths = round((cells - full) * 8)
    if eighths == 8:
        full, eighths = full + 1, 0
    if share > 0 and full == 0 and eighths == 0:
        eighths = 1
    return ("█" * full + EIGHTHS[eighths]).ljust(width)


def number(value: float | None) -> str:
    """A reading, compact and without exponent for everyday magnitudes: 612, 2,100, 0.93."""
    if value is None:
        return "?"
    size = abs(value)
    if size >= 1e7 or (0 < size < 1e-3):
        return f"{value:.3g}"
    if size >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.1f}" if size >= 100 else f"{value:.2f}" if size >= 10 else f"{value:.3f}"
    text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def label(entry: dict[str, Any]) -> str:
    """The feature's name, or ``feature N`` when the model was trained without names."""
    name = entry.get("name")
    return name if isinstance(name, str) and name.strip() else f"feature {entry['feature']}"


def where_from(verdict: dict[str, Any]) -> str:
    source = verdict.get("source")
    if not isinstance(source, dict):
        return ""
    return f"{source.get('topic', '?')}[{source.get('partition', '?')}]@{source.get('offset', '?')}"


def headline(verdict: dict[str, Any]) -> str:
    """``VH-002 at 2024-...Z``: which record the verdict is about."""
    return f"{verdict.get('vehicle_id', '?')} at {verdict.get('timestamp', '?')}"


def _details(verdict: dict[str, Any]) -> str:
    score = verdict.get("anomaly_score")
    parts = [f"model {verdict.get('model_version', '?')}"]
    source = where_from(verdict)
    if source:
        parts.append(source)
    shown = f"{score:+.4f}" if isinstance(score, int | float) else "?"
    return f"score {shown} ({', '.join(parts)})"


def direction_text(entry: dict[str, Any], *, ascii_only: bool = False) -> str:
    """``↑ above typical 301.5 to 402.3``, ``  within typical 0 to 1``, ``↓ below``."""
    direction = entry.get("direction") or "within"
    arrow = (ASCII_ARROWS if ascii_only else ARROWS)[direction]
    typical = entry.get("typical")
    if isinstance(typical, list) and len(typical) == 2:
        return f"{arrow} {direction} typical {number(typical[0])} to {number(typical[1])}"
    if direction == "within":
        return f"{arrow} (the model keeps no typical range)"
    return f"{arrow} {direction} the typical range"


def render(
    verdict: dict[str, Any], *, width: int = DEFAULT_WIDTH, ascii_only: bool = False
) -> list[ui.Line]:
    """A verdict as styled lines: a headline, then one bar per attributed feature."""
    head = headline(verdict)
    if not verdict.get("is_anomaly"):
        return [
            [
                (f"{head}: ", "bold"),
                ("not anomalous", "green"),
                (f", {_details(verdict)}; a normal verdict has no attribution", None),
            ]
        ]
    lines: list[ui.Line] = [
        [(f"{head}: ", "bold"), ("anomalous", "bold red"), (f", {_details(verdict)}", None)]
    ]
    attribution = verdict.get("attribution")
    if not attribution:
        why = (
            "no feature stood out (an empty attribution)"
            if isinstance(attribution, list)
            else "the verdict carries no attribution (ATTRIBUTION_TOP_K=0, or it was scored "
            "before verdicts were explained)"
        )
        lines.append([(f"  {why}", "dim")])
        return lines
    labels = [label(entry) for entry in attribution]
    values = [number(entry.get("value")) for entry in attribution]
    label_width = max(len(text) for text in labels)
    value_width = max(len(text) for text in values)
    for entry, name, value in zip(attribution, labels, values, strict=True):
        share = float(entry["share"])
        direction = entry.get("direction") or "within"
        lines.append(
            [
                (f"  {name.ljust(label_width)}  ", None),
                (bar(share, width, ascii_only=ascii_only), STYLES.get(direction)),
                (f"  {share * 100:5.1f}%", "bold"),
                (f"  {value.ljust(value_width)}  ", None),
                (direction_text(entry, ascii_only=ascii_only), STYLES.get(direction)),
            ]
        )
    rest = 1.0 - sum(float(entry["share"]) for entry in attribution)
    if rest >= 0.001:
        lines.append([(f"  the other features: {rest * 100:.1f}%", "dim")])
    return lines


def rendered_text(verdict: dict[str, Any], **options: Any) -> str:
    """The plain text of :func:`render` (for tests and pipes)."""
    return "\n".join(ui.plain(line) for line in render(verdict, **options))
