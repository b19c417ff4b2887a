"""The documented configuration stays complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting() -> None:
    """.env.example names every variable Settings reads, and nothing it does not."""
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    expected = {name.upper() for name in Settings.model_fields}
    assert listed == expected


def test_env_example_values_are_valid() -> None:
    """The uncommented values of .env.example load without error."""
    values: dict[str, Any] = dict(
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    Settings(**{k.lower(): v for k, v in values.items()})
