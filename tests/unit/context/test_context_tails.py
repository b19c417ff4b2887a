"""Revision 4: the level's two tails are normalised apart.

A sensor that rests near a floor and rises far above it (a PV inverter's power, a flow) has a
wide upper tail; a reading as far under the floor as its peaks are over it is still a fault.
"""

from __future__ import annotations

import numpy as np

from shared.context import ContextForest
from shared.context.kernel import LEVEL, LEVEL_BELOW, N_KINDS


def _floor_and_peaks(n: int, seed: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One sensor of one machine, every 15 minutes: near 0 (noise 1) two thirds of the day,
    a bump to about 100 the rest, which clouds cut to a third at random (steps of 60 are
    ordinary by day)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 900.0
    phase = (t % 86_400.0) / 86_400.0
    day = (phase > 0.33) & (phase < 0.66)
    bump = np.where(day, 100.0 * np.sin((phase - 0.33) / 0.33 * np.pi), 0.0)
    X = (bump * rng.uniform(0.3, 1.0, n) + rng.normal(0, 1.0, n))[:, None]
    return ["PV-1"] * n, t, X


def test_a_reading_far_under_the_floor_is_flagged_though_peaks_as_far_above_are_not() -> None:
    """-60 at night, on a sensor whose days reach 100 with steps of 60: revision 3 scored it
    normal (its level's one unit came from the peaks), revision 4 flags it; the records before
    it score as they did."""
    ids, t, X = _floor_and_peaks(4_000, seed=1)
    model = ContextForest(n_estimators=100, random_state=0).fit(ids, t, X)
    params = model.params_
    assert params.q50.shape == params.den.shape == (N_KINDS + 1, 1)
    # the floor's tail is narrow, the peaks' wide
    assert params.den[LEVEL_BELOW, 0] * 5 < params.den[LEVEL, 0]

    ids2, t2, X2 = _floor_and_peaks(1_000, seed=2)
    t2 = t2 + t[-1] + 900.0
    night = int(np.flatnonzero(np.abs(X2[200:, 0]) < 3)[0]) + 200  # a reading at the floor
    clean = model.score_records(ids2, t2, X2)
    assert (clean < 0).mean() < 0.01
    deep = X2.copy()
    deep[night, 0] = -60.0  # under the floor by less than the peaks rise above it
    scores = model.score_records(ids2, t2, deep)
    assert scores[night] < 0
    assert np.array_equal(scores[:night], clean[:night])
