"""Evidence revision 6: consistency's swing, a sensor thrown to both sides of its prediction.

A loose connector's readings fall above and below what the other sensors predict, and some of
them close to it. Revision 5 judged each reading's deviation alone, so those quiet readings
amid the noise looked clean. Revision 6 also takes the swing: the smaller of the largest
deviation above and the largest below over the last eight records, no more than the larger of
the last two. A spike, a drift, a stuck or a dead sensor deviate to one side only, and the
swing ends a record after the noise does.
"""

from __future__ import annotations

import copy

import numpy as np
import numpy.typing as npt
import pytest

from shared.context import ContextForest, ContextState
from shared.context.kernel import CONSISTENCY, N_KINDS
from shared.context.params import ContextParams
from tests.unit.context.test_context_model import fleet

Matrix = npt.NDArray[np.float64]
B = 1  # the sensor that follows a (b = 2a + noise of 0.5)
NOISE_AT = slice(300, 320)  # VH-0's records with a loose connector on b
SPIKE_AT = 360
OFFSET_AT = slice(400, 420)


@pytest.fixture(scope="module")
def model() -> ContextForest:
    ids, times, X = fleet(vehicles=2, per_vehicle=600)
    return ContextForest(n_estimators=50, random_state=3).fit(ids, times, X)


def _vehicle_zero() -> tuple[list[str], Matrix, Matrix]:
    ids, times, X = fleet(vehicles=1, per_vehicle=600, seed=7)
    return ids, times, X


def _consistency(params: ContextParams, X: Matrix) -> Matrix:
    ids, times, _ = _vehicle_zero()
    raw = np.zeros((X.shape[0], N_KINDS, X.shape[1]))
    ContextState(X.shape[1]).derive(params, ids, times, X, raw=raw)
    return raw[:, CONSISTENCY, B]


def _revision_five(params: ContextParams) -> ContextParams:
    old = copy.deepcopy(params)
    old.revision = 5
    return old


def _faulty() -> Matrix:
    _, _, X = _vehicle_zero()
    X = X.copy()
    X[NOISE_AT, B] += np.random.default_rng(4).normal(0, 3.0, 20)
    X[SPIKE_AT, B] += 30.0
    X[OFFSET_AT, B] += 8.0
    return X


def _clean_ceiling(params: ContextParams) -> float:
    """The largest consistency evidence of b on the clean records before any fault."""
    _, _, X = _vehicle_zero()
    return float(_consistency(params, X)[20:300].max())


def test_the_quiet_readings_amid_a_loose_connectors_noise_count(model: ContextForest) -> None:
    """Inside the noise the swing lifts what each reading shows alone: the burst's median
    consistency evidence is several times revision 5's, and its quietest readings stand
    above every clean one."""
    params = model.params_
    assert params.revision == 6
    X = _faulty()
    new = _consistency(params, X)[302:320]
    old = _consistency(_revision_five(params), X)[302:320]
    assert np.median(new) > 2 * np.median(old)
    ceiling = _clean_ceiling(params)
    quiet = old < ceiling  # readings that alone look clean
    assert quiet.sum() >= 3
    assert (new[quiet] > ceiling).mean() >= 0.75


def test_one_sided_faults_raise_no_swing(model: ContextForest) -> None:
    """After a spike, and while a sensor holds an offset (a drift, a stuck or a dead one
    deviate to one side), revision 6 adds nothing above what clean records reach."""
    params = model.params_
    X = _faulty()
    new = _consistency(params, X)
    old = _consistency(_revision_five(params), X)
    ceiling = _clean_ceiling(params)
    after_spike = slice(SPIKE_AT + 1, SPIKE_AT + 9)
    assert (new[after_spike] <= np.maximum(old[after_spike], ceiling)).all()
    assert (new[OFFSET_AT] <= np.maximum(old[OFFSET_AT], ceiling)).all()


def test_the_swing_ends_a_record_after_the_noise(model: ContextForest) -> None:
    """Record 320 is the first clean one after the noise: from 321 on the swing is back
    within what clean records reach (the larger of the last two deviations caps it)."""
    params = model.params_
    X = _faulty()
    new = _consistency(params, X)
    old = _consistency(_revision_five(params), X)
    ceiling = _clean_ceiling(params)
    assert (new[321:330] <= np.maximum(old[321:330], ceiling)).all()
