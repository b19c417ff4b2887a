"""Event times as the kernel takes them: seconds since the epoch, from RFC 3339 timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt


def epoch_seconds(timestamps: Sequence[str]) -> npt.NDArray[np.float64]:
    """Each timestamp (already validated RFC 3339 with a zone) as POSIX seconds."""
    parse = datetime.fromisoformat
    # (a list, not a generator: as fast for a batch, and for one /score record no generator
    # to start)
    return np.array(
        [parse(t.upper().replace(" ", "T")).timestamp() for t in timestamps], dtype=np.float64
    )
