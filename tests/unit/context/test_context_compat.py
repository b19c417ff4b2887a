"""Context versions trained before evidence revision 2 score exactly as they did.

``data/context-revision-1.joblib`` is a context model pickled by the release before
revisions existed (revision 1); ``data/context-revision-1-scores.npy`` holds the scores that
release gave on ``fleet(vehicles=2, per_vehicle=120, seed=6)`` with sensor 0 stuck on rows
130-139.
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


def test_a_new_model_has_the_current_revision_and_fits_steps_on_steps() -> None:
    """A model trained now records revision 2 and predicts a step from steps, not levels."""
    ids, times, X = fleet(vehicles=2, per_vehicle=300)
    model = ContextForest(n_estimators=20, max_samples=256, random_state=3).fit(ids, times, X)
    assert model.params_.revision == REVISION == 2
    assert model.summary()["evidence_revision"] == 2
    width = X.shape[1]
    assert not model.params_.mcoef[:, width:].any()  # no level weights
    assert model.params_.mcoef[:, :width].any()
