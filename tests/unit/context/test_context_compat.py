"""Context versions trained with earlier evidence revisions score exactly as they did.

``data/context-revision-1.joblib`` is a context model pickled by the release before
revisions existed (revision 1); ``data/context-revision-1-scores.npy`` holds the scores that
release gave on ``fleet(vehicles=2, per_vehicle=120, seed=6)`` with sensor 0 stuck on rows
130-139. ``data/context-revision-2.joblib`` was pickled by the release of revision 2, and
``data/context-revision-2-scores.npy`` holds its scores on ``fleet(vehicles=2,
per_vehicle=240, seed=6)`` with sensor 0 stuck on rows 130-139 and the quantised sensor 2
stuck on rows 150-399 (longer than the window), without offsets and then with offsets 300
apart. ``data/context-revision-3.joblib`` was pickled by the release of revision 3 (trained on
``fleet(vehicles=2, per_vehicle=240, seed=5)``), and ``data/context-revision-3-scores.npy``
holds its scores on the revision-2 records with, besides, sensor 1 ten times its largest
reading below it on rows 200-204 (where revision 4's level differs), both ways.
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np

from shared.context import ContextForest
from shared.context.kernel import REVISION
from tests.unit.context.test_context_model import fleet

DATA = Path(__file__).parent / "data"


def test_a_model_of_revision_one_scores_to_the_bit_as_before() -> None:
    """A version already in a registry keeps its evidence and its scores, bit for bit."""
    model = joblib.load(DATA / "context-revision-1.joblib")
    assert isinstance(model, ContextForest)
    assert "revision" not in model.params_.__dict__  # pickled before the attribute existed
    assert model.params_.revision == 1
    ids, times, X = fleet(vehicles=2, per_vehicle=120, seed=6)
    X[130:140, 0] = X[129, 0]
    expected = np.load(DATA / "context-revision-1-scores.npy")
    assert np.array_equal(model.score_records(ids, times, X), expected)
    assert model.summary()["evidence_revision"] == 1


def test_a_model_of_revision_two_scores_to_the_bit_as_before() -> None:
    """A revision-2 version keeps its windowed runs of repeats, streamed or not, bit for bit."""
    model = joblib.load(DATA / "context-revision-2.joblib")
    assert model.params_.revision == 2
    ids, times, X = fleet(vehicles=2, per_vehicle=240, seed=6)
    X[130:140, 0] = X[129, 0]
    X[150:400, 2] = X[149, 2]
    expected = np.load(DATA / "context-revision-2-scores.npy")
    offsets = np.arange(len(ids), dtype=np.int64) * 300
    assert np.array_equal(model.score_records(ids, times, X), expected[0])
    assert np.array_equal(model.score_records(ids, times, X, offsets=offsets), expected[1])


def test_a_model_of_revision_three_scores_to_the_bit_as_before() -> None:
    """A revision-3 version keeps one normalisation for both tails of the level, bit for bit."""
    model = joblib.load(DATA / "context-revision-3.joblib")
    assert model.params_.revision == 3
    assert model.params_.q50.shape == model.params_.den.shape == (7, 3)
    ids, times, X = fleet(vehicles=2, per_vehicle=240, seed=6)
    X[130:140, 0] = X[129, 0]
    X[150:400, 2] = X[149, 2]
    X[200:205, 1] -= 10 * np.abs(X[:, 1]).max()
    expected = np.load(DATA / "context-revision-3-scores.npy")
    offsets = np.arange(len(ids), dtype=np.int64) * 300
    assert np.array_equal(model.score_records(ids, times, X), expected[0])
    assert np.array_equal(model.score_records(ids, times, X, offsets=offsets), expected[1])


def test_a_new_model_has_the_current_revision_and_fits_steps_on_steps() -> None:
    """A model trained now records revision 4 and predicts a step from steps, not levels."""
    ids, times, X = fleet(vehicles=2, per_vehicle=300)
    model = ContextForest(n_estimators=20, max_samples=256, random_state=3).fit(ids, times, X)
    assert model.params_.revision == REVISION == 4
    assert model.summary()["evidence_revision"] == 4
    assert model.params_.q50.shape == model.params_.den.shape == (8, X.shape[1])
    width = X.shape[1]
    assert not model.params_.mcoef[:, width:].any()  # no level weights
    assert model.params_.mcoef[:, :width].any()
