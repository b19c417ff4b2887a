"""Training and scoring with IsolationForest; no I/O.

``train`` fits a point model from a feature matrix, ``train_context`` a context model from
records (vehicle, time, readings); ``Detector`` wraps a loaded version and scores a batch in
one call. Scores are exactly scikit-learn's ``decision_function`` (negative means
anomalous).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import IsolationForest

from shared.attribution import Reference, rank_many
from shared.context import ContextForest, ContextState
from shared.context.explain import attribute
from shared.drift import DriftReference
from shared.errors import DimensionMismatchError, ModelIntegrityError, TrainingError
from shared.forest import CompiledForest
from shared.registry import LoadedModel, ModelRegistry
from shared.schemas import ModelMeta, TelemetryRecord, TrainingParams
from shared.settings import Settings

Matrix = npt.NDArray[np.float64]

log = logging.getLogger(__name__)
PROBE_ROWS = 64


CONTEXT_MAX_SAMPLES = 2048  # a context model's "auto" max_samples


@dataclass(frozen=True, slots=True)
class ForestParams:
    """The parameters a model is trained with: its kind, then its forest's.

    ``contamination`` is for point models, ``false_alarm_rate`` for context models.
    """

    n_estimators: int = 100
    max_samples: int | float | str = "auto"
    contamination: float | str = "auto"
    max_features: float = 1.0
    random_state: int | None = None
    detector: str = "context"
    false_alarm_rate: float = 0.001

    @classmethod
    def resolve(
        cls, request: TrainingParams | None, settings: Settings | None = None
    ) -> ForestParams:
        """Request values first, then the settings' defaults, then scikit-learn's."""
        base = (
            cls()
            if settings is None
            else cls(
                n_estimators=settings.iforest_n_estimators,
                max_samples=settings.iforest_max_samples,
                contamination=settings.iforest_contamination,
                random_state=settings.iforest_random_state,
                detector=settings.detector_kind,
                false_alarm_rate=settings.detection_false_alarm_rate,
            )
        )
        if request is None:
            return base
        chosen = {k: v for k, v in request.model_dump().items() if v is not None}
        return cls(**{**base.fields(), **chosen})

    def ignored(self, request: TrainingParams | None) -> list[str]:
        """Warnings for the request's parameters that this kind of model does not take.

        They are left out rather than refused, so that a caller written for point models
        (``contamination``) still trains.
        """
        if request is None:
            return []
        other = "contamination" if self.detector == "context" else "false_alarm_rate"
        if getattr(request, other) is None:
            return []
        instead = "false_alarm_rate" if other == "contamination" else "contamination"
        return [
            f"params.{other} was ignored: a {self.detector} model's threshold comes from {instead}"
        ]

    @property
    def context_max_samples(self) -> int | float:
        """``max_samples`` as a context model takes it (``"auto"`` is 2048)."""
        value = self.max_samples
        return CONTEXT_MAX_SAMPLES if isinstance(value, str) else value

    def fields(self) -> dict[str, Any]:
        """Every field, whichever the kind."""
        return {
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "contamination": self.contamination,
            "max_features": self.max_features,
            "random_state": self.random_state,
            "detector": self.detector,
            "false_alarm_rate": self.false_alarm_rate,
        }

    def as_dict(self) -> dict[str, Any]:
        """The parameters that apply to the kind (``params`` in meta.json).

        A point model's are those point versions always had.
        """
        if self.detector == "point":
            return {
                "n_estimators": self.n_estimators,
                "max_samples": self.max_samples,
                "contamination": self.contamination,
                "max_features": self.max_features,
                "random_state": self.random_state,
            }
        return {
            "detector": self.detector,
            "n_estimators": self.n_estimators,
            "max_samples": self.context_max_samples,
            "max_features": self.max_features,
            "false_alarm_rate": self.false_alarm_rate,
            "random_state": self.random_state,
        }


def feature_matrix(records: Sequence[TelemetryRecord]) -> Matrix:
    """Stack the records' feature vectors; :class:`TrainingError` if their lengths differ."""
    if not records:
        raise TrainingError("no records to train on", field="records")
    width = len(records[0].feature_vector)
    for position, record in enumerate(records):
        if len(record.feature_vector) != width:
            raise TrainingError(
                f"records[{position}].feature_vector has {len(record.feature_vector)} values; "
                f"records[0] has {width}: all records must share one dimension",
                field=f"records.{position}.feature_vector",
            )
    return np.array([r.feature_vector for r in records], dtype=np.float64)


def _check_training_data(features: Matrix, max_samples: object, min_records: int) -> None:
    if features.ndim != 2 or features.shape[1] == 0:
        raise TrainingError(
            "training data must be a non-empty matrix of feature vectors", "records"
        )
    if features.shape[0] < min_records:
        raise TrainingError(
            f"{features.shape[0]} records is too few to train on; at least {min_records} are needed",
            field="records",
        )
    if not np.isfinite(features).all():
        raise TrainingError("training data holds NaN or infinite values", field="records")
    if isinstance(max_samples, int) and max_samples > features.shape[0]:
        raise TrainingError(
            f"max_samples={max_samples} exceeds the {features.shape[0]} records given",
            field="params.max_samples",
        )


def train(features: Matrix, params: ForestParams, *, min_records: int = 1) -> IsolationForest:
    """Fit an IsolationForest on ``features`` (rows are records)."""
    max_samples = params.max_samples
    _check_training_data(features, max_samples, min_records)
    model = IsolationForest(
        n_estimators=params.n_estimators,
        max_samples=max_samples,
        contamination=params.contamination,
        max_features=params.max_features,
        random_state=params.random_state,
    )
    with warnings.catch_warnings():
        # scikit-learn warns when max_samples > n; the check above makes that unreachable.
        warnings.simplefilter("ignore", UserWarning)
        try:
            model.fit(features)
        except ValueError as error:  # e.g. a max_samples fraction that leaves no sample per tree
            raise TrainingError(
                f"cannot train with these parameters: {error}", field="params"
            ) from error
    return model


def train_context(
    vehicle_ids: Sequence[str],
    times: Matrix,
    features: Matrix,
    params: ForestParams,
    *,
    min_records: int = 1,
) -> ContextForest:
    """Fit a context model on records of normal operation (each vehicle's are ordered by time).

    ``times`` are the records' event times in POSIX seconds. ``max_samples`` ``"auto"`` is
    2048, fewer when the records are fewer; a count given explicitly may not exceed them.
    """
    _check_training_data(features, params.max_samples, min_records)
    if len(vehicle_ids) != features.shape[0] or times.shape != (features.shape[0],):
        raise TrainingError(
            "each training record needs a vehicle_id and a timestamp", field="records"
        )
    model = ContextForest(
        n_estimators=params.n_estimators,
        max_samples=params.context_max_samples,
        max_features=params.max_features,
        false_alarm_rate=params.false_alarm_rate,
        random_state=params.random_state,
    )
    try:
        return model.fit(vehicle_ids, times, features)
    except ValueError as error:  # e.g. a max_samples fraction that leaves no sample per tree
        raise TrainingError(
            f"cannot train with these parameters: {error}", field="params"
        ) from error


def training_warnings(record_count: int) -> list[str]:
    """Advice for a caller whose training set is too small to mean much."""
    if record_count < 3:
        return [
            f"trained on {record_count} record(s): IsolationForest needs more data to separate "
            "anomalies, and this model will score every record 0 (not anomalous)"
        ]
    if record_count < 256:
        return [f"trained on {record_count} records: fewer than 256 makes shallow trees"]
    return []


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

    def new_state(self) -> ContextState:
        """An empty history for this model's sensors."""
        return ContextState(self.n_features)

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
