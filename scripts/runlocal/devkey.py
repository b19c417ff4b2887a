"""The development API key `make run` keeps in a file, so the command-line tool can reuse it."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from runlocal.common import VAR


def key_file() -> Path:
    explicit = os.environ.get("VEHICLE_ANOMALY_KEY_FILE", "").strip()
    return Path(explicit) if explicit else VAR / "dev-api-key"


def dev_api_key() -> str:
    """A key kept in a file (var/dev-api-key), so the command-line tool and curl can reuse it."""
    path = key_file()
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "dev-" + secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
