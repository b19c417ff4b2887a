"""The threshold's quantile rests on at least MIN_TAIL_RECORDS records: a short training set
with a fault or two of its own still flags what is less unusual than those."""

from __future__ import annotations

import numpy as np

from shared.context import ContextForest
from shared.context.model import MIN_TAIL_RECORDS
from shared.training import calibration_warning
from shared.training_schemas import Calibration
from tests.unit.context.test_context_model import fleet


def test_a_short_training_set_sets_its_threshold_at_the_fifth_most_unusual_record() -> None:
    """600 records cannot rank a 0.05% quantile: the rate becomes 5 / 600 and says so."""
    ids, times, X = fleet(vehicles=2, per_vehicle=300, seed=3)
    model = ContextForest(n_estimators=30, random_state=2).fit(ids, times, X)
    calibration = model.calibration_
    assert not calibration["from_held_out"]
    ranked = len(ids) - calibration["trimmed"]
    assert calibration["effective_false_alarm_rate"] == MIN_TAIL_RECORDS / ranked
    evidence, _ = model.evidence(ids, times, X)
    flagged = int((model.forest_.decision_function(evidence) < 0).sum())
    assert MIN_TAIL_RECORDS - 1 <= flagged <= MIN_TAIL_RECORDS + 1
    warning = calibration_warning(Calibration.model_validate(calibration))
    assert "the 5th most unusual record" in warning


def test_enough_records_keep_the_rate_asked_for() -> None:
    """With 5 / rate records or more to rank, the rate is the operator's."""
    ids, times, X = fleet(vehicles=4, per_vehicle=1_500, seed=3)  # 1,200 held out
    model = ContextForest(n_estimators=30, false_alarm_rate=0.01, random_state=2).fit(ids, times, X)
    assert model.calibration_["effective_false_alarm_rate"] == 0.01
    warning = calibration_warning(Calibration.model_validate(model.calibration_))
    assert "most unusual" not in warning
    assert np.isfinite(model.calibration_["threshold"])
