"""Evidence revision 3: a run of repeats is counted over the whole history, within the horizon,
so a quantised sensor that repeats for long runs normally can still be seen stuck."""

from __future__ import annotations

import copy

import numpy as np
import numpy.typing as npt
import pytest

from shared.context import ContextForest, ContextState
from shared.context.kernel import FLAT, N_KINDS, WINDOW
from shared.context.params import ContextParams
from tests.unit.context.test_context_model import fleet

Matrix = npt.NDArray[np.float64]
QUANTISED = 2  # fleet()'s sensor c, rounded: it repeats for long runs in training


@pytest.fixture(scope="module")
def model() -> ContextForest:
    """A context model fitted on the clean fleet."""
    ids, times, X = fleet()
    return ContextForest(n_estimators=50, random_state=3).fit(ids, times, X)


def _stuck(rows: int) -> tuple[list[str], Matrix, Matrix, list[int]]:
    """The fleet with vehicle VH-1's quantised sensor stuck for ``rows`` of its records."""
    ids, times, X = fleet(seed=5)
    vehicle = [i for i, v in enumerate(ids) if v == "VH-1"]
    stuck = vehicle[200 : 200 + rows]
    X[stuck, QUANTISED] = X[vehicle[199], QUANTISED]
    return ids, times, X, stuck


def _flat(params: ContextParams, ids: list[str], times: Matrix, X: Matrix) -> Matrix:
    raw = np.zeros((X.shape[0], N_KINDS, X.shape[1]))
    ContextState(X.shape[1]).derive(params, ids, times, X, raw=raw)
    flat: Matrix = raw[:, FLAT, QUANTISED]
    return flat


def _run_lengths(values: Matrix) -> npt.NDArray[np.int64]:
    runs = np.ones(len(values), dtype=np.int64)
    for k in range(1, len(values)):
        runs[k] = runs[k - 1] + 1 if values[k] == values[k - 1] else 1
    return runs


def _expected(run: npt.NDArray[np.int64], longest: float) -> Matrix:
    """Revision 3's flat: the window's run, then whatever outlasts the longest normal run."""
    seen = np.minimum(run, WINDOW + 1)
    flat: Matrix = (seen - 1 + np.maximum(0, run - np.maximum(longest, seen))) / longest
    return flat


def test_a_stuck_quantised_sensor_outgrows_its_longest_normal_run(model: ContextForest) -> None:
    """Its longest normal run is longer than the window: revision 2 could never see it stuck,
    revision 3 counts the run past the window and flags it once it outlasts the longest."""
    longest = float(model.params_.qrun_other[QUANTISED])
    assert longest > WINDOW + 1
    ids, times, X, stuck = _stuck(300)
    vehicle = [i for i, v in enumerate(ids) if v == "VH-1"]
    run = _run_lengths(X[vehicle, QUANTISED])[[vehicle.index(i) for i in stuck]]
    new = _flat(model.params_, ids, times, X)[stuck]
    old_params = copy.deepcopy(model.params_)
    old_params.revision = 2
    old = _flat(old_params, ids, times, X)[stuck]
    assert old.max() <= WINDOW / longest  # capped by the window
    assert new == pytest.approx(_expected(run, longest))
    assert new[-1] > 200 / longest
    flags = model.score_records(ids, times, X)[stuck] < 0
    outlasted = run >= 2 * longest
    assert flags[outlasted].mean() >= 0.9
    assert flags[-50:].all()
    assert not flags[run <= longest].any()


def test_a_streamed_run_counts_no_more_readings_than_lie_within_the_horizon(
    model: ContextForest,
) -> None:
    """With offsets, the run is bounded by the vehicle's readings in the last horizon offsets."""
    ids, times, X, stuck = _stuck(300)
    params = copy.deepcopy(model.params_)
    params.horizon = 600  # four vehicles interleaved: 150 of VH-1's readings
    offsets = np.arange(len(ids), dtype=np.int64)
    raw = np.zeros((X.shape[0], N_KINDS, X.shape[1]))
    ContextState(3).derive(params, ids, times, X, offsets, raw=raw)
    streamed = raw[stuck, FLAT, QUANTISED]
    longest = float(params.qrun_other[QUANTISED])
    # 150 within 600 offsets, and itself
    assert streamed.max() == pytest.approx(_expected(np.array([151]), longest)[0])
    assert streamed[-1] == streamed.max()


def test_a_rebuilt_state_counts_the_same_runs_as_one_that_never_stopped(
    model: ContextForest,
) -> None:
    """A run longer than the horizon: re-reading the last horizon offsets, history only, gives
    the evidence of a straight run to the bit, during the run and after it."""
    ids, times, X, stuck = _stuck(300)
    params = copy.deepcopy(model.params_)
    params.horizon = 120
    offsets = np.arange(len(ids), dtype=np.int64) * 2  # offsets need not be consecutive
    straight, _ = ContextState(3).derive(params, ids, times, X, offsets)
    for cut in (stuck[150], stuck[-1] + 3):
        rebuilt = ContextState(3)
        start = int(np.searchsorted(offsets, offsets[cut] - params.horizon))
        rebuilt.remember(params, ids[start:cut], times[start:cut], X[start:cut], offsets[start:cut])
        after, _ = rebuilt.derive(params, ids[cut:], times[cut:], X[cut:], offsets[cut:])
        assert np.array_equal(straight[cut:], after)


def test_remembering_keeps_the_runs_and_the_horizon_queue_that_scoring_keeps(
    model: ContextForest,
) -> None:
    """History-only and scored passes leave equal runs, per-vehicle counts and queues."""
    ids, times, X, _ = _stuck(300)
    params = copy.deepcopy(model.params_)
    params.horizon = 60
    offsets = np.arange(len(ids), dtype=np.int64)
    scored, remembered = ContextState(3), ContextState(3)
    scored.derive(params, ids, times, X, offsets)
    remembered.remember(params, ids[:700], times[:700], X[:700], offsets[:700])
    remembered.remember(params, ids[700:], times[700:], X[700:], offsets[700:])
    for name in ("runs", "in_horizon", "fifo", "fifo_pos"):
        assert np.array_equal(getattr(scored, name), getattr(remembered, name)), name
    held = int(scored.fifo_pos[1])
    assert held == params.horizon + 1
    assert scored.in_horizon.sum() == held


def test_the_horizon_queue_grows_in_order() -> None:
    """A larger horizon keeps the queued offsets oldest first."""
    state = ContextState(1)
    state.fifo = np.array([[7, 0], [5, 0], [6, 0]], dtype=np.int64)
    state.fifo_pos[:] = (1, 3)
    state._queue_for(5)
    assert state.fifo.shape == (6, 2)
    assert state.fifo[:3, 0].tolist() == [5, 6, 7]
    assert state.fifo_pos.tolist() == [0, 3]


def test_a_state_made_for_one_vehicle_grows_and_derives_what_a_large_one_does(
    model: ContextForest,
) -> None:
    """Capacity is only a starting size: four vehicles through a state for one give the same
    evidence, runs and queue, to the bit, as through the default state."""
    ids, times, X, _ = _stuck(300)
    offsets = np.arange(len(ids), dtype=np.int64)
    small, large = ContextState(3, capacity=1), ContextState(3)
    got, _ = small.derive(model.params_, ids, times, X, offsets)
    expected, _ = large.derive(model.params_, ids, times, X, offsets)
    assert np.array_equal(got, expected)
    assert small.runs.shape[0] >= 4 and small.in_horizon.shape[0] >= 4
    assert np.array_equal(small.runs[:4], large.runs[:4])
    assert np.array_equal(small.in_horizon[:4], large.in_horizon[:4])
