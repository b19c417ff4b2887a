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
``data/context-revision-4.joblib`` was pickled by the release of revision 4 (trained on
``fleet(vehicles=2, per_vehicle=240, seed=5)``, 20 trees of 256 samples), and its
``-scores.npy`` and ``-evidence.npy`` hold what that release gave on the revision-3 records
with, besides, Gaussian noise of 3 (``default_rng(8)``) added to sensor 0 on rows 300-339
(where revision 5's noise differs), both ways. ``data/context-revision-5*`` were written
the same way by the release of revision 5 before its kernel's arithmetic was reordered
(the window's median less the newest readings found by skipping, the noise's steps divided
once their middles are known): the same evidence to the bit is what those changes promise.
``data/context-revision-6*`` were written the same way by the release of revision 6
(consistency's swing, which the noise burst on rows 300-339 reaches).

The evidence (the forest's input) must equal, to the bit, ``data/context-revision-N-evidence.npy``
(written by the release of revision 4 from the same records, when these scores held to the
bit): the kernel is plain arithmetic, the same on every machine. The scores then come from
scikit-learn's forest, whose last step, ``2 ** -(depth / c)``, is NumPy's power: on a machine
whose NumPy dispatches it to other SIMD routines (AVX-512 or not) it may differ in the last
bit, so there they must agree within two machine epsilons and give the same verdicts. On one
machine every score is exact (the worker's, ``POST /score``'s and the offline call's alike).
"""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import numpy.typing as npt

from shared.context import ContextForest
from shared.context.kernel import REVISION
from tests.unit.context.test_context_model import fleet

DATA = Path(__file__).parent / "data"
# scikit-learn's last step, NumPy's power, may differ in the last bit between machines
SCORE_TOLERANCE = 2 * np.finfo(np.float64).eps


def _as_before(
    model: ContextForest,
    ids: list[str],
    times: npt.NDArray[np.float64],
    X: npt.NDArray[np.float64],
    evidence: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    offsets: npt.NDArray[np.int64] | None = None,
) -> None:
    """The same evidence to the bit; the same verdicts, and the same scores up to NumPy's power."""
    derived, _ = model.evidence(ids, times, X, offsets=offsets)
    assert np.array_equal(derived, evidence)
    got = model.score_records(ids, times, X, offsets=offsets)
    assert np.array_equal(got < 0, scores < 0)
    assert float(np.abs(got - scores).max()) <= SCORE_TOLERANCE


def test_a_model_of_revision_one_scores_to_the_bit_as_before() -> None:
    """A version already in a registry keeps its evidence and its scores, bit for bit."""
    model = joblib.load(DATA / "context-revision-1.joblib")
    assert isinstance(model, ContextForest)
    assert "revision" not in model.params_.__dict__  # pickled before the attribute existed
    assert model.params_.revision == 1
    ids, times, X = fleet(vehicles=2, per_vehicle=120, seed=6)
    X[130:140, 0] = X[129, 0]
    expected = np.load(DATA / "context-revision-1-scores.npy")
    evidence = np.load(DATA / "context-revision-1-evidence.npy")
    _as_before(model, ids, times, X, evidence, expected)
    assert model.summary()["evidence_revision"] == 1


def _both_ways_as_recorded(
    model: ContextForest,
    revision: int,
    ids: list[str],
    times: npt.NDArray[np.float64],
    X: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Without offsets and with offsets 300 apart, what that revision's release recorded; its
    evidence without offsets is returned."""
    expected = np.load(DATA / f"context-revision-{revision}-scores.npy")
    evidence = np.load(DATA / f"context-revision-{revision}-evidence.npy")
    offsets = np.arange(len(ids), dtype=np.int64) * 300
    _as_before(model, ids, times, X, evidence[0], expected[0])
    _as_before(model, ids, times, X, evidence[1], expected[1], offsets)
    return np.asarray(evidence[0], dtype=np.float64)


def _records(
    revision: int,
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The records a revision's release was recorded on: revision 2's stuck sensors; from
    revision 3 also sensor 1 far below its floor (where revision 4 differs), and from
    revision 4 (revision 5's and 6's too) a noise burst on sensor 0 (where revision 5 and
    revision 6 differ)."""
    ids, times, X = fleet(vehicles=2, per_vehicle=240, seed=6)
    X[130:140, 0] = X[129, 0]
    X[150:400, 2] = X[149, 2]
    if revision >= 3:
        X[200:205, 1] -= 10 * np.abs(X[:, 1]).max()
    if revision >= 4:
        X[300:340, 0] += np.random.default_rng(8).normal(0, 3.0, 40)
    return ids, times, X


def test_a_model_of_revision_two_scores_to_the_bit_as_before() -> None:
    """A revision-2 version keeps its windowed runs of repeats, streamed or not, bit for bit."""
    model = joblib.load(DATA / "context-revision-2.joblib")
    assert model.params_.revision == 2
    ids, times, X = _records(2)
    _both_ways_as_recorded(model, 2, ids, times, X)


def test_a_model_of_revision_three_scores_to_the_bit_as_before() -> None:
    """A revision-3 version keeps one normalisation for both tails of the level, bit for bit."""
    model = joblib.load(DATA / "context-revision-3.joblib")
    assert model.params_.revision == 3
    assert model.params_.q50.shape == model.params_.den.shape == (7, 3)
    ids, times, X = _records(3)
    _both_ways_as_recorded(model, 3, ids, times, X)


def test_a_model_of_revision_four_scores_to_the_bit_as_before() -> None:
    """A revision-4 version keeps its noise measure in the level's scale, bit for bit."""
    model = joblib.load(DATA / "context-revision-4.joblib")
    assert model.params_.revision == 4
    assert np.array_equal(model.params_.nscale, np.ones(3))
    ids, times, X = _records(4)
    evidence = _both_ways_as_recorded(model, 4, ids, times, X)
    # the records do reach where revision 5 differs: its kernel reads them otherwise
    model.params_.revision = 5
    assert not np.array_equal(model.evidence(ids, times, X)[0], evidence)


def test_a_model_of_revision_five_scores_to_the_bit_as_before() -> None:
    """Revision 5's evidence, as its first release computed it, on the revision-4 records."""
    model = joblib.load(DATA / "context-revision-5.joblib")
    assert model.params_.revision == 5
    ids, times, X = _records(5)
    evidence = _both_ways_as_recorded(model, 5, ids, times, X)
    # the noise burst reaches where revision 6 differs: its consistency swings there
    model.params_.revision = 6
    assert not np.array_equal(model.evidence(ids, times, X)[0], evidence)


def test_a_model_of_revision_six_scores_to_the_bit_as_before() -> None:
    """Revision 6's evidence (consistency's swing), as its first release computed it, on the
    revision-4 records."""
    model = joblib.load(DATA / "context-revision-6.joblib")
    assert model.params_.revision == 6
    ids, times, X = _records(6)
    _both_ways_as_recorded(model, 6, ids, times, X)


def test_a_new_model_has_the_current_revision_and_fits_steps_on_steps() -> None:
    """A model trained now records revision 6, measures noise in steps, and predicts a step
    from steps, not levels."""
    ids, times, X = fleet(vehicles=2, per_vehicle=300)
    model = ContextForest(n_estimators=20, max_samples=256, random_state=3).fit(ids, times, X)
    assert model.params_.revision == REVISION == 6
    assert model.summary()["evidence_revision"] == 6
    assert np.array_equal(model.params_.nscale, model.params_.dscale)
    assert model.params_.q50.shape == model.params_.den.shape == (8, X.shape[1])
    width = X.shape[1]
    assert not model.params_.mcoef[:, width:].any()  # no level weights
    assert model.params_.mcoef[:, :width].any()
