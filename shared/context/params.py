"""What a context model learns from its training records, and how it learns it.

Records arrive grouped per vehicle in time order (see :func:`shared.context.order`). From
the *fit* part the model learns, per vehicle (the fleet's for vehicles with fewer than
``MIN_HISTORY`` records, and for vehicles it has never seen):

* the baseline of each sensor: its median and a robust scale (1.4826 x the median absolute
  deviation, no less than ``SCALE_FLOOR`` of the fleet's scale);

and, for the fleet:

* how each sensor follows the others: a least-squares fit of each standardised sensor on the
  other standardised sensors (no fit for a machine with one sensor), and the robust scale of
  its residual;
* the usual size of a step (the scale of the change and, from revision 5, of the noise
  measure);
* how each sensor's step follows the others' steps (a least-squares fit; models before
  revision 2 also fitted every level, which extrapolates badly in a regime training never
  saw, so their level weights are kept and new models' are zero);
* the longest run of exactly repeated readings each sensor shows (the 99.9th percentile, for
  zero and non-zero readings apart; a silence longer than the gap below ends a run, as it
  does in the kernel): a quantised sensor repeats normally, a stuck one longer;
  a sensor that never read 0 in training treats 0 as a dead sensor's reading only when 0 is
  more than ``ZERO_REACH`` scales outside its training range;
* the silence after which a vehicle's history starts afresh (``GAP_FACTOR`` times the
  fleet's median interval between two readings of a vehicle).

Then the kernel's evidence over the fit part gives each (kind, sensor) its median and
99th percentile, which normalise the evidence (:mod:`.kernel`): the 99th rather than a
further one, so that a few faults in the training data do not stretch the unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shared.context.kernel import FLAT, LEVEL, N_KINDS, REVISION

Matrix = npt.NDArray[np.float64]

MIN_HISTORY = 30  # records a vehicle needs in training for a baseline of its own
SCALE_FLOOR = 0.5  # a vehicle's scale is at least this share of the fleet's
GAP_FACTOR = 20.0
MIN_GAP_SECONDS = 60.0
ZERO_REACH = 3.0  # robust scales beyond a sensor's training range within which 0 is ordinary
TAIL = 0.999  # the quantile of a sensor's normal runs of repeats taken as its longest
NORM_TAIL = 0.99  # evidence is normalised to this quantile of training (robust to a few faults)
HORIZON = 50_000  # offsets back in a partition that a streamed record's history may reach


def robust_scale(values: Matrix, axis: int = 0) -> Matrix:
    """1.4826 x the median absolute deviation, falling back to the standard deviation, then 1."""
    median = np.median(values, axis=axis, keepdims=True)
    mad = 1.4826 * np.median(np.abs(values - median), axis=axis)
    std = values.std(axis=axis)
    scale: Matrix = np.where(mad > 0, mad, np.where(std > 0, std, 1.0))
    return scale


@dataclass
class ContextParams:
    """The learned parameters of a context model (pickled with it, summarised in meta.json)."""

    n_sensors: int
    vehicles: dict[str, int]  # vehicle id -> its baseline row; the fleet's is the last row
    med: Matrix  # (vehicles + 1, sensors)
    scl: Matrix
    coef: Matrix  # (sensors, sensors): sensor s from the others (zero diagonal)
    icpt: Matrix  # (sensors,)
    rscale: Matrix
    mcoef: Matrix  # (sensors, 2 x sensors): a step from the others' steps (and levels, before r2)
    micpt: Matrix
    mscale: Matrix
    dscale: Matrix
    nscale: Matrix
    qrun_zero: Matrix
    qrun_other: Matrix
    gap_seconds: float
    horizon: int = HORIZON
    q50: Matrix = field(default_factory=lambda: np.zeros((0, 0)))
    den: Matrix = field(default_factory=lambda: np.zeros((0, 0)))
    # The evidence's revision (:data:`shared.context.kernel.REVISION`). Models pickled before
    # revisions existed lack the attribute; the class's default makes them score as trained.
    revision: int = 1

    def __post_init__(self) -> None:
        # until normalisation() sets them: raw evidence (median 0, scale 1)
        shape = (normalised_rows(self.revision), self.n_sensors)
        if self.q50.shape != shape:
            self.q50 = np.zeros(shape)
        if self.den.shape != shape:
            self.den = np.ones(shape)

    @property
    def fleet_row(self) -> int:
        return len(self.vehicles)

    def base_rows(self, vehicle_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Each record's baseline row: its vehicle's, or the fleet's for a vehicle not learned."""
        fleet = self.fleet_row
        get = self.vehicles.get
        return np.array([get(v, fleet) for v in vehicle_ids], dtype=np.int64)

    def summary(self) -> dict[str, object]:
        """What meta.json says of them."""
        return {
            "sensors": self.n_sensors,
            "vehicles_with_baseline": len(self.vehicles),
            "gap_seconds": round(self.gap_seconds, 3),
            "horizon_offsets": self.horizon,
            "evidence_revision": self.revision,
            "longest_normal_run": self.qrun_other.tolist(),
            "longest_normal_zero_run": self.qrun_zero.tolist(),
        }


def _runs(X: Matrix, times: Matrix, gap: float) -> Matrix:
    """The length of the run of equal readings ending at each row, per column: the kernel's
    count, which a silence longer than ``gap`` starts afresh."""
    runs = np.ones_like(X)
    for i in range(1, X.shape[0]):
        if times[i] - times[i - 1] <= gap:
            runs[i] = np.where(X[i] == X[i - 1], runs[i - 1] + 1.0, 1.0)
    return runs


def fit_params(
    vehicle_ids: Sequence[str], times: Matrix, X: Matrix, groups: list[npt.NDArray[np.intp]]
) -> ContextParams:
    """Learn everything but the normalisation (see :func:`normalisation`).

    ``groups`` holds, per vehicle, the row indices of its records in time order.
    """
    n, F = X.shape
    fleet_med = np.median(X, axis=0)
    fleet_scl = robust_scale(X)
    names: dict[str, int] = {}
    meds, scls = [], []
    for rows in groups:
        if rows.shape[0] < MIN_HISTORY:
            continue
        values = X[rows]
        names[vehicle_ids[int(rows[0])]] = len(names)
        meds.append(np.median(values, axis=0))
        scls.append(np.maximum(robust_scale(values), SCALE_FLOOR * fleet_scl))
    med = np.vstack([*meds, fleet_med]) if meds else fleet_med[None, :]
    scl = np.vstack([*scls, fleet_scl]) if scls else fleet_scl[None, :]
    fleet = len(names)
    base = np.fromiter((names.get(v, fleet) for v in vehicle_ids), np.int64, n)
    Z = (X - med[base]) / scl[base]
    coef = np.zeros((F, F))
    icpt = np.zeros(F)
    rscale = np.ones(F)
    if F > 1:
        ones = np.ones((n, 1))
        for s in range(F):
            others = [j for j in range(F) if j != s]
            A = np.hstack([Z[:, others], ones])
            gram = A.T @ A + 1e-6 * n * np.eye(F)
            solution = np.linalg.solve(gram, A.T @ Z[:, s])
            coef[s, others] = solution[:-1]
            icpt[s] = solution[-1]
            rscale[s] = float(robust_scale((Z[:, s] - A @ solution)[:, None])[0])
    mcoef = np.zeros((F, 2 * F))
    micpt = np.zeros(F)
    mscale = np.ones(F)
    pairs = [rows for rows in groups if rows.shape[0] > 1]
    if F > 1 and pairs:
        now = np.vstack([Z[rows[1:]] for rows in pairs])
        before = np.vstack([Z[rows[:-1]] for rows in pairs])
        delta = now - before
        m = delta.shape[0]
        for s in range(F):
            others = [j for j in range(F) if j != s]
            A = np.hstack([delta[:, others], np.ones((m, 1))])
            gram = A.T @ A + 1e-6 * m * np.eye(A.shape[1])
            solution = np.linalg.solve(gram, A.T @ delta[:, s])
            mcoef[s, others] = solution[: F - 1]
            micpt[s] = solution[-1]
            mscale[s] = float(robust_scale((delta[:, s] - A @ solution)[:, None])[0])
    steps, intervals = [], []
    for rows in groups:
        if rows.shape[0] > 1:
            steps.append(np.diff(Z[rows], axis=0))
            intervals.append(np.diff(times[rows]))
    gaps = np.concatenate(intervals) if intervals else np.ones(1)
    positive = gaps[gaps > 0]
    typical = float(np.median(positive)) if positive.size else 1.0
    gap_seconds = max(MIN_GAP_SECONDS, GAP_FACTOR * typical)
    runs = [_runs(X[rows], times[rows], gap_seconds) for rows in groups]
    seen = [X[rows] for rows in groups]
    step = np.vstack(steps) if steps else np.ones((1, F))
    # the usual size of a step; a quantised sensor's median step is 0, so its mean step
    # (then 1) stands in
    typical_step = np.median(np.abs(step), axis=0) * 1.4826
    mean_step = np.abs(step).mean(axis=0)
    dscale = np.where(typical_step > 0, typical_step, np.where(mean_step > 0, mean_step, 1.0))
    run = np.vstack(runs)
    zero = np.vstack(seen) == 0.0
    qrun_other = np.array(
        [
            float(np.quantile(run[~zero[:, s], s], TAIL)) if (~zero[:, s]).any() else 1.0
            for s in range(F)
        ]
    )
    # A sensor that never read 0 in training: 0 is a dead sensor's reading when it lies far
    # outside what the sensor read (a speed of 0 at cruise), and an ordinary value when it is
    # within ZERO_REACH scales of that range (a pitch that levels off through 0 in descent).
    near = (X.min(axis=0) - ZERO_REACH * fleet_scl <= 0.0) & (
        X.max(axis=0) + ZERO_REACH * fleet_scl >= 0.0
    )
    qrun_zero = np.array(
        [
            float(np.quantile(run[zero[:, s], s], TAIL))
            if zero[:, s].any()
            else (qrun_other[s] if near[s] else 1.0)
            for s in range(F)
        ]
    )
    return ContextParams(
        n_sensors=F,
        vehicles=names,
        med=med,
        scl=scl,
        coef=coef,
        icpt=icpt,
        rscale=np.maximum(rscale, 1e-9),
        mcoef=mcoef,
        micpt=micpt,
        mscale=np.maximum(mscale, 1e-9),
        dscale=dscale,
        # The noise measure in the sensor's usual steps (revision 5). Before, it was left in
        # the level's scale (models pickled then keep their ones), where a smooth sensor's
        # steps are a few hundredths and the spread of its noise measure fell under the
        # normalisation's floor: noise of one to two standard deviations on a temperature
        # stayed near one unit.
        nscale=dscale.copy(),
        qrun_zero=qrun_zero,
        qrun_other=qrun_other,
        gap_seconds=gap_seconds,
        revision=REVISION,
    )


# The smallest normalisation denominator per kind: evidence that never varied in training
# (a continuous sensor never repeats: flat is constant) must still be able to stand out.
_FLOORS = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25])


def normalised_rows(revision: int) -> int:
    """The rows of ``q50`` and ``den``: one per kind, and from revision 4 one more, for a
    level below the baseline."""
    return N_KINDS + 1 if revision >= 4 else N_KINDS


def normalisation(params: ContextParams, raw: Matrix) -> None:
    """Set ``q50`` and ``den`` from the raw per-sensor evidence ``raw`` (rows, kinds, sensors).

    From revision 4 the kernel writes a level below the baseline negated, and each tail of
    the level gets its own median and quantile (a tail training never reached: 0 and the
    floor, so the first reading out there stands out); those replace the level's row.
    """
    q50 = np.quantile(raw, 0.5, axis=0)
    tail = np.quantile(raw, NORM_TAIL, axis=0)
    floors = np.repeat(_FLOORS[:, None], params.n_sensors, axis=1)
    # flat: a sensor that never repeated in training is unusual from its first repeat on
    floors[FLAT] = 0.25
    den = np.maximum(tail - q50, floors)
    if params.revision >= 4:
        above, below = _tails(raw[:, LEVEL, :])
        q50[LEVEL], den[LEVEL] = above
        q50 = np.vstack([q50, below[0][None, :]])
        den = np.vstack([den, below[1][None, :]])
    params.q50 = q50
    params.den = den


def _tails(level: Matrix) -> tuple[tuple[Matrix, Matrix], tuple[Matrix, Matrix]]:
    """The median and denominator of each sensor's signed level above (>= 0) and below."""
    sensors = level.shape[1]
    out = np.zeros((2, 2, sensors))
    for s in range(sensors):
        column = level[:, s]
        for side, values in enumerate((column[column >= 0.0], -column[column < 0.0])):
            if values.shape[0]:
                median = float(np.quantile(values, 0.5))
                spread = float(np.quantile(values, NORM_TAIL)) - median
            else:
                median, spread = 0.0, 0.0
            out[side, 0, s] = median
            out[side, 1, s] = max(spread, float(_FLOORS[LEVEL]))
    return (out[0, 0], out[0, 1]), (out[1, 0], out[1, 1])
