"""Context models: each record judged in its vehicle's recent history, against its own normal.

:mod:`.kernel` computes a record's evidence from its vehicle's recent readings, :mod:`.params`
learns what normal looks like, :mod:`.state` keeps the recent readings, :mod:`.model` is the
estimator that ``model.joblib`` holds (an IsolationForest over the evidence, calibrated to a
false-alarm rate), :mod:`.explain` turns a verdict's isolation into sensors.
"""

from shared.context.model import EVIDENCE_NAMES, ContextForest
from shared.context.state import ContextState
from shared.context.times import epoch_seconds

__all__ = ["EVIDENCE_NAMES", "ContextForest", "ContextState", "epoch_seconds"]
