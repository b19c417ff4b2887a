"""What every part of `make run` shares: the repository's paths, its messages, its stop signal."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"
KAFKA_LOCAL = ROOT / "scripts" / "kafka-local"


class Stop(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


def say(message: str) -> None:
    print(f"make run: {message}", flush=True)


def fail(message: str) -> None:
    print(f"make run: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)
