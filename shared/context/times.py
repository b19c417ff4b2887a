"""Event times as the kernel takes them: seconds since the epoch, from RFC 3339 timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt


def epoch_seconds(timestamps: Sequence[str]) -> npt.NDArray[np.float64]:
    """Each timestamp (already validated RFC 3339 with a zone) as POSIX seconds."""
    parse = datetime.fromisoformat
    if len(timestamps) == 1:  # a /score record: no generator to start
        return np.array([parse(timestamps[0].upper().replace(" ", "T")).timestamp()])
    return np.fromiter(
        (parse(t.upper().replace(" ", "T")).timestamp() for t in timestamps),
        np.float64,
        len(timestamps),
    )
