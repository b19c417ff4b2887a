"""The sorted windows the kernel takes its recent medians from: always each slot's readings,
sorted, whatever the records did (silences, a horizon, repeats, zeros of either sign, a
vehicle forgotten); and the medians they give are what a selection over the readings gives.

The bit-for-bit scores of models pickled by earlier releases (``test_context_compat``) were
recorded before the windows existed, so they check the medians too; these check the state.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from shared.context import ContextForest, ContextState, kernel
from shared.context.kernel import WINDOW

Matrix = npt.NDArray[np.float64]


def _records(seed: int, n: int, vehicles: int, sensors: int) -> tuple[list[str], Matrix, Matrix]:
    rng = np.random.default_rng(seed)
    ids = [f"VH-{int(v)}" for v in rng.integers(0, vehicles, n)]
    times = np.cumsum(rng.exponential(1.0, n))
    times[n // 2 :] += 10_000.0  # a silence that breaks every history
    X = np.round(
        np.cumsum(rng.normal(size=(n, sensors)), axis=0) * 0.2 + rng.normal(size=(n, sensors))
    )
    X[rng.random((n, sensors)) < 0.05] = 0.0
    X[rng.random((n, sensors)) < 0.02] = -0.0
    return ids, times, X


def _assert_sorted_windows(state: ContextState) -> None:
    for slot in state.slots.values():
        held = int(min(state.count[slot], WINDOW))
        for sensor in range(state.n_sensors):
            expected = np.sort(state.values[slot, :held, sensor])
            assert np.array_equal(state.sorted[slot, sensor, :held], expected), (slot, sensor)


@pytest.fixture(scope="module")
def model() -> ContextForest:
    ids, times, X = _records(0, 3_000, 6, 3)
    return ContextForest(n_estimators=20, random_state=0).fit(ids, times, X)


@pytest.mark.parametrize("horizon", [None, 40, 5_000])
def test_the_windows_hold_each_slots_readings_sorted(
    model: ContextForest, horizon: int | None
) -> None:
    """Derive and remember in turns, with a vehicle forgotten after each chunk."""
    ids, times, X = _records(1, 4_000, 6, 3)
    offsets = None if horizon is None else np.arange(X.shape[0], dtype=np.int64)
    params = model.params_
    if horizon is not None:
        params.horizon = horizon
    try:
        state = ContextState(3, capacity=1)  # grown as vehicles arrive
        for start in range(0, X.shape[0], 700):
            part = slice(start, start + 700)
            chunk = None if offsets is None else offsets[part]
            if (start // 700) % 2:
                state.remember(params, ids[part], times[part], X[part], chunk)
            else:
                state.derive(params, ids[part], times[part], X[part], chunk)
            _assert_sorted_windows(state)
            state.forget(ids[start : start + 1])
    finally:
        params.horizon = model.params_.horizon


@pytest.mark.parametrize("seed", range(20))
def test_the_window_medians_equal_the_selections(seed: int) -> None:
    """Of a window, of a window less its newest readings, and of those readings sorted."""
    # against what _median (the selection the kernel falls back to) gives over the readings
    rng = np.random.default_rng(seed)
    held = int(rng.integers(4, WINDOW + 1))
    values = np.round(rng.normal(size=held) * rng.choice([0.5, 3.0, 50.0]))
    values[rng.random(held) < 0.2] = -0.0
    window = np.sort(values)[None, None, :]
    assert kernel._middle(window[0, 0], held) == kernel._median(values.copy(), held)
    for few in range(1, held + 1):  # a sort up to SORT_FEW values, a selection beyond
        assert kernel._median(values[:few].copy(), few) == np.median(values[:few])
    newest = min(kernel.CHANGE_SPAN, held - 3)
    skip = np.sort(values[:newest])
    older = values[newest:].copy()
    assert kernel._median_without(window, 0, 0, held, skip, newest) == kernel._median(
        older, older.shape[0]
    )
    few = values[:newest].copy()
    kernel._sort_few(few, newest)
    assert np.array_equal(few, skip)


@pytest.mark.parametrize("seed", range(8))
def test_the_median_without_passes_over_any_skipped_values(seed: int) -> None:
    """Skipped values anywhere in the window (its lowest, its highest, runs of one value),
    of every count up to the change's span and windows of every size: the median of the rest
    is what a selection over the rest gives."""
    rng = np.random.default_rng(seed)
    for _ in range(500):
        held = int(rng.integers(4, WINDOW + 1))
        levels = int(rng.choice([2, 3, 6, 1_000]))  # few levels: long runs of equal values
        values = rng.integers(0, levels, size=held).astype(np.float64)
        window = np.sort(values)[None, None, :]
        for skipped in range(1, min(kernel.CHANGE_SPAN, held - 1) + 1):
            places = rng.choice(held, size=skipped, replace=False)
            skip = np.sort(values[places])
            rest = np.delete(values, places)
            expected = kernel._median(rest.copy(), rest.shape[0])
            got = kernel._median_without(window, 0, 0, held, skip, skipped)
            assert got == expected, (values.tolist(), skip.tolist())


@pytest.mark.parametrize("count", range(kernel.SORT_FEW + 1))
def test_the_sorting_network_sorts_every_input_of_its_sizes(count: int) -> None:
    """A network that sorts every input of 0s and 1s sorts every input (the 0-1 principle);
    the values past ``count`` stay as they were, and equal values only trade places."""
    rng = np.random.default_rng(count)
    inputs = [
        np.array([(bits >> k) & 1 for k in range(count)], dtype=np.float64)
        for bits in range(2**count)
    ]
    inputs += [np.round(rng.normal(size=count) * 3.0) for _ in range(200)]
    for values in inputs:
        values[values == 0.0] = np.where(rng.random(int((values == 0.0).sum())) < 0.5, 0.0, -0.0)
        padded = np.concatenate([values, np.full(kernel.SORT_FEW + 2 - count, 7.5)])
        kernel._sort_few(padded, count)
        assert np.array_equal(padded[:count], np.sort(values)), values
        assert (padded[count:] == 7.5).all()
        assert np.signbit(padded[:count]).sum() == np.signbit(values).sum()


def test_a_state_read_by_another_model_gives_that_models_own_evidence(
    model: ContextForest,
) -> None:
    """Each held reading's deviations are kept under the model that computed them; another
    model (a swap, a shadow candidate's copy) computes them again, so its evidence is the
    evidence of a state it had filled itself, to the bit, and so is the first model's after."""
    ids, times, X = _records(7, 900, 5, 3)
    other = ContextForest(n_estimators=20, random_state=1).fit(*_records(1, 3_000, 6, 3))
    shared_state, own, first = ContextState(3), ContextState(3), ContextState(3)
    cuts = [0, 300, 450, 700, 900]
    for turn, (a, b) in enumerate(itertools.pairwise(cuts)):
        reader = other if turn % 2 else model
        got, _ = shared_state.derive(reader.params_, ids[a:b], times[a:b], X[a:b])
        alone = own if reader is other else first
        # the same model over a state of its own, fed every record (the others unscored)
        for state, params in ((own, other.params_), (first, model.params_)):
            if state is alone:
                expected, _ = state.derive(params, ids[a:b], times[a:b], X[a:b])
            else:
                state.remember(params, ids[a:b], times[a:b], X[a:b])
        np.testing.assert_array_equal(got, expected)
    copied = shared_state.copy()
    twin, _ = copied.derive(other.params_, ids[:50], times[:50] + 1e-3 + times[-1], X[:50])
    again, _ = shared_state.derive(other.params_, ids[:50], times[:50] + 1e-3 + times[-1], X[:50])
    np.testing.assert_array_equal(twin, again)
