# One concern, the per-record loop numba compiles as one function, keeps this module past 300 lines
# (its helpers stay in this file: numba's cache sees changes to the kernel's own file only).
"""The per-record context kernel: a vehicle's recent readings in, its evidence vector out.

One loop over records in stream order, compiled by numba when it can be imported (plain
Python otherwise, with the same arithmetic). Each vehicle has a slot in ring buffers of its
last ``W`` readings (values, event times, source offsets). For each record and sensor the
kernel measures six kinds of evidence against what the model learned (:mod:`.params`):

``level``        the reading against the vehicle's own baseline (median, robust scale), and
                 against the median of its recent readings, whichever is nearer; from
                 revision 4 a reading below both is normalised against how far below them
                 training went, and any other against how far from them (a power, a flow
                 or a speed that never goes far under its floor: a reading under it is as
                 unusual as it is, however far the readings above it range);
``consistency``  the reading against what the other sensors predict for it, and against the
                 median of its recent deviations, whichever is nearer (0 for one sensor);
                 from revision 6 at least its swing: the smaller of its largest deviation
                 above and below the prediction over the last eight records, no more than
                 the larger of its last two (a loose connector throws a sensor both ways);
``motion``       for a reading that repeats the previous one exactly: the step the other
                 sensors predict for it (from their own steps), that it did not
                 make: a sensor frozen while the sensors it follows move (0 for one sensor;
                 revision 2: a sensor's step is the nearer of its steps from the previous
                 reading and the one before, so one stepping back after a spike is still);
``sustained``    the smallest of the last three same-signed deviations (consistency, or level
                 for one sensor): a drift persists where noise does not; and (revision 2)
                 the same of the three against the median deviation of the records before
                 them, whichever is nearer: a vehicle that settled in another regime (a
                 season, a flight phase) deviates steadily from what it learned, but not
                 from its own recent past, while a drift keeps moving away from both;
``change``       the reading against the median of the vehicle's last five readings and
                 against the median of the readings before those, whichever is nearer (so
                 the step back to normal after a fault is no change);
``noise``        the median absolute step over the last six steps, against its usual size;
                 from revision 5 in the sensor's usual steps (before, in its level's
                 scale, a smooth sensor's noise stayed under the normalisation's floor),
                 and no more than the median of the last three steps, so that the
                 evidence ends two records after the noise does, not four or five;
``flat``         how long the reading has repeated exactly, against the longest run of
                 repeats the sensor showed in training (zero and non-zero values apart);
                 from revision 3 the run is counted over the vehicle's whole history, where
                 before it could not outgrow the window (a sensor that repeats for 40
                 readings normally could never look stuck).

Each is normalised per sensor to the training data's own scale (``(e - q50) / (q99 - q50)``,
with a floor), so 1 means "as unusual as the rarest hundredth of training"; the kernel keeps,
per kind, the largest over the sensors and which sensor it was. The evidence vector is those
six maxima and their overall maximum: what the model's IsolationForest scores.

History is what the vehicle sent before, in its slot, within ``gap`` seconds of event time of
its previous reading (a longer silence starts it afresh) and, for streamed records, no more
than ``horizon`` offsets back in the same partition: a rule that depends on the record alone,
so a worker that rebuilds the slots by re-reading the partition's tail computes the same
evidence as one that never stopped. Runs of repeats follow the same rule: each (vehicle,
sensor) counts its run since its history last broke, and a streamed record's run counts no
more of the vehicle's readings than lie within ``horizon`` offsets, which a first-in,
first-out queue of the partition's last offsets keeps per vehicle.

The medians of a sensor's recent readings (level's, and change's of the readings before the
last five) come from a sorted copy of its readings in the slot, in which each new reading
slides from the place of the one it replaces, instead of a selection over the readings for
every record and sensor (two-thirds of the kernel's former cost); where the horizon leaves
the history shorter than the slot, a selection over the history serves. Both give the same
order statistics, so the evidence is the same to the bit.
"""

from __future__ import annotations

import math
import os
import tempfile
from typing import Any

import numpy as np
import numpy.typing as npt

os.environ.setdefault(
    "NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "vehicle-anomaly-numba")
)

try:
    import numba
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None  # type: ignore[assignment]  # optional: the Python loop serves without it

KINDS: tuple[str, ...] = (
    "level",
    "consistency",
    "motion",
    "sustained",
    "change",
    "noise",
    "flat",
)
LEVEL, CONSISTENCY, MOTION, SUSTAINED, CHANGE, NOISE, FLAT = range(7)
N_KINDS = len(KINDS)
WINDOW = 32  # readings kept per vehicle
CHANGE_SPAN = 5  # previous readings whose median the change is measured against
NOISE_SPAN = 6  # steps whose median size is the noise
SUSTAIN_SPAN = 3  # records a deviation must persist for the sustained evidence
LOCAL_SPAN = 8  # previous records whose median deviation a new one is also judged against
LOCAL_MIN = 4  # history needed before the local judgement applies
# Revisions of the evidence: a model keeps the one it was trained with (models pickled before
# revisions existed are 1). 2: sustained is also judged against the recent deviations, and
# motion takes the others' steps robustly. 3: flat counts a run over the whole history.
# 4: level's two tails are normalised apart (``q50`` and ``den`` have a row for the one below).
# 5: noise is measured in the sensor's usual steps (``nscale`` is the step scale, where it
# was 1), and is at most the median of the last three steps. 6: consistency is also the
# swing of the last SWING_SPAN records' deviations (a loose connector's noise).
REVISION = 6
SWING_SPAN = 8  # records whose deviations of both signs are consistency's swing (<= LOCAL_SPAN)
SORT_FEW = 8  # a median of at most this many values sorts them
LEVEL_BELOW = N_KINDS  # the row of q50 and den that normalises a level below the baseline

Matrix = npt.NDArray[np.float64]


def _median(values: Matrix, count: int) -> float:
    # The median of values[:count], reordering them in place (every caller fills a scratch
    # buffer just before): a quickselect of the upper middle, and for an even count the
    # largest of the lower half, which the partition has put below it. Exact, as a sort is.
    # A handful of values are sorted instead (faster than selecting among so few).
    if count <= SORT_FEW:
        _sort_few(values, count)
        return _middle(values, count)
    half = count // 2
    lo = 0
    hi = count - 1
    while lo < hi:
        pivot = values[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if half <= j:
            hi = j
        elif half >= i:
            lo = i
        else:
            break
    upper = values[half]
    if count % 2 == 1:
        return float(upper)
    lower = values[0]
    for k in range(1, half):
        lower = max(lower, values[k])
    return float((lower + upper) / 2.0)


def _middle(ordered: Matrix, count: int) -> float:
    # The median of ordered[:count], already in ascending order: the same order statistics,
    # and the same arithmetic, as _median's selection.
    half = count // 2
    if count % 2 == 1:
        return float(ordered[half])
    return float((ordered[half - 1] + ordered[half]) / 2.0)


def _median_without(
    srt: npt.NDArray[np.float64], v: int, s: int, count: int, skip: Matrix, skipped: int
) -> float:
    # The median of the sorted window of ``count`` readings less the ``skipped`` values of
    # ``skip`` (sorted, and among the window's). The value of rank r among the rest sits at
    # srt[r + k], k the number of skipped values at or below it: starting from srt[r], each
    # skipped value no greater than the one reached moves the place one on. So a median
    # costs at most ``skipped`` steps, not a walk to the window's middle (equal values are
    # interchangeable: whichever copy is passed over, the values reached are the same).
    half = (count - skipped) // 2
    odd = (count - skipped) % 2 == 1
    k = 0
    place = half if odd else half - 1  # the rank of the middle, or of the lower middle
    while k < skipped and skip[k] <= srt[v, s, place]:
        place += 1
        k += 1
    if odd:
        return float(srt[v, s, place])
    lower = srt[v, s, place]
    place += 1  # the next rank: on from the place reached, past what is still skipped
    while k < skipped and skip[k] <= srt[v, s, place]:
        place += 1
        k += 1
    return float((lower + srt[v, s, place]) / 2.0)


def _sort_five(values: Matrix) -> None:
    # values[:5] in ascending order: the 9 comparators of an optimal network for five, in
    # five layers (the last five readings of every record's change)
    a0, a1, a2, a3, a4 = values[0], values[1], values[2], values[3], values[4]
    a0, a3 = (a0, a3) if a0 < a3 else (a3, a0)
    a1, a4 = (a1, a4) if a1 < a4 else (a4, a1)
    a0, a2 = (a0, a2) if a0 < a2 else (a2, a0)
    a1, a3 = (a1, a3) if a1 < a3 else (a3, a1)
    a0, a1 = (a0, a1) if a0 < a1 else (a1, a0)
    a2, a4 = (a2, a4) if a2 < a4 else (a4, a2)
    a1, a2 = (a1, a2) if a1 < a2 else (a2, a1)
    a3, a4 = (a3, a4) if a3 < a4 else (a4, a3)
    a2, a3 = (a2, a3) if a2 < a3 else (a3, a2)
    values[0] = a0
    values[1] = a1
    values[2] = a2
    values[3] = a3
    values[4] = a4


def _sort_six(values: Matrix) -> None:
    # values[:6] in ascending order: the 12 comparators of an optimal network for six, in
    # five layers (the last six steps of every record's noise)
    a0, a1, a2, a3, a4, a5 = values[0], values[1], values[2], values[3], values[4], values[5]
    a0, a5 = (a0, a5) if a0 < a5 else (a5, a0)
    a1, a3 = (a1, a3) if a1 < a3 else (a3, a1)
    a2, a4 = (a2, a4) if a2 < a4 else (a4, a2)
    a1, a2 = (a1, a2) if a1 < a2 else (a2, a1)
    a3, a4 = (a3, a4) if a3 < a4 else (a4, a3)
    a0, a3 = (a0, a3) if a0 < a3 else (a3, a0)
    a2, a5 = (a2, a5) if a2 < a5 else (a5, a2)
    a0, a1 = (a0, a1) if a0 < a1 else (a1, a0)
    a2, a3 = (a2, a3) if a2 < a3 else (a3, a2)
    a4, a5 = (a4, a5) if a4 < a5 else (a5, a4)
    a1, a2 = (a1, a2) if a1 < a2 else (a2, a1)
    a3, a4 = (a3, a4) if a3 < a4 else (a4, a3)
    values[0] = a0
    values[1] = a1
    values[2] = a2
    values[3] = a3
    values[4] = a4
    values[5] = a5


def _sort_few(values: Matrix, count: int) -> None:
    # values[:count] in ascending order, in place, for count <= SORT_FEW: the values (padded
    # with +inf) go through a sorting network of eight, compare-exchanges with no branch to
    # mispredict (an insertion sort's branches cost more than its few moves). The values
    # are the same, so every order statistic is; only equal values may trade places, which
    # no caller can tell apart (a median of +0 and -0 is measured through abs or < 0).
    # The two counts nearly every record sorts have networks of their own, of fewer
    # comparators than eight padded with +inf.
    if count == 5:
        _sort_five(values)
        return
    if count == 6:
        _sort_six(values)
        return
    inf = math.inf
    a0 = values[0] if count > 0 else inf
    a1 = values[1] if count > 1 else inf
    a2 = values[2] if count > 2 else inf
    a3 = values[3] if count > 3 else inf
    a4 = values[4] if count > 4 else inf
    a5 = values[5] if count > 5 else inf
    a6 = values[6] if count > 6 else inf
    a7 = values[7] if count > 7 else inf
    # (the 19 comparators of an optimal network for eight, in six layers)
    a0, a2 = (a0, a2) if a0 < a2 else (a2, a0)
    a1, a3 = (a1, a3) if a1 < a3 else (a3, a1)
    a4, a6 = (a4, a6) if a4 < a6 else (a6, a4)
    a5, a7 = (a5, a7) if a5 < a7 else (a7, a5)
    a0, a4 = (a0, a4) if a0 < a4 else (a4, a0)
    a1, a5 = (a1, a5) if a1 < a5 else (a5, a1)
    a2, a6 = (a2, a6) if a2 < a6 else (a6, a2)
    a3, a7 = (a3, a7) if a3 < a7 else (a7, a3)
    a0, a1 = (a0, a1) if a0 < a1 else (a1, a0)
    a2, a3 = (a2, a3) if a2 < a3 else (a3, a2)
    a4, a5 = (a4, a5) if a4 < a5 else (a5, a4)
    a6, a7 = (a6, a7) if a6 < a7 else (a7, a6)
    a2, a4 = (a2, a4) if a2 < a4 else (a4, a2)
    a3, a5 = (a3, a5) if a3 < a5 else (a5, a3)
    a1, a4 = (a1, a4) if a1 < a4 else (a4, a1)
    a3, a6 = (a3, a6) if a3 < a6 else (a6, a3)
    a1, a2 = (a1, a2) if a1 < a2 else (a2, a1)
    a3, a4 = (a3, a4) if a3 < a4 else (a4, a3)
    a5, a6 = (a5, a6) if a5 < a6 else (a6, a5)
    if count > 0:
        values[0] = a0
    if count > 1:
        values[1] = a1
    if count > 2:
        values[2] = a2
    if count > 3:
        values[3] = a3
    if count > 4:
        values[4] = a4
    if count > 5:
        values[5] = a5
    if count > 6:
        values[6] = a6
    if count > 7:
        values[7] = a7


def _sorted_replace(
    srt: npt.NDArray[np.float64], v: int, s: int, count: int, old: float, new: float, evict: bool
) -> None:
    # The sorted window of ``count`` readings with ``old`` replaced by ``new`` (when
    # ``evict``; else with ``new`` added at the end): ``new`` slides from the place it takes
    # to its own, so a reading near the one it replaces moves few others.
    W = WINDOW
    if evict:
        lo = 0
        hi = count
        while lo < hi:
            mid = (lo + hi) // 2
            if srt[v, s, mid] < old:
                lo = mid + 1
            else:
                hi = mid
        if lo >= count or srt[v, s, lo] != old:
            # not found by its order (a NaN, which no service lets through): replace it as
            # found by a scan, or the last one, so that the window keeps its size
            lo = count - 1
            for k in range(count):
                if srt[v, s, k] == old or (srt[v, s, k] != srt[v, s, k] and old != old):
                    lo = k
                    break
        size = count
        q = lo
    else:
        size = min(count + 1, W)
        q = size - 1
    while q + 1 < size and srt[v, s, q + 1] < new:
        srt[v, s, q] = srt[v, s, q + 1]
        q += 1
    while q > 0 and srt[v, s, q - 1] > new:
        srt[v, s, q] = srt[v, s, q - 1]
        q -= 1
    srt[v, s, q] = new


def _deviations(
    row: Matrix,
    b: int,
    med: Matrix,
    scl: Matrix,
    coef: Matrix,
    icpt: Matrix,
    rscale: Matrix,
    z: Matrix,
    dev: Matrix,
) -> None:
    # A reading standardised against its vehicle's baseline, and each sensor's deviation from
    # what the others predict (the standardised reading itself for a machine of one sensor).
    F = row.shape[0]
    for s in range(F):
        z[s] = (row[s] - med[b, s]) / scl[b, s]
    for s in range(F):
        if F > 1:
            p = icpt[s]
            for j in range(F):
                p += coef[s, j] * z[j]
            dev[s] = (z[s] - p) / rscale[s]
        else:
            dev[s] = z[s]


def _history(
    v: int,
    t: float,
    offset: int,
    buf_time: Matrix,
    buf_offset: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
    gap: float,
    horizon: int,
) -> int:
    # How many of the slot's newest readings count as this record's history: none after a
    # silence longer than ``gap``, and for a streamed record none more than ``horizon``
    # offsets back.
    W = WINDOW
    c = count[v]
    h = min(c, W)
    if h > 0 and t - buf_time[v, (c - 1) % W] > gap:
        h = 0
    if h > 0 and offset >= 0:
        keep = 0
        for k in range(h):
            if buf_offset[v, (c - 1 - k) % W] >= offset - horizon:
                keep += 1
            else:
                break
        h = keep
    return int(h)


def _append(
    v: int,
    row: Matrix,
    t: float,
    offset: int,
    h: int,
    buf: npt.NDArray[np.float64],
    buf_time: Matrix,
    buf_offset: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
    srt: npt.NDArray[np.float64],
) -> None:
    # The record joins its slot; with its history broken (h == 0) the slot starts again here.
    # ``srt`` keeps each sensor's readings in the slot sorted: the reading it overwrites out,
    # the new one in.
    W = WINDOW
    c = count[v]
    slot = c % W
    for s in range(row.shape[0]):
        if h == 0:
            srt[v, s, 0] = row[s]
        else:
            _sorted_replace(srt, v, s, min(c, W), buf[v, slot, s], row[s], c >= W)
    for s in range(row.shape[0]):
        buf[v, slot, s] = row[s]
    buf_time[v, slot] = t
    buf_offset[v, slot] = offset
    if h == 0 and c > 0:
        for s in range(row.shape[0]):
            buf[v, 0, s] = row[s]
        buf_time[v, 0] = t
        buf_offset[v, 0] = offset
        count[v] = 1
    else:
        count[v] = c + 1


def _track(
    v: int,
    row: Matrix,
    offset: int,
    h: int,
    horizon: int,
    buf: npt.NDArray[np.float64],
    count: npt.NDArray[np.int64],
    runs: npt.NDArray[np.int64],
    inh: npt.NDArray[np.int64],
    fifo: npt.NDArray[np.int64],
    fifo_pos: npt.NDArray[np.int64],
) -> None:
    # Before the record joins its slot: each sensor's run of equal readings (1 after a break
    # in the history), and for a streamed record the partition's queue of (offset, slot)
    # pairs within ``horizon`` offsets of it, with ``inh`` the vehicle's count in that queue.
    W = WINDOW
    c = count[v]
    for s in range(row.shape[0]):
        if h > 0 and row[s] == buf[v, (c - 1) % W, s]:
            runs[v, s] += 1
        else:
            runs[v, s] = 1
    if offset < 0:
        return
    size = fifo.shape[0]
    head = fifo_pos[0]
    held = fifo_pos[1]
    while held > 0 and fifo[head, 0] < offset - horizon:
        inh[fifo[head, 1]] -= 1
        head += 1
        if head == size:  # (a compare, not a division by a size known only at run time)
            head = 0
        held -= 1
    tail = head + held
    if tail >= size:
        tail -= size
    fifo[tail, 0] = offset
    fifo[tail, 1] = v
    inh[v] += 1
    fifo_pos[0] = head
    fifo_pos[1] = held + 1


def _derive(
    slots: npt.NDArray[np.int64],
    base: npt.NDArray[np.int64],
    times: Matrix,
    offsets: npt.NDArray[np.int64],
    X: Matrix,
    buf: npt.NDArray[np.float64],
    buf_time: Matrix,
    buf_offset: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
    srt: npt.NDArray[np.float64],
    devs: npt.NDArray[np.float64],
    med: Matrix,
    scl: Matrix,
    coef: Matrix,
    icpt: Matrix,
    rscale: Matrix,
    mcoef: Matrix,
    micpt: Matrix,
    mscale: Matrix,
    dscale: Matrix,
    nscale: Matrix,
    qrun_zero: Matrix,
    qrun_other: Matrix,
    q50: Matrix,
    den: Matrix,
    gap: float,
    horizon: int,
    revision: int,
    runs: npt.NDArray[np.int64],
    inh: npt.NDArray[np.int64],
    fifo: npt.NDArray[np.int64],
    fifo_pos: npt.NDArray[np.int64],
    out: Matrix,
    lead: npt.NDArray[np.int64],
    raw_out: npt.NDArray[np.float64],
) -> None:
    n, F = X.shape
    W = WINDOW
    z = np.empty(F)
    dev = np.empty(F)
    past = np.empty((LOCAL_SPAN, F))
    zp = np.empty(F)
    zpp = np.empty(F)
    moved = np.empty(F)
    motion = np.empty(F)
    ev = np.empty(N_KINDS)
    norm = np.empty(N_KINDS)
    scratch = np.empty(W)
    recent = np.empty(CHANGE_SPAN)
    for i in range(n):
        v = slots[i]
        b = base[i]
        c = count[v]
        h = _history(v, times[i], offsets[i], buf_time, buf_offset, count, gap, horizon)
        # the whole slot is the history (no horizon cut it short): its medians come from
        # the sorted window
        whole = h == min(c, W)
        _track(v, X[i], offsets[i], h, horizon, buf, count, runs, inh, fifo, fifo_pos)
        _deviations(X[i], b, med, scl, coef, icpt, rscale, z, dev)
        back = min(h, LOCAL_SPAN)
        for k in range(back):
            # (the deviations each held reading had when it arrived: the same arithmetic on
            # the same values, kept rather than computed again for each later record)
            held = (c - 1 - k) % W
            for j in range(F):
                past[k, j] = devs[v, held, 1, j]
            if k == 0:
                for j in range(F):
                    zp[j] = devs[v, held, 0, j]
            elif k == 1:
                for j in range(F):
                    zpp[j] = devs[v, held, 0, j]
        for j in range(F):
            moved[j] = z[j] - zp[j] if h > 0 else 0.0
            if revision >= 2 and h > 1 and abs(z[j] - zpp[j]) < abs(moved[j]):
                # a sensor stepping back after a one-record fault has not moved: of its step
                # from the previous reading and from the one before, the nearer counts
                moved[j] = z[j] - zpp[j]
        for s in range(F):
            if F > 1 and h > 0:
                # the step of sensor s predicted from the others' steps (and, in models of
                # revision 1, every level: later models fit none, their weights are zero)
                p = micpt[s]
                for j in range(F):
                    if j != s:
                        p += mcoef[s, j] * moved[j]
                    if revision < 2:
                        p += mcoef[s, F + j] * z[j]
                motion[s] = ((z[s] - zp[s]) - p) / mscale[s]
            else:
                motion[s] = 0.0
        for k in range(N_KINDS):
            out[i, k] = -math.inf
            lead[i, k] = 0
        for s in range(F):
            # Level and consistency count as far as the record is unusual both for the vehicle
            # as learned and for its recent readings: operation that moved to a new regime (a
            # load, a season, a flight phase) stops counting once the history has moved too,
            # while a fault stands out against both.
            level = abs(z[s])
            below = revision >= 4 and z[s] < 0.0  # (revision 4's lower tail)
            if h >= LOCAL_MIN:
                if whole:
                    recent_median = _middle(srt[v, s], h)
                else:
                    for k in range(h):
                        scratch[k] = buf[v, (c - 1 - k) % W, s]
                    recent_median = _median(scratch, h)
                local = (X[i, s] - recent_median) / scl[b, s]
                level = min(level, abs(local))
                below = below and local < 0.0  # below both, or the upper tail's rule
            ev[LEVEL] = level
            consistency = abs(dev[s]) if F > 1 else 0.0
            if F > 1 and back >= LOCAL_MIN:
                for k in range(back):
                    scratch[k] = past[k, s]
                consistency = min(consistency, abs(dev[s] - _median(scratch, back)))
            if revision >= 6 and F > 1 and back >= LOCAL_MIN:
                # the swing: a loose connector throws a sensor to both sides of what the
                # others predict, a drift, a stuck or a dead sensor to one, a spike once. Its
                # size is the smaller of the largest deviation above and below over the last
                # SWING_SPAN records, so a quiet reading amid the noise still counts; and no
                # more than the larger of the last two, so it ends a record after the noise.
                up = max(dev[s], 0.0)
                down = min(dev[s], 0.0)
                for k in range(min(back, SWING_SPAN - 1)):
                    up = max(up, past[k, s])
                    down = min(down, past[k, s])
                swing = min(up, -down, max(abs(dev[s]), abs(past[0, s])))
                consistency = max(consistency, swing)
            ev[CONSISTENCY] = consistency
            # motion counts for a sensor that repeated its last reading: frozen while the
            # sensors it follows moved (a jump alone is consistency's and change's to see,
            # and the step back after a fault is no evidence at all)
            ev[MOTION] = abs(motion[s]) if h > 0 and X[i, s] == buf[v, (c - 1) % W, s] else 0.0
            # sustained: the smallest |deviation| over this and the previous records, when
            # they share a sign (a deviation that flips sign is noise, not a drift)
            sustained = abs(dev[s])
            if back >= SUSTAIN_SPAN - 1:
                for k in range(SUSTAIN_SPAN - 1):
                    if past[k, s] * dev[s] <= 0.0:
                        sustained = 0.0
                        break
                    sustained = min(sustained, abs(past[k, s]))
            else:
                sustained = 0.0
            older = back - (SUSTAIN_SPAN - 1)
            if revision >= 2 and sustained > 0.0 and older >= 3:
                for k in range(older):
                    scratch[k] = past[SUSTAIN_SPAN - 1 + k, s]
                ref = _median(scratch, older)
                local = dev[s] - ref
                for k in range(SUSTAIN_SPAN - 1):
                    if (past[k, s] - ref) * local <= 0.0:
                        local = 0.0
                        break
                    local = math.copysign(min(abs(local), abs(past[k, s] - ref)), local)
                sustained = min(sustained, abs(local))
            ev[SUSTAINED] = sustained
            if h > 0:
                span = min(h, CHANGE_SPAN)
                for k in range(span):
                    recent[k] = buf[v, (c - 1 - k) % W, s]
                _sort_few(recent, span)  # (left sorted for _median_without)
                near = _middle(recent, span)
                step = abs(X[i, s] - near)
                older = h - span
                if older >= 3:
                    if whole:
                        far = _median_without(srt, v, s, h, recent, span)
                    else:
                        for k in range(older):
                            scratch[k] = buf[v, (c - 1 - span - k) % W, s]
                        far = _median(scratch, older)
                    step = min(step, abs(X[i, s] - far))
                ev[CHANGE] = step / scl[b, s] / dscale[s]
            else:
                ev[CHANGE] = 0.0
            steps = min(h, NOISE_SPAN)
            if steps >= 3:
                # The steps' sizes are divided by the scale only once their middles are
                # known: a division by a positive number keeps their order, so the order
                # statistics of the quotients are the quotients of the order statistics,
                # to the bit, for two or three divisions instead of six.
                unit = scl[b, s]
                current = X[i, s]
                for k in range(steps):
                    previous = buf[v, (c - 1 - k) % W, s]
                    scratch[k] = abs(current - previous)
                    current = previous
                latest = 0.0
                if revision >= 5:
                    # the median of the last three steps, taken before the median of all
                    # of them reorders the scratch: the trail of a noise that has ended
                    # is as short as three steps make it
                    a, b3, c3 = scratch[0], scratch[1], scratch[2]
                    latest = max(min(a, b3), min(max(a, b3), c3)) / unit
                _sort_few(scratch, steps)  # (steps <= NOISE_SPAN <= SORT_FEW)
                half = steps // 2
                if steps % 2 == 1:
                    noise = scratch[half] / unit
                else:
                    noise = (scratch[half - 1] / unit + scratch[half] / unit) / 2.0
                if revision >= 5:
                    noise = min(noise, latest)
                ev[NOISE] = noise / nscale[s]
            else:
                ev[NOISE] = 0.0
            # the run within the window, as before revision 3; from revision 3 also the part
            # of the whole run (no more of the vehicle's readings than lie within the
            # horizon) that outlasts both the window and the longest normal run. A quantised
            # sensor's long normal runs then weigh as they did, and a stuck one keeps rising.
            run = runs[v, s]
            if offsets[i] >= 0:
                run = min(run, inh[v])
            seen = min(run, h + 1)
            longest = qrun_zero[s] if X[i, s] == 0.0 else qrun_other[s]
            ev[FLAT] = (seen - 1.0) / longest
            if revision >= 3 and run > seen:
                ev[FLAT] += max(0.0, run - max(longest, seen)) / longest
            if raw_out.shape[0] > 0:
                for k in range(N_KINDS):
                    raw_out[i, k, s] = ev[k]
                if below:  # (signed: the normalisation learns the two tails apart)
                    raw_out[i, LEVEL, s] = -ev[LEVEL]
            for k in range(N_KINDS):
                norm[k] = (ev[k] - q50[k, s]) / den[k, s]
            if below:
                norm[LEVEL] = (ev[LEVEL] - q50[LEVEL_BELOW, s]) / den[LEVEL_BELOW, s]
            for k in range(N_KINDS):
                if norm[k] > out[i, k]:
                    out[i, k] = norm[k]
                    lead[i, k] = s
        top = out[i, 0]
        for k in range(1, N_KINDS):
            top = max(top, out[i, k])
        out[i, N_KINDS] = top
        _append(v, X[i], times[i], offsets[i], h, buf, buf_time, buf_offset, count, srt)
        _keep(v, (count[v] - 1) % W, z, dev, devs)  # (its place, as _append left it)


def _remember(
    slots: npt.NDArray[np.int64],
    times: Matrix,
    offsets: npt.NDArray[np.int64],
    X: Matrix,
    buf: npt.NDArray[np.float64],
    buf_time: Matrix,
    buf_offset: npt.NDArray[np.int64],
    count: npt.NDArray[np.int64],
    srt: npt.NDArray[np.float64],
    devs: npt.NDArray[np.float64],
    base: npt.NDArray[np.int64],
    med: Matrix,
    scl: Matrix,
    coef: Matrix,
    icpt: Matrix,
    rscale: Matrix,
    gap: float,
    horizon: int,
    runs: npt.NDArray[np.int64],
    inh: npt.NDArray[np.int64],
    fifo: npt.NDArray[np.int64],
    fifo_pos: npt.NDArray[np.int64],
) -> None:
    # What _derive leaves in the ring buffers, without the evidence: a rebuild needs only the
    # histories (and their deviations), and the same rules keep them identical to a run that
    # scored every record.
    F = X.shape[1]
    z = np.empty(F)
    dev = np.empty(F)
    for i in range(X.shape[0]):
        v = slots[i]
        h = _history(v, times[i], offsets[i], buf_time, buf_offset, count, gap, horizon)
        _track(v, X[i], offsets[i], h, horizon, buf, count, runs, inh, fifo, fifo_pos)
        _append(v, X[i], times[i], offsets[i], h, buf, buf_time, buf_offset, count, srt)
        _deviations(X[i], base[i], med, scl, coef, icpt, rscale, z, dev)
        _keep(v, (count[v] - 1) % WINDOW, z, dev, devs)


def _keep(v: int, held: int, z: Matrix, dev: Matrix, devs: npt.NDArray[np.float64]) -> None:
    # A held reading's deviations, beside it (``held``: its place in the slot).
    for j in range(z.shape[0]):
        devs[v, held, 0, j] = z[j]
        devs[v, held, 1, j] = dev[j]


def _refresh(
    count: npt.NDArray[np.int64],
    buf: npt.NDArray[np.float64],
    devs: npt.NDArray[np.float64],
    base: npt.NDArray[np.int64],
    med: Matrix,
    scl: Matrix,
    coef: Matrix,
    icpt: Matrix,
    rscale: Matrix,
) -> None:
    # Every held reading's deviations under another model's parameters (a model swap).
    F = buf.shape[2]
    z = np.empty(F)
    dev = np.empty(F)
    for v in range(base.shape[0]):
        for k in range(min(count[v], WINDOW)):
            held = (count[v] - 1 - k) % WINDOW
            _deviations(buf[v, held], base[v], med, scl, coef, icpt, rscale, z, dev)
            _keep(v, held, z, dev, devs)


if numba is not None:
    # numba resolves the helpers by their module names when it compiles the kernels, so those
    # names become the compiled functions; with every piece cached on disk, a new process
    # loads the kernels instead of compiling them again.
    _jit = numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
    _median = _jit(_median)
    _middle = _jit(_middle)
    _median_without = _jit(_median_without)
    _sort_five = _jit(_sort_five)
    _sort_six = _jit(_sort_six)
    _sort_few = _jit(_sort_few)
    _sorted_replace = _jit(_sorted_replace)
    _deviations = _jit(_deviations)
    _history = _jit(_history)
    _append = _jit(_append)
    _track = _jit(_track)
    _keep = _jit(_keep)
    derive_kernel: Any = _jit(_derive)
    remember_kernel: Any = _jit(_remember)
    refresh_kernel: Any = _jit(_refresh)
else:  # pragma: no cover
    derive_kernel = _derive
    remember_kernel = _remember
    refresh_kernel = _refresh
