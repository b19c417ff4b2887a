"""Context models: evidence from a vehicle's history, the same however the stream is cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from shared.context import ContextForest, ContextState
from shared.detector import load_detector
from shared.registry import ModelRegistry
from shared.verdicts import score_context_rows

Matrix = npt.NDArray[np.float64]


def fleet(
    vehicles: int = 4, per_vehicle: int = 600, seed: int = 0
) -> tuple[list[str], Matrix, Matrix]:
    """Correlated readings (b follows a; c is quantised) of a few vehicles, interleaved in time."""
    rng = np.random.default_rng(seed)
    ids, times, rows = [], [], []
    for step in range(per_vehicle):
        for v in range(vehicles):
            a = 50 + 10 * np.sin(step / 40 + v) + rng.normal(0, 1)
            b = 2 * a + 5 * v + rng.normal(0, 0.5)
            c = float(np.round(20 + a / 10))
            ids.append(f"VH-{v}")
            times.append(1_700_000_000.0 + 10 * step + v)
            rows.append([a, b, c])
    return ids, np.asarray(times), np.asarray(rows)


@pytest.fixture(scope="module")
def model() -> ContextForest:
    """A context model fitted on the clean fleet."""
    ids, times, X = fleet()
    return ContextForest(n_estimators=50, random_state=3).fit(ids, times, X)


def test_scores_do_not_depend_on_how_the_stream_is_cut(model: ContextForest) -> None:
    """One pass over the records equals many batches through one state, to the last bit."""
    ids, times, X = fleet(seed=1)
    whole = model.score_records(ids, times, X)
    state = ContextState(3)
    parts = [
        model.score_records(ids[a:b], times[a:b], X[a:b], state=state)
        for a, b in [(0, 7), (7, 500), (500, 501), (501, len(ids))]
    ]
    assert np.array_equal(whole, np.concatenate(parts))


def test_a_rebuilt_state_gives_the_same_scores_as_one_that_never_stopped(
    model: ContextForest,
) -> None:
    """Re-reading the last ``horizon`` offsets rebuilds exactly the history of a straight run."""
    ids, times, X = fleet(seed=2)
    model.params_.horizon = 40
    try:
        offsets = np.arange(len(ids), dtype=np.int64)
        straight = model.score_records(ids, times, X, offsets=offsets)
        cut = 1_000
        rebuilt = ContextState(3)
        start = cut - model.params_.horizon
        model.evidence(ids[start:cut], times[start:cut], X[start:cut], rebuilt, offsets[start:cut])
        after = model.score_records(ids[cut:], times[cut:], X[cut:], rebuilt, offsets[cut:])
        assert np.array_equal(straight[cut:], after)
    finally:
        model.params_.horizon = 50_000


def test_remembering_unscored_records_leaves_the_history_that_scoring_them_leaves(
    model: ContextForest,
) -> None:
    """The rebuild's history-only pass (gaps and horizon included) equals scoring every record."""
    ids, times, X = fleet(seed=4)
    times = times.copy()
    times[1_200:] += 10 * model.params_.gap_seconds  # a silence: every history starts again
    model.params_.horizon = 40
    try:
        offsets = np.arange(len(ids), dtype=np.int64)
        scored, remembered = ContextState(3), ContextState(3)
        model.evidence(ids, times, X, scored, offsets)
        remembered.remember(model.params_, ids[:900], times[:900], X[:900], offsets[:900])
        remembered.remember(model.params_, ids[900:], times[900:], X[900:], offsets[900:])
        for name in ("values", "times", "offsets", "count"):
            assert np.array_equal(getattr(scored, name), getattr(remembered, name)), name
        assert scored.slots == remembered.slots
    finally:
        model.params_.horizon = 50_000


def test_held_out_records_are_flagged_at_the_chosen_rate() -> None:
    """The threshold comes from held-out training records: they are flagged at about the rate."""
    ids, times, X = fleet(vehicles=6, per_vehicle=2_000, seed=4)
    fitted = ContextForest(n_estimators=50, false_alarm_rate=0.01, random_state=1).fit(
        ids, times, X
    )
    assert fitted.calibration_["from_held_out"]
    assert fitted.calibration_["held_out_flagged"] == pytest.approx(0.01, abs=0.002)


def _flagged(model: ContextForest, X: Matrix, rows: slice) -> float:
    ids, times, _ = fleet(seed=5)
    scores = model.score_records(ids, times, X)
    flags: float = float((scores[rows] < 0).mean())
    return flags


def test_spike_stuck_and_dropout_are_flagged(model: ContextForest) -> None:
    """A spike, a stuck sensor and a dead one reading 0 are anomalous; clean records are not."""
    ids, _, clean = fleet(seed=5)
    assert _flagged(model, clean, slice(400, 2400)) < 0.02
    vehicle = [i for i, v in enumerate(ids) if v == "VH-1"]
    spiked = clean.copy()
    spiked[vehicle[300], 1] += 80
    assert _flagged(model, spiked, slice(vehicle[300], vehicle[300] + 1)) == 1.0
    stuck = clean.copy()
    stuck[vehicle[300:312], 0] = stuck[vehicle[299], 0]
    assert _flagged(model, stuck, np.asarray(vehicle[302:312])) >= 0.9  # type: ignore[arg-type]  # fancy index
    dead = clean.copy()
    dead[vehicle[300:310], 1] = 0.0
    assert _flagged(model, dead, np.asarray(vehicle[300:310])) == 1.0  # type: ignore[arg-type]  # fancy index


def test_a_quantised_sensor_repeating_as_usual_is_not_flat(model: ContextForest) -> None:
    """The quantised sensor repeats for long runs in training: such runs raise no flat evidence."""
    assert model.params_.qrun_other[2] > 3
    assert model.params_.qrun_other[0] == 1.0


def test_a_published_context_version_loads_and_scores_like_the_estimator(
    tmp_path: Path, model: ContextForest
) -> None:
    """The shared loader serves a context version; its verdicts' scores equal the offline call."""
    registry = ModelRegistry(tmp_path)
    meta = registry.publish(model, n_features=3, record_count=2400, params={})
    detector = load_detector(registry, meta.version)
    assert detector.kind == "context" and detector.compiled
    ids, times, X = fleet(seed=6)
    scored = score_context_rows(detector, detector.new_state(), ids, times, X, top_k=2)
    assert np.array_equal(scored.scores, model.score_records(ids, times, X))
    for row, entries in scored.attributions.items():
        assert scored.flags[row] and entries and entries[0]["evidence"]
