"""Evidence revision 2: what a vehicle in a new regime, a spike's aftermath and a zero reading
within a sensor's range no longer raise, and what a fault still does."""

from __future__ import annotations

import copy

import numpy as np
import numpy.typing as npt
import pytest

from shared.context import ContextForest, ContextState
from shared.context.kernel import MOTION, N_KINDS, SUSTAINED
from shared.context.params import ContextParams
from tests.unit.context.test_context_model import fleet

Matrix = npt.NDArray[np.float64]


def _raw(params: ContextParams, ids: list[str], times: Matrix, X: Matrix) -> Matrix:
    raw = np.zeros((X.shape[0], N_KINDS, X.shape[1]))
    ContextState(X.shape[1]).derive(params, ids, times, X, raw=raw)
    return raw


def _as_revision_one(params: ContextParams) -> ContextParams:
    old = copy.deepcopy(params)
    old.revision = 1
    return old


def _one_sensor(values: Matrix) -> tuple[list[str], Matrix, Matrix]:
    times = np.asarray(1_700_000_000.0 + 60.0 * np.arange(len(values)), dtype=np.float64)
    return ["M-1"] * len(values), times, values[:, None]


@pytest.fixture(scope="module")
def single() -> ContextForest:
    """A machine of one noisy sensor around 50."""
    rng = np.random.default_rng(1)
    ids, times, X = _one_sensor(50 + rng.normal(0, 1, 2000))
    return ContextForest(n_estimators=20, random_state=1).fit(ids, times, X)


def test_a_vehicle_settled_in_a_new_regime_raises_no_sustained_evidence(
    single: ContextForest,
) -> None:
    """Ten scales above what it learned, steady: revision 1 calls every record sustained,
    revision 2 only the first few, before its history has moved too."""
    rng = np.random.default_rng(2)
    ids, times, X = _one_sensor(60 + rng.normal(0, 1, 200))
    new = _raw(single.params_, ids, times, X)[20:, SUSTAINED, 0]
    old = _raw(_as_revision_one(single.params_), ids, times, X)[20:, SUSTAINED, 0]
    assert np.median(old) > 5
    assert np.median(new) < 1


def test_a_drift_still_raises_sustained_evidence(single: ContextForest) -> None:
    """A reading drifting away a scale every record deviates from its recent past too: its
    sustained evidence stands above the clean stretch's 99th percentile."""
    rng = np.random.default_rng(3)
    values = 50 + rng.normal(0, 1, 200)
    values[100:120] += 1.0 * np.arange(1, 21)
    ids, times, X = _one_sensor(values)
    new = _raw(single.params_, ids, times, X)[:, SUSTAINED, 0]
    assert np.median(new[110:120]) > 2 * np.quantile(new[20:100], 0.99)


def test_a_sensor_stepping_back_after_a_spike_moves_no_other() -> None:
    """The record after a spike on a: the quantised c repeats, as it may; revision 1 reads
    a's step back as motion c should have followed, revision 2 does not."""
    ids, times, X = fleet()
    model = ContextForest(n_estimators=20, random_state=3).fit(ids, times, X)
    ids, times, X = fleet(seed=5)
    vehicle = np.asarray([i for i, v in enumerate(ids) if v == "VH-1"])
    after = [k for k in range(100, 500, 12) if X[vehicle[k], 2] == X[vehicle[k - 1], 2]]
    spiked = X.copy()
    for k in after[:20]:
        spiked[vehicle[k - 1], 0] += 40.0
    rows = vehicle[np.asarray(after[:20])]
    new = _raw(model.params_, ids, times, spiked)[rows, MOTION, 2]
    old = _raw(_as_revision_one(model.params_), ids, times, spiked)[rows, MOTION, 2]
    typical = np.quantile(_raw(model.params_, ids, times, X)[:, MOTION, 2], 0.99)
    assert np.median(old) > 3 * typical
    assert np.median(new) < typical


def test_zero_is_a_dead_sensor_only_far_outside_the_sensors_range() -> None:
    """A sensor reading 2-9 that never read 0 repeats at 0 like any value; one reading 90-110
    that never read 0 is dead at 0 from its first repeat."""
    rng = np.random.default_rng(4)
    n = 1500
    near = np.round(5.5 + 3.5 * np.sin(np.arange(n) / 30) + rng.normal(0, 0.3, n), 1)
    far = 100 + 10 * np.sin(np.arange(n) / 50) + rng.normal(0, 1, n)
    X = np.column_stack([near, far])
    assert not (X == 0).any()
    model = ContextForest(n_estimators=20, random_state=4).fit(
        ["M-1"] * n, np.asarray(1_700_000_000.0 + np.arange(n), dtype=np.float64), X
    )
    params = model.params_
    assert params.qrun_zero[0] == params.qrun_other[0] > 1
    assert params.qrun_zero[1] == 1.0
