"""The context model: an IsolationForest over per-vehicle evidence, with a calibrated threshold.

``ContextForest`` is what ``model.joblib`` holds for a context version: a scikit-learn
estimator of the project's own. Offline, given records in stream order, it gives exactly the
scores the worker publishes::

    model = joblib.load(".../model.joblib")
    scores = model.score_records(vehicle_ids, timestamps, X)   # == the verdicts' anomaly_score

``anomaly_score`` is ``forest_.decision_function`` of the records' evidence, and a record is
anomalous when it is below zero: the forest's ``offset_`` is the threshold, set so that the
held-out part of the training data (the last ``holdout`` of each vehicle's records, in time)
is flagged at ``false_alarm_rate``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator
from sklearn.ensemble import IsolationForest

from shared.context.kernel import KINDS, N_KINDS, WINDOW
from shared.context.params import fit_params, normalisation
from shared.context.state import ContextState
from shared.errors import TrainingError

Matrix = npt.NDArray[np.float64]

EVIDENCE_NAMES: tuple[str, ...] = (*KINDS, "strongest")
TRIM_UNITS = 25.0
EXCURSION_CAP = 15.0  # evidence units (1: as unusual as the rarest hundredth of training)
DEFAULT_MAX_SAMPLES = 2048  # samples per tree (fewer when the training records are fewer)
MIN_HOLDOUT = 200  # held-out records below which the threshold comes from the fit part too
# The fewest records the threshold's quantile may rest on: with fewer than this many over
# false_alarm_rate (under 10,000 at the default), the threshold is the score of the
# MIN_TAIL_RECORDS-th most unusual one. A quantile beyond a sample's few most extreme records
# is the most extreme record itself, and a training set that holds a real fault or two (a
# short recording nearly always does) would then flag nothing less unusual than those.
MIN_TAIL_RECORDS = 5


def order_by_vehicle(vehicle_ids: Sequence[str], times: Matrix) -> list[npt.NDArray[np.intp]]:
    """Per vehicle (in order of first appearance), its rows sorted by time (ties: input order)."""
    groups: dict[str, list[int]] = {}
    for row, vehicle in enumerate(vehicle_ids):
        groups.setdefault(vehicle, []).append(row)
    ordered = []
    for rows in groups.values():
        index = np.asarray(rows, dtype=np.intp)
        ordered.append(index[np.argsort(times[index], kind="stable")])
    return ordered


def threshold_for(scores: Matrix, rate: float) -> float:
    """The score below which ``rate`` of ``scores`` fall (linear interpolation between ranks)."""
    return float(np.quantile(scores, rate))


def excursions(evidence: Matrix, share: float, seed: int | None) -> Matrix:
    """Training rows moved far out along one kind of evidence: the forest's reach beyond normal.

    An IsolationForest cannot tell a value beyond its training range from the range's edge: a
    record ten times past the most unusual training record would score like that record. A
    few rows of normal evidence with one kind raised uniformly from the training maximum to
    ``EXCURSION_CAP`` give the trees splits out there, so that the further a record's
    evidence goes, the shorter its path, up to the cap. They are ``share`` of the rows, sparse
    by design. The cap is where faults are: a tree's split is drawn uniformly over a node's
    range, so rows reaching 1,000 units (the cap before) left almost no split between 2 and 10,
    and records five to ten times past the rarest hundredth of training, a loose connector's
    or a stuck ECG's, scored like normal ones (at 15, the seven simulated runs' noise recall
    went from 0.56-0.79 to 0.73-0.85 and the real ECG's F1 from 0.56 to 0.77; at 30 and 60 the
    gains shrank, and at 10 the A320's F1 fell; ``bench.detection``).
    """
    count = max(1, round(share * evidence.shape[0]))
    rng = np.random.default_rng(seed)
    rows: Matrix = evidence[rng.integers(0, evidence.shape[0], size=count)].copy()
    kinds = rng.integers(0, N_KINDS, size=count)
    top = np.maximum(evidence[:, :N_KINDS].max(axis=0), 1.0)
    raised = top[kinds] + rng.random(count) * np.maximum(EXCURSION_CAP - top[kinds], 0.0)
    rows[np.arange(count), kinds] = raised
    rows[:, N_KINDS] = rows[:, :N_KINDS].max(axis=1)
    return rows


class ContextForest(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no types
    """An IsolationForest over the evidence of each record in its vehicle's context."""

    def __init__(
        self,
        n_estimators: int = 200,
        max_samples: int | float | str = DEFAULT_MAX_SAMPLES,
        max_features: float = 1.0,
        false_alarm_rate: float = 0.0005,
        holdout: float = 0.2,
        background: float = 0.02,
        random_state: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.false_alarm_rate = false_alarm_rate
        self.holdout = holdout
        self.background = background
        self.random_state = random_state

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, vehicle_ids: Sequence[str], times: Matrix, X: Matrix) -> ContextForest:
        """Learn from records of normal operation (any order: each vehicle's are sorted by time)."""
        X = np.asarray(X, dtype=np.float64)
        times = np.asarray(times, dtype=np.float64)
        n, width = X.shape
        groups = order_by_vehicle(vehicle_ids, times)
        held = np.zeros(n, dtype=bool)
        for rows in groups:
            if rows.shape[0] >= 10:
                take = max(1, math.ceil(self.holdout * rows.shape[0]))
                held[rows[-take:]] = True
        fit_rows = [rows[~held[rows]] for rows in groups]
        params = fit_params(vehicle_ids, times, X, fit_rows)
        order = np.concatenate(groups)
        ids = [vehicle_ids[int(i)] for i in order]
        raw = np.zeros((n, N_KINDS, width))
        ContextState(width).derive(params, ids, times[order], X[order], raw=raw)
        fitted = ~held[order]
        normalisation(params, raw[fitted])
        evidence, _ = ContextState(width).derive(params, ids, times[order], X[order])
        train, calibrate = evidence[fitted], evidence[~fitted]
        train = np.vstack([train, excursions(train, self.background, self.random_state)])
        max_samples = self.max_samples
        if isinstance(max_samples, int) and max_samples > train.shape[0]:
            max_samples = train.shape[0]
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=max_samples,
            max_features=self.max_features,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            try:
                forest.fit(train)
            except ValueError as error:
                raise TrainingError(
                    f"cannot train with these parameters: {error}", "params"
                ) from error
        enough = calibrate.shape[0] >= max(MIN_HOLDOUT, 2.0 / self.false_alarm_rate)
        reference = calibrate if enough else evidence
        scores = forest.score_samples(reference)
        # Training data is rarely spotless: faults in it would pull the quantile among them.
        # Records whose evidence is beyond TRIM_UNITS (that many times further out than the
        # rarest hundredth of training) are left out of the quantile: they are anomalies,
        # whatever the rate says.
        kept = scores[reference[:, N_KINDS] <= TRIM_UNITS]
        trimmed = int(scores.shape[0] - kept.shape[0])
        ranked = kept if kept.shape[0] else scores
        rate = max(self.false_alarm_rate, min(1.0, MIN_TAIL_RECORDS / ranked.shape[0]))
        threshold = threshold_for(ranked, rate)
        forest.offset_ = threshold
        self.params_ = params
        self.forest_ = forest
        self.n_features_in_ = width
        self.calibration_ = {
            "false_alarm_rate": self.false_alarm_rate,
            "effective_false_alarm_rate": rate,
            "threshold": threshold,
            "held_out_records": int(calibrate.shape[0]),
            "from_held_out": bool(enough),
            "trimmed": trimmed,
            "held_out_flagged": float((forest.decision_function(calibrate) < 0).mean())
            if calibrate.shape[0]
            else None,
        }
        return self

    # -- scoring -----------------------------------------------------------------------------

    def evidence(
        self,
        vehicle_ids: Sequence[str],
        times: Matrix,
        X: Matrix,
        state: ContextState | None = None,
        offsets: npt.NDArray[np.int64] | None = None,
    ) -> tuple[Matrix, npt.NDArray[np.int64]]:
        """The forest's input for records in stream order (a fresh state unless one is given)."""
        state = state if state is not None else ContextState(self.n_features_in_)
        return state.derive(self.params_, vehicle_ids, times, X, offsets)

    def score_records(
        self,
        vehicle_ids: Sequence[str],
        times: Matrix,
        X: Matrix,
        state: ContextState | None = None,
        offsets: npt.NDArray[np.int64] | None = None,
    ) -> Matrix:
        """``anomaly_score`` of each record, in stream order: what the worker publishes."""
        evidence, _ = self.evidence(vehicle_ids, times, X, state, offsets)
        scores: Matrix = self.forest_.decision_function(evidence)
        return scores

    def summary(self) -> dict[str, Any]:
        """The version's ``context`` block in meta.json."""
        return {
            "evidence": list(EVIDENCE_NAMES),
            "window": WINDOW,
            **self.params_.summary(),
            "calibration": self.calibration_,
        }
