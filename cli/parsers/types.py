"""The argument types of the command line: each turns one option's text into its value."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, not {text}")
    return value


def timestamp(text: str) -> datetime:
    from shared.schemas import parse_timestamp

    if text == "now":
        return datetime.now(UTC)
    try:
        return parse_timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time with a zone, e.g. 2024-01-15T10:00:00Z"
        ) from None


def kinds(text: str) -> list[str]:
    from simulator import FaultKind

    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    allowed = [k.value for k in FaultKind]
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose among {', '.join(allowed)} (comma-separated)"
        )
    return list(dict.fromkeys(names))


def max_samples(text: str) -> int | float | str:
    if text == "auto":
        return text
    try:
        value: int | float = float(text) if "." in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give auto, a count (256) or a share (0.5)"
        ) from None
    if value <= 0 or (isinstance(value, float) and value > 1):
        raise argparse.ArgumentTypeError(f"{text!r}: a count must be >= 1, a share in (0, 1]")
    return value


def contamination(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give auto or a share in (0, 0.5]") from None
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"{text!r}: give auto or a share in (0, 0.5]")
    return value


def open_share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and below 1, not {text}")
    return value


def unit_share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one column")
    return names
