"""Evidence revision 5: noise is measured in the sensor's usual steps, and ends with its steps.

A smooth sensor (a temperature) steps a few hundredths of its level's scale. Revision 4 kept
its noise measure in the level's scale, where the spread of that measure in training fell
under the normalisation's floor: a loose connector's noise stayed near one unit. Revision 5
divides it by the usual step, and takes the smaller of the median step over the last six
and over the last three, so that the evidence falls back two records after the noise ends.
"""

from __future__ import annotations

import copy

import numpy as np
import numpy.typing as npt
import pytest

from shared.context import ContextForest, ContextState
from shared.context.kernel import N_KINDS, NOISE
from shared.context.params import ContextParams, normalisation

Matrix = npt.NDArray[np.float64]
TRAIN = 3_000


def _smooth(n: int, start: int, rng: np.random.Generator) -> Matrix:
    """A temperature of one machine, a reading a minute: a slow swing of 5 around 20."""
    k = np.arange(start, start + n)
    return 20 + 5 * np.sin(k / 300) + rng.normal(0, 0.05, n)


def _records(values: Matrix, start: int) -> tuple[list[str], Matrix, Matrix]:
    times = 1_700_000_000.0 + 60.0 * np.arange(start, start + len(values), dtype=np.float64)
    return ["T-1"] * len(values), times, values[:, None]


@pytest.fixture(scope="module")
def trained() -> tuple[ContextForest, Matrix, Matrix]:
    """The model, its training readings, and 600 more readings with noise of one training
    standard deviation on 200-259."""
    rng = np.random.default_rng(11)
    values = _smooth(TRAIN, 0, rng)
    model = ContextForest(n_estimators=50, random_state=0).fit(*_records(values, 0))
    stream = _smooth(600, TRAIN, rng)
    stream[200:260] += rng.normal(0, values.std(), 60)
    return model, values, stream


def _evidence(params: ContextParams, stream: Matrix) -> Matrix:
    evidence, _ = ContextState(1).derive(params, *_records(stream, TRAIN))
    return evidence


def _as_revision_four(model: ContextForest, values: Matrix) -> ContextParams:
    """The same training (``values``) under revision 4: the noise measure in the level's
    scale, and the normalisation learned again from it."""
    old = copy.deepcopy(model.params_)
    old.nscale = np.ones(1)
    old.revision = 4
    ids, times, X = _records(values, 0)
    raw = np.zeros((TRAIN, N_KINDS, 1))
    ContextState(1).derive(old, ids, times, X, raw=raw)
    fitted = int(TRAIN * (1 - model.holdout))
    normalisation(old, raw[:fitted])
    return old


def test_a_smooth_sensors_noise_stands_out_in_its_steps(
    trained: tuple[ContextForest, Matrix, Matrix],
) -> None:
    """The same noise is tens of units in revision 5 and about one in revision 4, whose
    normalisation was floored; the model flags nearly every noisy record after the first
    few, and none of the clean ones."""
    model, values, stream = trained
    params = model.params_
    assert np.array_equal(params.nscale, params.dscale)
    new = _evidence(params, stream)[206:260, NOISE]
    old = _evidence(_as_revision_four(model, values), stream)[206:260, NOISE]
    assert np.median(new) > 10
    assert np.median(old) < 2
    scores = model.score_records(*_records(stream, TRAIN))
    assert (scores[206:260] < 0).mean() > 0.9
    assert not (scores[20:200] < 0).any()
    assert not (scores[270:] < 0).any()


def test_noise_evidence_falls_back_two_records_after_the_noise_ends(
    trained: tuple[ContextForest, Matrix, Matrix],
) -> None:
    """Record 260 is the first clean one. The median over six steps alone (the revision-4
    kernel on the same parameters) stays high for four more records; the smaller of it and
    the median over three is back under one unit at 262."""
    model, _, stream = trained
    new = _evidence(model.params_, stream)[:, NOISE]
    r4 = copy.deepcopy(model.params_)
    r4.revision = 4
    old = _evidence(r4, stream)[:, NOISE]
    assert (new[250:262] > 10).all()
    assert (new[262:270] < 1).all()
    assert (old[262:264] > 10).all()
