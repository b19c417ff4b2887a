"""Scoring with a loaded model version; no I/O.

``Detector`` wraps a loaded version (point or context) and scores a batch in one call;
:func:`load_detector` is the one validated loader of both services. Scores are exactly
scikit-learn's ``decision_function`` (negative means anomalous). Fitting is in
:mod:`shared.fitting`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from shared.attribution import Reference, rank_many
from shared.context import ContextForest, ContextState
from shared.context.explain import attribute
from shared.drift import DriftReference
from shared.errors import DimensionMismatchError, ModelIntegrityError
from shared.forest import CompiledForest
from shared.registry import LoadedModel, ModelRegistry
from shared.training_schemas import ModelMeta

Matrix = npt.NDArray[np.float64]

log = logging.getLogger(__name__)
PROBE_ROWS = 64


class Detector:
    """A loaded model version ready to score batches, through its compiled forest.

    ``compiled`` is ``False`` when the compiled forest disagreed with scikit-learn on the
    probe rows at load (see :func:`load_detector`): scores then come from scikit-learn.
    """

    def __init__(self, meta: ModelMeta, estimator: IsolationForest | ContextForest) -> None:
        self.meta = meta
        self.estimator = estimator
        self.version = meta.version
        self.n_features = int(meta.n_features)
        # A context model's forest scores each record's evidence, not its readings.
        self.context: ContextForest | None = (
            estimator if isinstance(estimator, ContextForest) else None
        )
        self.isolation_forest: IsolationForest = (
            estimator.forest_ if isinstance(estimator, ContextForest) else estimator
        )
        self.forest = CompiledForest.from_sklearn(self.isolation_forest)
        self.compiled = True
        extra = meta.model_extra or {}
        self.reference = Reference.from_meta(extra)
        self.drift_reference = DriftReference.from_meta(extra)
        names = extra.get("feature_names")
        self.feature_names: list[str] | None = (
            [str(n) for n in names] if isinstance(names, list) else None
        )

    @classmethod
    def from_loaded(cls, loaded: LoadedModel) -> Detector:
        return cls(loaded.meta, loaded.estimator)

    def check_width(self, width: int) -> None:
        """:class:`DimensionMismatchError` unless ``width`` is the model's feature count."""
        if width != self.n_features:
            raise DimensionMismatchError(width, self.n_features)

    @property
    def kind(self) -> str:
        """``context`` (records judged in their vehicle's history) or ``point`` (alone)."""
        return "context" if self.context is not None else "point"

    def score(self, features: Matrix) -> Matrix:
        """scikit-learn's ``decision_function`` of every row of the forest's input, in one call.

        For a point model the rows are readings; for a context model they are evidence rows
        (see :meth:`derive`).
        """
        if features.ndim != 2:
            raise ValueError("features must be a 2-D matrix")
        if features.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        if self.context is None:
            self.check_width(features.shape[1])
        if not self.compiled:
            exact: Matrix = self.isolation_forest.decision_function(features)
            return exact
        return self.forest.decision_function(features)

    def derive(
        self,
        state: ContextState,
        vehicle_ids: Sequence[str],
        times: Matrix,
        readings: Matrix,
        offsets: npt.NDArray[np.int64] | None = None,
    ) -> tuple[Matrix, npt.NDArray[np.int64]]:
        """A context model's evidence for records in stream order (and each kind's sensor)."""
        if self.context is None:
            raise TypeError(f"model version {self.version!r} is a point model: nothing to derive")
        self.check_width(readings.shape[1])
        return state.derive(self.context.params_, vehicle_ids, times, readings, offsets)

    def remember(
        self,
        state: ContextState,
        vehicle_ids: Sequence[str],
        times: Matrix,
        readings: Matrix,
        offsets: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """Records into their vehicles' histories, unscored (a context rebuild)."""
        if self.context is None:
            raise TypeError(f"model version {self.version!r} is a point model: no history")
        self.check_width(readings.shape[1])
        state.remember(self.context.params_, vehicle_ids, times, readings, offsets)

    def new_state(self, capacity: int = 64) -> ContextState:
        """An empty history for this model's sensors, with room for ``capacity`` vehicles
        to begin with (it grows as more arrive)."""
        return ContextState(self.n_features, capacity=capacity)

    def explain(self, features: Matrix, top_k: int) -> list[list[dict[str, Any]]]:
        """The ranked attribution of every row of a point model (see :mod:`shared.attribution`)."""
        if features.shape[0] == 0 or top_k <= 0:
            return [[] for _ in range(features.shape[0])]
        self.check_width(features.shape[1])
        gains = self.forest.isolation_gains(features)
        return rank_many(gains, features, self.reference, top_k, self.feature_names)

    def explain_context(
        self,
        evidence: Matrix,
        lead: npt.NDArray[np.int64],
        readings: Matrix,
        top_k: int,
    ) -> list[list[dict[str, Any]]]:
        """The ranked sensors of context verdicts (see :mod:`shared.context.explain`)."""
        if evidence.shape[0] == 0 or top_k <= 0:
            return [[] for _ in range(evidence.shape[0])]
        gains = self.forest.isolation_gains(evidence)
        return attribute(gains, evidence, lead, readings, self.reference, top_k, self.feature_names)

    def probe_rows(self) -> Matrix:
        """Rows to check the compiled forest against scikit-learn: zeros, the training data's
        typical values (when the version keeps them) and seeded draws around them."""
        width = self.forest.n_features
        rows = [np.zeros(width)]
        centre, spread = np.zeros(width), np.ones(width)
        low, high = self.reference.low, self.reference.high
        if low is not None and high is not None and len(low) == len(high) == width:
            lo, hi = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
            rows += [lo, (lo + hi) / 2.0, hi]
            centre, spread = (lo + hi) / 2.0, np.maximum(hi - lo, 1e-9)
        rng = np.random.default_rng(20240115)
        draws = centre + spread * rng.normal(0.0, 1.5, size=(PROBE_ROWS - len(rows), width))
        return np.vstack([np.asarray(rows, dtype=np.float64), draws])


def load_detector(registry: ModelRegistry, version: str) -> Detector:
    """Verify, unpickle, validate and probe ``version``: the one loader of both services.

    Refused with :class:`ModelIntegrityError` (and never served): an artifact that fails its
    checksum or signature, that is not an ``IsolationForest``, whose fitted width differs
    from ``meta.json``, or that cannot score. The compiled forest is checked against
    scikit-learn's ``decision_function`` on :meth:`Detector.probe_rows`; on any difference
    the detector scores with scikit-learn instead (``compiled`` is ``False``; a warning is
    logged, and each service counts it in a metric). Blocking: run it off the event loop.
    """
    loaded = registry.load(version)
    estimator = loaded.estimator
    forest = (
        estimator.__dict__.get("forest_") if isinstance(estimator, ContextForest) else estimator
    )
    if not isinstance(forest, IsolationForest) or not hasattr(forest, "estimators_"):
        raise ModelIntegrityError(
            f"model version {version!r}: model.joblib holds a {type(estimator).__name__}, "
            "not a fitted IsolationForest or context model"
        )
    expected = int(getattr(estimator, "n_features_in_", -1))
    if expected != int(loaded.meta.n_features):
        raise ModelIntegrityError(
            f"model version {version!r}: meta.json says {loaded.meta.n_features} features, "
            f"the estimator was fitted on {expected}"
        )
    try:
        detector = Detector.from_loaded(loaded)
        probe = detector.probe_rows()
        compiled = detector.forest.decision_function(probe)
        exact = detector.isolation_forest.decision_function(probe)
    except Exception as error:  # a forest we cannot walk or score: refuse it now, not on a batch
        raise ModelIntegrityError(f"model version {version!r} cannot score: {error}") from error
    if not np.array_equal(compiled, exact):
        detector.compiled = False
        log.warning(
            "compiled forest differs from scikit-learn on the probe rows; scoring with "
            "scikit-learn for this version",
            extra={"version": version, "rows_differing": int((compiled != exact).sum())},
        )
    return detector
