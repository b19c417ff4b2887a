"""The model registry: atomic publish, locking, integrity, rollback and retention."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from shared.errors import ModelIntegrityError, ModelInUseError, ModelNotFoundError
from shared.registry import LATEST_FILE, META_FILE, MODEL_FILE, ModelRegistry, version_sort_key

NOW = datetime(2024, 1, 15, 10, 0, 0, tzinfo=UTC)


def small_model(seed: int = 0) -> IsolationForest:
    rng = np.random.default_rng(seed)
    return IsolationForest(n_estimators=5, random_state=seed).fit(rng.normal(size=(64, 3)))


def publish(registry: ModelRegistry, seed: int = 0, **kwargs: Any) -> str:
    meta = registry.publish(
        small_model(seed), n_features=3, record_count=64, params={"n_estimators": 5}, **kwargs
    )
    return meta.version


def test_publish_writes_version_meta_and_latest(tmp_path: Path) -> None:
    """A published version has the contract's files and fields, and LATEST names it."""
    registry = ModelRegistry(tmp_path)
    version = publish(registry, now=NOW)
    assert version == "20240115100000"
    assert (tmp_path / LATEST_FILE).read_text().strip() == version
    meta = json.loads((tmp_path / version / META_FILE).read_text())
    assert {"version", "created_at", "n_features", "record_count", "params", "sha256"} <= set(meta)
    assert "signature" not in meta
    assert sorted(p.name for p in (tmp_path / version).iterdir()) == [META_FILE, MODEL_FILE]


def test_same_second_versions_get_suffixes_that_sort(tmp_path: Path) -> None:
    """Versions taken in the same second become -2, -3, ... and still sort by time."""
    registry = ModelRegistry(tmp_path)
    names = [publish(registry, now=NOW) for _ in range(11)]
    assert names[:3] == ["20240115100000", "20240115100000-2", "20240115100000-3"]
    assert registry.versions() == names
    assert sorted(names, key=version_sort_key) == names


def test_load_round_trips_the_estimator(tmp_path: Path) -> None:
    """Loading the active version gives an estimator scoring exactly like the one published."""
    registry = ModelRegistry(tmp_path)
    model = small_model(3)
    registry.publish(model, n_features=3, record_count=64, params={})
    loaded = registry.load()
    probe = np.random.default_rng(9).normal(size=(20, 3))
    np.testing.assert_array_equal(
        loaded.estimator.decision_function(probe), model.decision_function(probe)
    )


def test_no_model_yet(tmp_path: Path) -> None:
    """An empty registry has no active version and says so on load."""
    registry = ModelRegistry(tmp_path / "missing")
    assert registry.active_version() is None
    assert registry.versions() == []
    with pytest.raises(ModelNotFoundError, match="no model has been trained yet"):
        registry.load()


def test_unknown_and_malformed_version_names(tmp_path: Path) -> None:
    """Unknown versions, and names that could escape the directory, are not found."""
    registry = ModelRegistry(tmp_path)
    publish(registry)
    for name in ["20990101000000", "../etc", "LATEST", ".lock"]:
        with pytest.raises(ModelNotFoundError):
            registry.meta(name)


def test_tampered_artifact_is_refused(tmp_path: Path) -> None:
    """A model.joblib whose bytes changed fails the sha256 check and is not unpickled."""
    registry = ModelRegistry(tmp_path)
    version = publish(registry)
    path = tmp_path / version / MODEL_FILE
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        registry.load(version)


def test_signed_artifacts_verify_and_tampered_meta_is_refused(tmp_path: Path) -> None:
    """With a signing key, a signed version loads and an edited meta.json is refused."""
    registry = ModelRegistry(tmp_path, signing_key=b"k1")
    version = publish(registry)
    assert registry.load(version).meta.signature
    meta_path = tmp_path / version / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["record_count"] = 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="invalid signature"):
        registry.load(version)


def test_forged_artifact_with_matching_sha_is_refused_when_signed(tmp_path: Path) -> None:
    """Replacing the pickle and updating its sha256 still fails the HMAC signature."""
    registry = ModelRegistry(tmp_path, signing_key=b"secret")
    version = publish(registry)
    other = ModelRegistry(tmp_path / "other")
    forged = publish(other, seed=5)
    (tmp_path / version / MODEL_FILE).write_bytes(
        (tmp_path / "other" / forged / MODEL_FILE).read_bytes()
    )
    meta_path = tmp_path / version / META_FILE
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = json.loads((tmp_path / "other" / forged / META_FILE).read_text())["sha256"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="invalid signature"):
        registry.load(version)


def test_unsigned_artifact_refused_when_key_is_set(tmp_path: Path) -> None:
    """A version published without a key is refused by a registry that has one."""
    version = publish(ModelRegistry(tmp_path))
    with pytest.raises(ModelIntegrityError, match="not signed"):
        ModelRegistry(tmp_path, signing_key=b"k").load(version)


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    """A version signed with another key does not verify."""
    version = publish(ModelRegistry(tmp_path, signing_key=b"a"))
    with pytest.raises(ModelIntegrityError, match="invalid signature"):
        ModelRegistry(tmp_path, signing_key=b"b").verify(version)


def test_rollback_activates_an_older_version(tmp_path: Path) -> None:
    """Activating an older version points LATEST at it; load then returns it."""
    registry = ModelRegistry(tmp_path)
    first = publish(registry, seed=1)
    second = publish(registry, seed=2)
    assert registry.active_version() == second
    registry.activate(first)
    assert registry.active_version() == first
    assert registry.load().meta.version == first


def test_activate_refuses_a_tampered_version(tmp_path: Path) -> None:
    """Rollback to a version that fails verification leaves LATEST unchanged."""
    registry = ModelRegistry(tmp_path)
    first = publish(registry, seed=1)
    second = publish(registry, seed=2)
    (tmp_path / first / MODEL_FILE).write_bytes(b"evil")
    with pytest.raises(ModelIntegrityError):
        registry.activate(first)
    assert registry.active_version() == second


def test_publish_without_activation_keeps_latest(tmp_path: Path) -> None:
    """A candidate published with activate=False does not move LATEST."""
    registry = ModelRegistry(tmp_path)
    active = publish(registry)
    candidate = publish(registry, activate=False)
    assert registry.active_version() == active
    assert candidate in registry.versions()
    assert registry.candidate_version() == candidate  # it is scored in shadow


def test_the_candidate_pointer_follows_activation_deletion_and_clearing(tmp_path: Path) -> None:
    """The candidate is the newest inactive or the one set; activate, delete, clear end it."""
    registry = ModelRegistry(tmp_path)
    active = publish(registry)
    assert registry.candidate_version() is None
    first = publish(registry, activate=False)
    second = publish(registry, activate=False)
    assert registry.candidate_version() == second  # one candidate at a time: the newest
    registry.set_candidate(first)
    assert registry.candidate_version() == first
    with pytest.raises(ModelInUseError):
        registry.set_candidate(active)
    with pytest.raises(ModelNotFoundError):
        registry.set_candidate("20990101000000")
    registry.delete(first)
    assert registry.candidate_version() is None
    registry.set_candidate(second)
    registry.activate(second)  # promoted: no longer a candidate
    assert (registry.active_version(), registry.candidate_version()) == (second, None)
    registry.set_candidate(active)
    assert registry.clear_candidate() == active
    assert registry.candidate_version() is None and registry.clear_candidate() is None


def test_delete_refuses_the_active_version(tmp_path: Path) -> None:
    """The active version cannot be deleted; another one can."""
    registry = ModelRegistry(tmp_path)
    old = publish(registry)
    active = publish(registry)
    with pytest.raises(ModelInUseError):
        registry.delete(active)
    registry.delete(old)
    assert registry.versions() == [active]
    with pytest.raises(ModelNotFoundError):
        registry.delete(old)


def test_retention_keeps_newest_and_never_the_active(tmp_path: Path) -> None:
    """Retention keeps the newest N versions plus the active one, deleting the rest."""
    registry = ModelRegistry(tmp_path, retention=3, keep_activated=0)
    names = [publish(registry, now=NOW) for _ in range(3)]
    registry.activate(names[0])
    later = [publish(registry, now=NOW, activate=False) for _ in range(3)]
    assert registry.versions() == [names[0], *later]
    assert registry.active_version() == names[0]
    # the shadow candidate is kept too, however old
    registry.set_candidate(later[0])
    newest = [publish(registry, now=NOW) for _ in range(3)]
    assert registry.versions() == [later[0], *newest]


def test_stale_temporary_directories_are_cleaned(tmp_path: Path) -> None:
    """A crashed publisher's temp dir, once old, is removed by the next prune."""
    import os

    registry = ModelRegistry(tmp_path, retention=5)
    publish(registry)
    stale = tmp_path / ".tmp-20240101000000-deadbeef"
    stale.mkdir()
    os.utime(stale, (0, 0))
    fresh = tmp_path / ".tmp-20240101000001-cafebabe"
    fresh.mkdir()
    registry.prune()
    assert not stale.exists()
    assert fresh.exists()
    assert registry.versions() == [registry.active_version()]


def test_concurrent_reader_never_sees_a_partial_version(tmp_path: Path) -> None:
    """A reader polling LATEST during many publishes always loads a complete, valid version."""
    registry = ModelRegistry(tmp_path, signing_key=b"k", retention=50)
    publish(registry)
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def read() -> None:
        reader = ModelRegistry(tmp_path, signing_key=b"k")
        while not stop.is_set():
            try:
                seen.append(reader.load().meta.version)
                reader.list()
            except BaseException as error:
                errors.append(error)
                return

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for seed in range(20):
            publish(registry, seed=seed)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert len(seen) > 0


def test_two_concurrent_publishers_in_threads(tmp_path: Path) -> None:
    """Threads of one process publishing at once also get distinct versions."""
    registry = ModelRegistry(tmp_path)
    results: list[str] = []
    lock = threading.Lock()

    def work(seed: int) -> None:
        name = publish(registry, seed=seed)
        with lock:
            results.append(name)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 6
    assert set(registry.versions()) == set(results)
