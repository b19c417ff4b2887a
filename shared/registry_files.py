"""The registry's file-level pieces: version names, artifact digests and signatures, durable writes.

A version is named by its UTC training time (``YYYYMMDDHHMMSS``, with ``-2``, ``-3``... when
that second is taken). ``meta.json`` is signed with HMAC-SHA256 over its canonical JSON
(sorted keys, no whitespace), without the ``signature`` key itself: the version's name, its
metadata and the artifact's sha256 are signed together, and a version is only served from the
directory of the name it was signed under (:func:`names_its_directory`). Every file the registry
writes is fsynced before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import shutil
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from shared.errors import PointerFileError

_VERSION_RE = re.compile(r"^(?P<base>[0-9]{14})(?:-(?P<n>[0-9]+))?$")


def version_sort_key(version: str) -> tuple[str, int]:
    """Order versions by training time, then by their ``-2``, ``-3`` suffix."""
    match = _VERSION_RE.match(version)
    if match is None:
        return (version, 0)
    return (match.group("base"), int(match.group("n") or 1))


def is_version_name(name: str) -> bool:
    """Whether ``name`` has the form of a version (``YYYYMMDDHHMMSS`` with optional ``-N``)."""
    return _VERSION_RE.match(name) is not None


MAX_POINTER_BYTES = 256  # a version name is 14 digits and a short suffix


def read_pointer(path: Path) -> str | None:
    """The version a pointer file (``LATEST``, ``CANDIDATE``) names; ``None`` if it is absent
    or empty.

    Any content is data to validate: bytes that are not UTF-8, or text that is not a version
    name, raise :class:`shared.errors.PointerFileError` (never a ``UnicodeDecodeError``).
    Other ``OSError`` (an unreadable directory) propagates.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_POINTER_BYTES + 1)
    except FileNotFoundError:
        return None
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise PointerFileError(f"{path.name} is not UTF-8 text ({len(raw)} bytes)") from None
    if not name:
        return None
    if len(raw) > MAX_POINTER_BYTES or not is_version_name(name):
        shown = name[:40] + ("..." if len(name) > 40 else "")
        raise PointerFileError(f"{path.name} does not name a version: {shown!r}")
    return name


def _canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(payload: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the canonical JSON of ``payload`` (without any ``signature`` key)."""
    body = {k: v for k, v in payload.items() if k != "signature"}
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


def names_its_directory(payload: dict[str, Any], version: str) -> bool:
    """Whether ``meta.json`` names the directory it was read from.

    The signature covers the ``version`` member; this check binds it to the directory, so a
    signed version copied under another name is refused instead of served as that name.
    """
    return payload.get("version") == version


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def sweep_stale_temps(root: Path, older_than_seconds: float) -> None:
    """Remove temporary and trash entries that a crashed publisher or deleter left behind."""
    cutoff = time.time() - older_than_seconds
    for entry in os.scandir(root):
        if entry.name.startswith((".tmp-", ".trash-", ".LATEST-")):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)


ACTIVATIONS_FILE = "ACTIVATIONS"
# Entries the activation history keeps (it is read only to protect the most recent ones).
_ACTIVATIONS_KEPT = 100


def recent_activations(root: Path) -> list[str]:
    """The versions made active, most recent first, each once (empty before any record)."""
    try:
        lines = (root / ACTIVATIONS_FILE).read_bytes().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    seen: dict[str, None] = {}
    for line in reversed(lines):
        name = line.strip()
        if is_version_name(name):
            seen.setdefault(name, None)
    return list(seen)


def record_activation(root: Path, version: str) -> None:
    """Append ``version`` to the activation history (atomically; call under the registry lock)."""
    earlier = [v for v in reversed(recent_activations(root)) if v != version]
    history = [*earlier[-(_ACTIVATIONS_KEPT - 1) :], version]
    temp = root / f".LATEST-activations-{os.getpid()}"
    write_file(temp, ("\n".join(history) + "\n").encode())
    os.replace(temp, root / ACTIVATIONS_FILE)


def doomed_versions(versions: list[str], keep: Collection[str | None], retention: int) -> list[str]:
    """The versions retention removes: all but the newest ``retention``, never those in ``keep``."""
    return [v for v in versions[: max(0, len(versions) - retention)] if v not in keep]
