"""Attribution from the trees, drift statistics, shadow counters, observation files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr  # type: ignore[import-untyped]  # scipy ships no types
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

from shared.attribution import Reference, rank
from shared.drift import DriftReference, DriftWindow, ks, merge_counts, psi, reference_bins
from shared.forest import CompiledForest
from shared.forest_kernels import gains_python
from shared.shadow import ShadowStats, pairs_from_payload, report
from shared.worker_figures import DRIFT, SHADOW, ObservationStore


def fitted(
    rows: int = 512, width: int = 6, seed: int = 0, **params: Any
) -> tuple[np.ndarray, IsolationForest, CompiledForest]:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(rows, width))
    model = IsolationForest(n_estimators=60, random_state=seed, **params).fit(data)
    return data, model, CompiledForest.from_sklearn(model)


# --- attribution ------------------------------------------------------------------------------


def reference_gains(forest: CompiledForest, model: IsolationForest, row: np.ndarray) -> np.ndarray:
    """The definition, written plainly over scikit-learn's own trees."""
    expected = _average_path_length([model._max_samples])[0]
    row32 = row.astype(np.float32)
    weighted = np.zeros(forest.n_features)
    plain = np.zeros(forest.n_features)
    total_shortfall = 0.0
    for tree, columns in zip(model.estimators_, model.estimators_features_, strict=True):
        t = tree.tree_
        node, depth, gains = 0, 0, np.zeros(forest.n_features)
        while t.children_left[node] != -1:
            column = columns[t.feature[node]]
            child = (
                t.children_left[node]
                if row32[column] <= t.threshold[node]
                else t.children_right[node]
            )
            gains[column] += np.log(t.n_node_samples[node]) - np.log(t.n_node_samples[child])
            node, depth = child, depth + 1
        length = depth + _average_path_length([t.n_node_samples[node]])[0]
        plain += gains
        shortfall = expected - length
        if shortfall > 0 and gains.sum() > 0:
            weighted += gains * shortfall / gains.sum()
            total_shortfall += shortfall
    return weighted if total_shortfall > 0 else plain


@pytest.mark.parametrize("params", [{}, {"max_features": 0.5}, {"max_samples": 64}])
def test_isolation_gains_follow_their_definition(params: dict[str, Any]) -> None:
    """Isolation gains equal a direct walk of each tree, with max_features and max_samples too."""
    data, model, forest = fitted(**params)
    rows = np.vstack([data[:20], data[:5] + 6.0])
    gains = forest.isolation_gains(rows)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(gains[i], reference_gains(forest, model, row), rtol=1e-9)


def test_compiled_and_python_kernels_agree() -> None:
    """The compiled gains kernel and its pure Python twin give the same gains."""
    data, _, forest = fitted()
    rows = np.ascontiguousarray(np.vstack([data[:50], data[:10] * 5]), dtype=np.float32)
    out = np.zeros((rows.shape[0], forest.n_features))
    gains_python(
        rows,
        forest.feature,
        forest.threshold,
        forest.child,
        forest.log_samples,
        forest.value,
        forest.expected_path,
        forest.roots,
        forest.depths,
        out,
    )
    np.testing.assert_allclose(forest.isolation_gains(rows), out, rtol=1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    column=st.integers(0, 5),
    offset=st.floats(6.0, 30.0),
    sign=st.sampled_from([-1.0, 1.0]),
    seed=st.integers(0, 1000),
)
def test_one_sensor_far_off_ranks_first(column: int, offset: float, sign: float, seed: int) -> None:
    """A record typical in every feature but one is attributed to that one, on its side."""
    data, _, forest = FITTED
    typical = data[np.abs(data).max(axis=1) < 1.5]
    row = typical[seed % typical.shape[0]].copy()
    row[column] += sign * offset
    gains = forest.isolation_gains(row[None, :])[0]
    reference = Reference(
        np.quantile(data, 0.05, axis=0).tolist(), np.quantile(data, 0.95, axis=0).tolist()
    )
    (top, *_) = rank(gains, row, reference, 3)
    assert top["feature"] == column
    assert top["direction"] == ("above" if sign > 0 else "below")
    assert top["typical"] == [reference.low[column], reference.high[column]]  # type: ignore[index]  # the bounds are lists here


FITTED = fitted(seed=3)


def test_rank_orders_by_share_and_names_features() -> None:
    """rank orders by share, names features, sets directions from the reference, drops zeros."""
    gains = np.array([0.5, 3.0, 0.0, 1.5])
    ranked = rank(gains, [1.0, 9.0, 0.0, -4.0], Reference([0, 0, 0, 0], [2, 2, 2, 2]), 3, "abcd")
    assert [r["feature"] for r in ranked] == [1, 3, 0]
    assert [r["name"] for r in ranked] == ["b", "d", "a"]
    assert [r["share"] for r in ranked] == [0.6, 0.3, 0.1]
    assert [r["direction"] for r in ranked] == ["above", "below", "within"]
    assert rank(gains, [0] * 4, Reference(None, None), 0) == []
    assert rank(np.zeros(4), [0] * 4, Reference(None, None), 3) == []
    # no reference (a model trained before it was kept): direction unknown, no range
    (only,) = rank(gains, [1.0, 9.0, 0.0, -4.0], Reference(None, None), 1)
    assert only["direction"] == "within" and only["typical"] is None and "name" not in only
    # zero gains are not listed even when top_k allows
    assert len(rank(np.array([1.0, 0.0]), [0, 0], Reference(None, None), 5)) == 1


# --- drift ------------------------------------------------------------------------------------


def test_reference_bins_cut_the_training_data_in_tenths() -> None:
    """Reference bins cut each feature and the score in deciles; a constant one gets one edge."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(5000, 3))
    bins = reference_bins(features, rng.normal(size=5000))
    for part in [*bins["features"], bins["score"]]:
        assert len(part["edges"]) == 9
        np.testing.assert_allclose(part["proportions"], 0.1, atol=0.001)
    constant = reference_bins(np.ones((100, 1)), np.zeros(100))["features"][0]
    assert constant["edges"] == [1.0] and constant["proportions"] == [0.0, 1.0]


def window_for(features: np.ndarray, size: int = 2000) -> DriftWindow:
    bins = reference_bins(features, features[:, 0])
    reference = DriftReference.from_meta({"reference": {"bins": bins}})
    assert reference is not None
    return DriftWindow(reference, size)


def test_psi_and_ks_are_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    """PSI and KS stay under 0.05 for the same distribution and pass the thresholds on a shift."""
    rng = np.random.default_rng(2)
    window = window_for(rng.normal(size=(10_000, 2)))
    same = rng.normal(size=(2000, 2))
    window.observe(same, same[:, 0])
    calm = window.statistics()
    assert max(v["psi"] for v in calm.values()) < 0.05
    assert max(v["ks"] for v in calm.values()) < 0.05
    moved = rng.normal(size=(2000, 2)) + np.array([1.0, 0.0])
    window.observe(moved, moved[:, 0])  # the window slides: only the moved rows remain
    assert window.records == 2000
    stats = window.statistics()
    assert stats["0"]["psi"] > 0.25 and stats["0"]["ks"] > 0.3
    assert stats["1"]["psi"] < 0.05
    assert stats["score"]["psi"] == stats["0"]["psi"]


def test_psi_of_known_shares() -> None:
    """psi and ks of two-bin shares equal their textbook formulas."""
    expected = np.array([0.5, 0.5])
    assert psi(np.array([50, 50]), expected) == 0.0
    value = psi(np.array([80, 20]), expected)
    assert value == pytest.approx(0.3 * np.log(0.8 / 0.5) + (-0.3) * np.log(0.2 / 0.5))
    assert ks(np.array([80, 20]), expected) == pytest.approx(0.3)


def test_windows_merge_exactly_by_adding_counts() -> None:
    """Merged window counts equal one window that saw both batches; merging none is None."""
    rng = np.random.default_rng(3)
    data = rng.normal(size=(4000, 2))
    one, two, both = window_for(data), window_for(data), window_for(data, size=10_000)
    a, b = rng.normal(size=(700, 2)), rng.normal(size=(900, 2)) + 0.5
    one.observe(a, a[:, 0])
    two.observe(b, b[:, 0])
    both.observe(a, a[:, 0])
    both.observe(b, b[:, 0])
    merged = merge_counts([one.counts, two.counts])
    assert merged is not None
    np.testing.assert_array_equal(merged, both.counts)
    assert merge_counts([]) is None


def test_a_model_without_bins_has_no_drift_reference() -> None:
    """Metadata without reference bins gives no drift reference."""
    assert DriftReference.from_meta({}) is None
    assert DriftReference.from_meta({"reference": {"p05": [0.0]}}) is None


# --- shadow -----------------------------------------------------------------------------------


def test_shadow_counts_and_rank_correlation_match_an_offline_computation() -> None:
    """Shadow counts, flips and Spearman's rank correlation match a computation over all scores."""
    rng = np.random.default_rng(4)
    active, candidate = rng.normal(size=3000) * 0.1, rng.normal(size=3000) * 0.1
    candidate = 0.7 * active + 0.3 * candidate
    stats = ShadowStats("c", "a", sample_size=5000)
    for start in range(0, 3000, 250):
        stats.observe(active[start : start + 250], candidate[start : start + 250])
    figures = report([stats.to_payload()])
    assert figures["records"] == 3000
    assert figures["active_anomalies"] == int((active < 0).sum())
    assert figures["candidate_anomalies"] == int((candidate < 0).sum())
    assert figures["flips_to_anomaly"] == int(((candidate < 0) & (active >= 0)).sum())
    assert figures["flips_to_normal"] == int(((active < 0) & (candidate >= 0)).sum())
    assert figures["rank_correlation"] == pytest.approx(spearmanr(active, candidate).statistic)
    assert figures["rank_correlation_sample"] == 3000


def test_the_sample_keeps_the_latest_pairs() -> None:
    """The rank-correlation sample keeps the newest score pairs, while the record count goes on."""
    stats = ShadowStats("c", "a", sample_size=10)
    for start in range(0, 37, 6):
        values = np.arange(start, min(start + 6, 37), dtype=np.float64)
        stats.observe(values, -values)
    kept = pairs_from_payload(stats.to_payload())
    assert sorted(kept[:, 0].tolist()) == list(range(27, 37))
    np.testing.assert_array_equal(kept[:, 1], -kept[:, 0])
    assert stats.records == 37


def test_reports_from_several_workers_add_up_and_empty_is_none() -> None:
    """Several workers' shadow payloads add up; an empty report has no agreement or correlation."""
    one, two = ShadowStats("c", "a"), ShadowStats("c", "a")
    one.observe(np.array([-1.0, 1.0]), np.array([1.0, 1.0]))
    two.observe(np.array([1.0, 2.0, 3.0]), np.array([-1.0, 2.0, 3.0]))
    figures = report([one.to_payload(), two.to_payload()])
    assert figures["records"] == 5
    assert (figures["flips_to_normal"], figures["flips_to_anomaly"]) == (1, 1)
    assert figures["agreement"] == 0.6
    assert figures["rank_correlation_sample"] == 5
    empty = report([])
    assert empty["records"] == 0 and empty["agreement"] is None
    assert empty["rank_correlation"] is None


# --- observation files ------------------------------------------------------------------------


def test_observation_files_are_per_worker_and_stale_ones_step_aside(tmp_path: Path) -> None:
    """Observation files are per worker; stale ones step aside unless all are; unsafe names fail."""
    store = ObservationStore(tmp_path)
    store.write(DRIFT, ("20240115100000",), "w1", {"records": 1})
    store.write(DRIFT, ("20240115100000",), "w2", {"records": 2})
    found, stale = store.read(DRIFT, ("20240115100000",), ttl=60)
    assert sorted(p["records"] for p in found) == [1, 2] and not stale
    old = tmp_path / ".observations" / "drift" / "20240115100000" / "w1.json"
    payload = json.loads(old.read_text())
    old.write_text(json.dumps({**payload, "written_at": time.time() - 600}))
    found, stale = store.read(DRIFT, ("20240115100000",), ttl=60)
    assert [p["worker"] for p in found] == ["w2"] and not stale
    found, stale = store.read(DRIFT, ("20240115100000",), ttl=0)
    assert len(found) == 2 and stale  # none fresh: all of them, flagged
    assert store.read(SHADOW, ("nope", "x"), ttl=60) == ([], False)
    with pytest.raises(ValueError, match="not a safe file name"):
        store.write(DRIFT, ("../escape",), "w1", {})
    assert store.read(DRIFT, ("../escape",), ttl=60) == ([], False)


def test_sweep_removes_day_old_files_and_empty_folders(tmp_path: Path) -> None:
    """sweep deletes observation files older than a day and the folders they leave empty."""
    store = ObservationStore(tmp_path)
    store.write(SHADOW, ("c", "a"), "w1", {})
    store.write(SHADOW, ("c", "b"), "w1", {})
    old = tmp_path / ".observations" / "shadow" / "c" / "a" / "w1.json"
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    assert store.sweep() == 1
    assert store.subjects(SHADOW, "c") == ["b"]
