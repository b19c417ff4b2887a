"""The workers' drift and shadow figures, shared with the api through the model volume.

Each worker writes its drift window and its shadow figures as small JSON files beside the
models, one file per worker and subject, replaced atomically every few seconds:

    $MODEL_DIR/.observations/drift/<version>/<worker>.json
    $MODEL_DIR/.observations/shadow/<candidate>/<active>/<worker>.json

The api reads every worker's file for a subject and merges them (counts add up). A file
not rewritten for ``ttl`` seconds belongs to a worker that stopped or moved on; it is left
out while fresher ones exist, and files a day old are removed by the workers.

Why the volume and not a compacted Kafka topic: both services already mount it, the api
reads it without a Kafka client in its request path, nothing needs creating or granting on
the cluster, and a few kilobytes per worker every few seconds is nothing for EFS. One file per
worker means no two processes ever write the same file, so no lock is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DIRECTORY = ".observations"
DRIFT = "drift"
SHADOW = "shadow"
MAX_AGE_SECONDS = 86_400.0
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def worker_id() -> str:
    """A name for this worker process: host, pid and a random suffix."""
    host = _SAFE.sub("-", socket.gethostname())[:40] or "worker"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class ObservationStore:
    """Reads and writes observation files under ``model_dir``."""

    def __init__(self, model_dir: Path | str) -> None:
        self.root = Path(model_dir) / DIRECTORY

    def _path(self, kind: str, *parts: str) -> Path:
        for part in parts:
            if not part or _SAFE.search(part) or part.startswith("."):
                raise ValueError(f"not a safe file name: {part!r}")
        return self.root.joinpath(kind, *parts)

    def write(self, kind: str, subject: tuple[str, ...], worker: str, body: dict[str, Any]) -> None:
        """Replace this worker's file for ``subject`` (atomic: a temp file, then rename)."""
        path = self._path(kind, *subject, worker + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        payload = {**body, "worker": worker, "written_at": time.time()}
        temp.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        os.replace(temp, path)

    def read(
        self, kind: str, subject: tuple[str, ...], ttl: float
    ) -> tuple[list[dict[str, Any]], bool]:
        """Every worker's file for ``subject``: the fresh ones, or all of them if none is.

        The flag says whether the files returned are stale (none written within ``ttl``).
        """
        try:
            folder = self._path(kind, *subject)
        except ValueError:
            return [], False
        found: list[dict[str, Any]] = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if path.name.startswith("."):
                continue
            with contextlib.suppress(OSError, ValueError):
                found.append(json.loads(path.read_text(encoding="utf-8")))
        now = time.time()
        fresh = [p for p in found if now - float(p.get("written_at", 0)) <= ttl]
        if fresh:
            return fresh, False
        return found, bool(found)

    def subjects(self, kind: str, *parent: str) -> list[str]:
        """The subjects (e.g. the active versions a candidate was compared with) on file."""
        try:
            folder = self._path(kind, *parent)
        except ValueError:
            return []
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir())

    def sweep(self, max_age: float = MAX_AGE_SECONDS) -> int:
        """Remove files not rewritten for ``max_age`` seconds, and emptied folders."""
        removed = 0
        cutoff = time.time() - max_age
        for path in self._walk():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        for folder in (
            sorted((p for p in self.root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            if self.root.is_dir()
            else []
        ):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty
        return removed

    def _walk(self) -> Iterator[Path]:
        if self.root.is_dir():
            yield from (p for p in self.root.rglob("*") if p.is_file())
