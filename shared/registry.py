# One concern, the registry's atomic operations under one lock, keeps this module past 300 lines.
"""The model registry: a directory of immutable versions and a ``LATEST`` pointer.

    $MODEL_DIR/<version>/model.joblib   the fitted estimator (a pickle: verified before load)
    $MODEL_DIR/<version>/meta.json      version, created_at, n_features, record_count, params,
                                        sha256 of model.joblib, signature (HMAC-SHA256)
    $MODEL_DIR/LATEST                   the active version's name
    $MODEL_DIR/CANDIDATE                a version the worker scores in shadow (optional)
    $MODEL_DIR/ACTIVATIONS              the versions made active, oldest first (retention
                                        keeps the most recent few for rollbacks)

Publishing writes into a temporary directory on the same volume, fsyncs, renames it into
place and only then replaces ``LATEST`` with ``os.replace``: a reader sees a whole version
or none. Publishers, activations and deletions hold an exclusive lock (``flock`` on
``.lock``, plus a thread lock because NFS turns ``flock`` into per-process POSIX locks).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hmac
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from shared.errors import (
    ModelIntegrityError,
    ModelInUseError,
    ModelNotFoundError,
    RegistryError,
)
from shared.registry_files import (
    doomed_versions,
    fsync_path,
    is_version_name,
    names_its_directory,
    read_pointer,
    recent_activations,
    record_activation,
    sha256_file,
    sign,
    sweep_stale_temps,
    version_sort_key,
    write_file,
)
from shared.training_schemas import ModelMeta

__all__ = [
    "CANDIDATE_FILE",
    "LATEST_FILE",
    "META_FILE",
    "MODEL_FILE",
    "LoadedModel",
    "ModelRegistry",
    "is_version_name",
    "version_sort_key",
]

MODEL_FILE = "model.joblib"
META_FILE = "meta.json"
LATEST_FILE = "LATEST"
CANDIDATE_FILE = "CANDIDATE"
_STALE_TEMP_SECONDS = 3600
_thread_lock = threading.Lock()
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A verified, unpickled version."""

    meta: ModelMeta
    estimator: Any


class ModelRegistry:
    """Publish, list, verify, load, activate and delete model versions under ``root``."""

    def __init__(
        self,
        root: Path | str,
        *,
        signing_key: bytes | None = None,
        retention: int | None = None,
        keep_activated: int = 5,
    ) -> None:
        self.root = Path(root)
        self.signing_key = signing_key
        self.retention = retention
        self.keep_activated = keep_activated
        # Bumped whenever this object moves a pointer or deletes a version, so a cache of
        # the pointers in this process knows to read them again at once.
        self.generation = 0

    # -- reading ---------------------------------------------------------------------------

    def ensure_root(self) -> None:
        """Create the registry directory if it does not exist."""
        self.root.mkdir(parents=True, exist_ok=True)

    def readable(self) -> bool:
        """Whether the registry directory exists and can be listed."""
        try:
            os.listdir(self.root)
        except OSError:
            return False
        return True

    def active_version(self) -> str | None:
        """The name in ``LATEST``, or ``None`` when no version was activated yet.

        Raises :class:`PointerFileError` when ``LATEST`` names no version (see ``read_pointer``).
        """
        return read_pointer(self.root / LATEST_FILE)

    def candidate_version(self) -> str | None:
        """The name in ``CANDIDATE``: a version scored in shadow beside the active one.

        Raises :class:`PointerFileError` when ``CANDIDATE`` names no version.
        """
        return read_pointer(self.root / CANDIDATE_FILE)

    def set_candidate(self, version: str) -> ModelMeta:
        """Make ``version`` the shadow candidate; it must verify and not be the active one."""
        with self._locked():
            meta = self.verify(version)
            if version == self.active_version():
                raise ModelInUseError(
                    f"model version {version!r} is active: a candidate must be another version"
                )
            self._point(CANDIDATE_FILE, version)
        return meta

    def clear_candidate(self) -> str | None:
        """Stop shadow scoring; returns the candidate there was."""
        with self._locked():
            previous = self.candidate_version()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / CANDIDATE_FILE)
                fsync_path(self.root)
            self.generation += 1
        return previous

    def versions(self) -> list[str]:
        """Every published version, oldest first."""
        try:
            names = [
                entry.name
                for entry in os.scandir(self.root)
                if entry.is_dir()
                and is_version_name(entry.name)
                and (Path(entry.path) / META_FILE).exists()
            ]
        except FileNotFoundError:
            return []
        return sorted(names, key=version_sort_key)

    def meta(self, version: str) -> ModelMeta:
        """The metadata of ``version``; :class:`ModelNotFoundError` if there is none."""
        return ModelMeta.model_validate(self._read_meta(version))

    def list(self) -> list[ModelMeta]:
        """The metadata of every version, oldest first."""
        found = []
        for version in self.versions():
            try:
                found.append(self.meta(version))
            except (RegistryError, ValueError) as error:  # one unreadable version hides no other
                log.warning(
                    "skipping unreadable model version",
                    extra={"version": version, "error": str(error)},
                )
        return found

    def _read_meta(self, version: str) -> dict[str, Any]:
        if not is_version_name(version):
            raise ModelNotFoundError(f"model version {version!r} does not exist")
        try:
            raw = (self.root / version / META_FILE).read_bytes()
        except FileNotFoundError as error:
            raise ModelNotFoundError(f"model version {version!r} does not exist") from error
        try:
            payload: dict[str, Any] = json.loads(raw)
        except ValueError as error:
            raise ModelIntegrityError(
                f"model version {version!r}: meta.json is not JSON"
            ) from error
        return payload

    def verify(self, version: str) -> ModelMeta:
        """Check the artifact's sha256 and, with a signing key, its signature; nothing is unpickled.

        ``meta.json`` must name ``version`` (its directory): the files of one version copied
        under another name are refused.
        """
        payload = self._read_meta(version)
        if not names_its_directory(payload, version):
            raise ModelIntegrityError(
                f"model version {version!r}: meta.json names version "
                f"{str(payload.get('version'))[:64]!r}; its files were copied from another version"
            )
        if self.signing_key is not None:
            signature = payload.get("signature")
            if not isinstance(signature, str):
                raise ModelIntegrityError(
                    f"model version {version!r} is not signed and MODEL_SIGNING_KEY is set"
                )
            if not hmac.compare_digest(signature, sign(payload, self.signing_key)):
                raise ModelIntegrityError(f"model version {version!r} has an invalid signature")
        path = self.root / version / MODEL_FILE
        try:
            actual = sha256_file(path)
        except FileNotFoundError as error:
            raise ModelIntegrityError(f"model version {version!r} has no {MODEL_FILE}") from error
        if not hmac.compare_digest(actual, str(payload.get("sha256", ""))):
            raise ModelIntegrityError(
                f"model version {version!r}: {MODEL_FILE} fails its sha256 check"
            )
        return ModelMeta.model_validate(payload)

    def load(self, version: str | None = None) -> LoadedModel:
        """Verify and unpickle ``version`` (default: the active one)."""
        if version is None:
            version = self.active_version()
            if version is None:
                raise ModelNotFoundError("no model has been trained yet")
        meta = self.verify(version)
        try:
            estimator = joblib.load(self.root / version / MODEL_FILE)
        except Exception as error:  # a verified but unreadable pickle: refuse it all the same
            raise ModelIntegrityError(
                f"model version {version!r} cannot be loaded: {error}"
            ) from error
        return LoadedModel(meta=meta, estimator=estimator)

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.ensure_root()
        with _thread_lock, (self.root / ".lock").open("a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _new_version_name(self, now: datetime) -> str:
        base = now.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        # Take the suffix after the highest this second has, so a name retention removed
        # from the middle of a burst is not handed out again.
        highest = max(
            (n for b, n in map(version_sort_key, os.listdir(self.root)) if b == base), default=0
        )
        return base if highest == 0 else f"{base}-{highest + 1}"

    def publish(
        self,
        estimator: Any,
        *,
        n_features: int,
        record_count: int,
        params: dict[str, Any],
        activate: bool = True,
        extra: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> ModelMeta:
        """Write a new version atomically, optionally make it active, then apply retention."""
        import sklearn

        moment = now or datetime.now(UTC)
        with self._locked():
            version = self._new_version_name(moment)
            temp = self.root / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
            temp.mkdir()
            try:
                model_path = temp / MODEL_FILE
                joblib.dump(estimator, model_path)
                fsync_path(model_path)
                payload: dict[str, Any] = {
                    **(extra or {}),
                    "version": version,
                    "created_at": moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    "n_features": n_features,
                    "record_count": record_count,
                    "params": params,
                    "sha256": sha256_file(model_path),
                    "sklearn_version": sklearn.__version__,
                }
                if self.signing_key is not None:
                    payload["signature"] = sign(payload, self.signing_key)
                write_file(temp / META_FILE, json.dumps(payload, indent=2).encode())
                fsync_path(temp)
                os.rename(temp, self.root / version)
            except BaseException:
                shutil.rmtree(temp, ignore_errors=True)
                raise
            fsync_path(self.root)
            # a version not made active becomes the shadow candidate
            self._point(LATEST_FILE if activate else CANDIDATE_FILE, version)
            if activate:
                record_activation(self.root, version)
            try:
                self._prune_locked()
            except RegistryError as error:  # published all the same: retention waits
                log.warning(
                    "retention skipped after a publish",
                    extra={"version": version, "error": str(error)},
                )
        return ModelMeta.model_validate(payload)

    def _point(self, pointer: str, version: str) -> None:
        temp = self.root / f".LATEST-{uuid.uuid4().hex[:8]}"
        write_file(temp, (version + "\n").encode())
        os.replace(temp, self.root / pointer)
        fsync_path(self.root)
        self.generation += 1

    def _unpoint_candidate(self, version: str) -> None:
        if self.candidate_version() == version:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / CANDIDATE_FILE)

    def activate(self, version: str) -> ModelMeta:
        """Make ``version`` the active one (a rollback when it is older); it must verify."""
        with self._locked():
            meta = self.verify(version)
            self._point(LATEST_FILE, version)
            record_activation(self.root, version)
            self._unpoint_candidate(version)  # promoted: no longer in shadow
        return meta

    def delete(self, version: str) -> None:
        """Remove a version that is not the active one."""
        with self._locked():
            if not is_version_name(version) or not (self.root / version).is_dir():
                raise ModelNotFoundError(f"model version {version!r} does not exist")
            if version == self.active_version():
                raise ModelInUseError(f"model version {version!r} is active and cannot be deleted")
            self._unpoint_candidate(version)
            self._remove(version)
            self.generation += 1

    def _remove(self, version: str) -> None:
        trash = self.root / f".trash-{version}-{uuid.uuid4().hex[:8]}"
        os.rename(self.root / version, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def rollback_versions(self) -> builtins.list[str]:
        """The ``keep_activated`` versions most recently made active (the active one aside):
        retention never removes them, so a burst of new versions cannot erase the rollbacks."""
        active = self.active_version()
        earlier = [v for v in recent_activations(self.root) if v != active]
        return earlier[: max(0, self.keep_activated)]

    def prune(self) -> builtins.list[str]:
        """Apply retention now; returns the versions removed."""
        with self._locked():
            return self._prune_locked()

    def _prune_locked(self) -> builtins.list[str]:
        sweep_stale_temps(self.root, _STALE_TEMP_SECONDS)
        if self.retention is None:
            return []
        keep = {self.active_version(), self.candidate_version(), *self.rollback_versions()}
        doomed = doomed_versions(self.versions(), keep, self.retention)
        for version in doomed:
            try:
                self._remove(version)
            except OSError as error:
                raise RegistryError(f"cannot remove old version {version!r}: {error}") from error
        return doomed
