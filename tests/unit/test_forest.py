"""CompiledForest gives scikit-learn's decision_function exactly, on every path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_wine
from sklearn.ensemble import IsolationForest

from shared.forest import CompiledForest

ENGINES = ["numba", "walk", "apply"]


def fit(data: np.ndarray, **params: object) -> IsolationForest:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # max_samples > n_samples is clipped
        return IsolationForest(**params).fit(data)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "params",
    [
        {"n_estimators": 100},
        {"n_estimators": 50, "max_features": 0.5},
        {"n_estimators": 30, "max_features": 2},
        {"n_estimators": 40, "max_samples": 0.3},
        {"n_estimators": 40, "max_samples": 17, "contamination": 0.1},
        {"n_estimators": 10, "max_samples": 2},
        {"n_estimators": 25, "bootstrap": True},
    ],
)
def test_random_data_is_bit_exact(engine: str, params: dict[str, object]) -> None:
    """On random data, every engine equals scikit-learn to the last bit."""
    rng = np.random.default_rng(0)
    model = fit(rng.normal(size=(600, 8)), random_state=3, **params)
    probe = np.vstack([rng.normal(size=(300, 8)), rng.normal(0, 6, size=(37, 8))])
    forest = CompiledForest.from_sklearn(model)
    np.testing.assert_array_equal(
        forest.decision_function(probe, engine=engine), model.decision_function(probe)
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_real_data_is_bit_exact(engine: str) -> None:
    """On a real data set (wine, 13 features, heavy ties), every engine equals scikit-learn."""
    data = load_wine().data
    model = fit(data, n_estimators=100, random_state=0)
    forest = CompiledForest.from_sklearn(model)
    np.testing.assert_array_equal(
        forest.decision_function(data, engine=engine), model.decision_function(data)
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicate_rows_make_leaves_with_several_samples(engine: str) -> None:
    """Leaves holding several identical samples add c(n) exactly as scikit-learn does."""
    rng = np.random.default_rng(1)
    data = np.repeat(rng.integers(0, 3, size=(40, 3)).astype(float), 8, axis=0)
    model = fit(data, n_estimators=60, random_state=2)
    assert (
        np.concatenate(
            [t.tree_.n_node_samples[t.tree_.children_left == -1] for t in model.estimators_]
        )
        > 1
    ).any()
    forest = CompiledForest.from_sklearn(model)
    probe = np.vstack([data, rng.normal(1, 2, size=(50, 3))])
    np.testing.assert_array_equal(
        forest.decision_function(probe, engine=engine), model.decision_function(probe)
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_single_record_model_scores_zero_like_sklearn(engine: str) -> None:
    """A forest trained on one record (depth-0 trees) matches scikit-learn's constant 0."""
    model = fit(np.array([[0.5, 0.3, 0.8, 1.2]]), random_state=0)
    forest = CompiledForest.from_sklearn(model)
    probe = np.random.default_rng(2).normal(size=(5, 4))
    np.testing.assert_array_equal(
        forest.decision_function(probe, engine=engine), model.decision_function(probe)
    )


def test_float32_boundaries_are_compared_like_sklearn() -> None:
    """Values that differ only below float32 precision fall on the same side as in scikit-learn."""
    rng = np.random.default_rng(4)
    data = rng.normal(size=(300, 2))
    model = fit(data, n_estimators=20, random_state=1)
    thresholds = np.concatenate(
        [t.tree_.threshold[t.tree_.children_left != -1] for t in model.estimators_]
    )
    t = thresholds[:200]
    near = np.concatenate(
        [t - 1e-9, t + 1e-9, t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf)]
    )
    probe = np.column_stack([near, near[::-1]])
    forest = CompiledForest.from_sklearn(model)
    for engine in ENGINES:
        np.testing.assert_array_equal(
            forest.decision_function(probe, engine=engine), model.decision_function(probe)
        )


def test_wrong_width_is_refused() -> None:
    """A matrix with another column count is a ValueError, not a silent misread."""
    forest = CompiledForest.from_sklearn(fit(np.ones((10, 3)), n_estimators=3))
    with pytest.raises(ValueError, match="3 columns"):
        forest.decision_function(np.ones((2, 4)))


def test_default_engine_is_compiled_when_numba_is_present() -> None:
    """With numba installed the compiled kernel is the default path."""
    forest = CompiledForest.from_sklearn(
        fit(np.random.default_rng(0).normal(size=(50, 2)), n_estimators=3)
    )
    assert forest.compiled


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_features=st.integers(1, 12),
    n_samples=st.integers(1, 300),
    n_estimators=st.integers(1, 30),
    max_features=st.floats(0.1, 1.0),
    max_samples=st.one_of(st.just("auto"), st.floats(0.05, 1.0), st.integers(1, 300)),
    seed=st.integers(0, 2**16),
    scale=st.sampled_from([1e-3, 1.0, 1e6]),
    n_probe=st.integers(1, 70),
)
def test_property_any_forest_any_input(
    n_features: int,
    n_samples: int,
    n_estimators: int,
    max_features: float,
    max_samples: str | float | int,
    seed: int,
    scale: float,
    n_probe: int,
) -> None:
    """For random forests and random inputs, every engine equals scikit-learn bit for bit."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0, scale, size=(n_samples, n_features))
    if rng.random() < 0.3:
        data = np.round(data)  # ties and duplicate rows
    try:
        model = fit(
            data,
            n_estimators=n_estimators,
            max_features=max_features,
            max_samples=max_samples,
            random_state=seed,
        )
    except ValueError:  # scikit-learn refuses some tiny subsamples; nothing to compare then
        assume(False)
    forest = CompiledForest.from_sklearn(model)
    probe = rng.normal(0, scale * 2, size=(n_probe, n_features))
    expected = model.decision_function(probe)
    for engine in ENGINES:
        np.testing.assert_array_equal(forest.decision_function(probe, engine=engine), expected)


def test_rows_scored_one_at_a_time_equal_the_batch() -> None:
    """A record alone (the trees walked four at a time) scores as it does in a batch of four
    and as in scikit-learn, for a tree count that four does not divide."""
    rng = np.random.default_rng(5)
    model = fit(rng.normal(size=(400, 6)), n_estimators=23, random_state=4)
    forest = CompiledForest.from_sklearn(model)
    probe = np.vstack([rng.normal(size=(9, 6)), rng.normal(0, 5, size=(3, 6))])
    expected = model.decision_function(probe)
    alone = np.concatenate([forest.decision_function(probe[i : i + 1]) for i in range(12)])
    np.testing.assert_array_equal(alone, expected)
    np.testing.assert_array_equal(forest.decision_function(probe[:8]), expected[:8])
    np.testing.assert_array_equal(forest.decision_function(probe[:11]), expected[:11])
