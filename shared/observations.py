"""The former name of :mod:`shared.worker_figures` (the workers' drift and shadow figures).

Kept only while ``consumer/app.py`` and ``bench/insight.py`` still import it; import
:mod:`shared.worker_figures` instead.
"""

from shared.worker_figures import (
    DIRECTORY,
    DRIFT,
    MAX_AGE_SECONDS,
    SHADOW,
    ObservationStore,
    worker_id,
)

__all__ = ["DIRECTORY", "DRIFT", "MAX_AGE_SECONDS", "SHADOW", "ObservationStore", "worker_id"]
