"""The development secrets `make run` keeps in files under var/ (git-ignored): the API key, so
the command-line tool can reuse it, and the model signing key, so versions stay valid across
restarts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from runlocal.common import VAR


def key_file() -> Path:
    explicit = os.environ.get("VEHICLE_ANOMALY_KEY_FILE", "").strip()
    return Path(explicit) if explicit else VAR / "dev-api-key"


def signing_key_file() -> Path:
    return VAR / "dev-signing-key"


def _kept(path: Path, make: str) -> str:
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(make + "\n")
    return make


def dev_api_key() -> str:
    """A key kept in a file (var/dev-api-key), so the command-line tool and curl can reuse it."""
    return _kept(key_file(), "dev-" + secrets.token_urlsafe(18))


def dev_signing_key() -> str:
    """The HMAC key that signs the models `make run` trains (var/dev-signing-key)."""
    return _kept(signing_key_file(), secrets.token_urlsafe(32))
