"""Per-vehicle recent readings: the only state a context model needs, and all of it rebuildable.

A :class:`ContextState` holds, per vehicle, ring buffers of its last ``WINDOW`` readings with
their event times and (for streamed records) source offsets, each sensor's readings in the
slot sorted, and per sensor the length of its run of equal readings; for streamed records, a
queue of the partition's offsets within the horizon, and per vehicle how many of them are its
own. It holds no model parameters: the evidence is computed from the raw readings with
whichever model scores them, so a model swap needs no rebuild, and re-reading a partition's
last ``horizon`` offsets rebuilds exactly what a worker that never stopped would hold
(:mod:`.kernel` says why). Each held reading's deviations (its standardised value and its
departure from what the other sensors predict) are kept beside it for the model that last
read the state, so that the records after it need not compute them again; a model with
other parameters computes them again for every held reading (a few milliseconds for a
thousand vehicles) before it derives, so its evidence is what a state of its own would give.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.context.kernel import N_KINDS, WINDOW, derive_kernel, refresh_kernel, remember_kernel
from shared.context.params import ContextParams

Matrix = npt.NDArray[np.float64]
_NO_RAW = np.empty((0, 0, 0))
# every array a state holds (what a copy copies)
_ARRAYS = (
    "values",
    "times",
    "sorted",
    "deviations",
    "offsets",
    "count",
    "runs",
    "in_horizon",
    "fifo",
    "fifo_pos",
)


class ContextState:
    """Ring buffers of the recent readings of the vehicles seen, for ``n_sensors`` sensors."""

    def __init__(self, n_sensors: int, *, capacity: int = 64) -> None:
        self.n_sensors = n_sensors
        self.slots: dict[str, int] = {}
        capacity = max(1, capacity)
        self.values = np.zeros((capacity, WINDOW, n_sensors))
        self.times = np.zeros((capacity, WINDOW))
        # each sensor's readings in the slot, sorted (the recent medians without a selection)
        self.sorted = np.zeros((capacity, n_sensors, WINDOW))
        # each held reading's standardised value and deviation (rows 0 and 1) under the
        # parameters of ``_deviations_of``, which the next records read instead of computing
        # them again; recomputed when a model with other parameters derives (a swap)
        self.deviations = np.zeros((capacity, WINDOW, 2, n_sensors))
        self._deviations_of: ContextParams | None = None
        self.offsets = np.empty((capacity, WINDOW), dtype=np.int64)
        self.offsets.fill(-1)  # (np.full takes a microsecond longer)
        self.count = np.zeros(capacity, dtype=np.int64)
        self.runs = np.zeros((capacity, n_sensors), dtype=np.int64)
        self.in_horizon = np.zeros(capacity, dtype=np.int64)
        # (offset, slot) of the streamed records within the horizon, oldest first from
        # fifo_pos[0], fifo_pos[1] of them; sized for the horizon when offsets first arrive
        self.fifo = np.zeros((0, 2), dtype=np.int64)
        self.fifo_pos = np.zeros(2, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.slots)

    def _slots_for(self, vehicle_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        slots = self.slots
        # (a list, not a generator: as fast for a batch, and for one /score record no
        # generator to start)
        found = np.array([slots.setdefault(v, len(slots)) for v in vehicle_ids], dtype=np.int64)
        if len(slots) > self.count.shape[0]:
            self._grow(len(slots))
        return found

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * self.count.shape[0])
        extra = size - self.count.shape[0]
        self.values = np.concatenate([self.values, np.zeros((extra, WINDOW, self.n_sensors))])
        self.times = np.concatenate([self.times, np.zeros((extra, WINDOW))])
        self.sorted = np.concatenate([self.sorted, np.zeros((extra, self.n_sensors, WINDOW))])
        self.deviations = np.concatenate(
            [self.deviations, np.zeros((extra, WINDOW, 2, self.n_sensors))]
        )
        self.offsets = np.concatenate([self.offsets, np.full((extra, WINDOW), -1, dtype=np.int64)])
        self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])
        self.runs = np.concatenate([self.runs, np.zeros((extra, self.n_sensors), dtype=np.int64)])
        self.in_horizon = np.concatenate([self.in_horizon, np.zeros(extra, dtype=np.int64)])

    def _queue_for(self, horizon: int) -> None:
        # The queue holds at most horizon + 1 records (offsets in a partition are distinct);
        # grown in order, oldest first, when a larger horizon arrives.
        size = horizon + 1
        if self.fifo.shape[0] >= size:
            return
        head, held = int(self.fifo_pos[0]), int(self.fifo_pos[1])
        kept = self.fifo[(head + np.arange(held)) % max(1, self.fifo.shape[0])]
        fifo = np.zeros((size, 2), dtype=np.int64)
        fifo[:held] = kept
        self.fifo = fifo
        self.fifo_pos[:] = (0, held)

    def derive(
        self,
        params: ContextParams,
        vehicle_ids: Sequence[str],
        times: Matrix,
        X: Matrix,
        offsets: npt.NDArray[np.int64] | None = None,
        *,
        raw: Matrix | None = None,
    ) -> tuple[Matrix, npt.NDArray[np.int64]]:
        """The evidence of each record (in the order given) and, per kind, its leading sensor.

        Each record is added to its vehicle's history after its own evidence is computed.
        ``offsets`` (streamed records: their source offsets in one partition) bounds how far
        back history reaches; ``raw``, when given (rows, kinds, sensors), receives the
        per-sensor evidence before normalisation (training uses it).
        """
        n = X.shape[0]
        if X.ndim != 2 or X.shape[1] != self.n_sensors:
            raise ValueError(f"expected {self.n_sensors} sensors, got shape {X.shape}")
        evidence = np.empty((n, N_KINDS + 1))
        lead = np.zeros((n, N_KINDS), dtype=np.int64)
        if n == 0:
            return evidence, lead
        self._deviations_for(params)
        slots = self._slots_for(vehicle_ids)
        if offsets is None:
            where = np.empty(n, dtype=np.int64)
            where.fill(-1)
        else:
            where = np.ascontiguousarray(offsets, dtype=np.int64)
            self._queue_for(int(params.horizon))
        derive_kernel(
            slots,
            params.base_rows(vehicle_ids),
            np.ascontiguousarray(times, dtype=np.float64),
            where,
            np.ascontiguousarray(X, dtype=np.float64),
            self.values,
            self.times,
            self.offsets,
            self.count,
            self.sorted,
            self.deviations,
            params.med,
            params.scl,
            params.coef,
            params.icpt,
            params.rscale,
            params.mcoef,
            params.micpt,
            params.mscale,
            params.dscale,
            params.nscale,
            params.qrun_zero,
            params.qrun_other,
            params.q50,
            params.den,
            float(params.gap_seconds),
            int(params.horizon),
            int(params.revision),
            self.runs,
            self.in_horizon,
            self.fifo,
            self.fifo_pos,
            evidence,
            lead,
            _NO_RAW if raw is None else raw,
        )
        return evidence, lead

    def remember(
        self,
        params: ContextParams,
        vehicle_ids: Sequence[str],
        times: Matrix,
        X: Matrix,
        offsets: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """Add records to their vehicles' histories as :meth:`derive` does, without their
        evidence: what a rebuild from a partition's tail needs, several times faster."""
        n = X.shape[0]
        if X.ndim != 2 or X.shape[1] != self.n_sensors:
            raise ValueError(f"expected {self.n_sensors} sensors, got shape {X.shape}")
        if n == 0:
            return
        if offsets is not None:
            self._queue_for(int(params.horizon))
        self._deviations_for(params)
        remember_kernel(
            self._slots_for(vehicle_ids),
            np.ascontiguousarray(times, dtype=np.float64),
            np.full(n, -1, dtype=np.int64)
            if offsets is None
            else np.ascontiguousarray(offsets, dtype=np.int64),
            np.ascontiguousarray(X, dtype=np.float64),
            self.values,
            self.times,
            self.offsets,
            self.count,
            self.sorted,
            self.deviations,
            params.base_rows(vehicle_ids),
            params.med,
            params.scl,
            params.coef,
            params.icpt,
            params.rscale,
            float(params.gap_seconds),
            int(params.horizon),
            self.runs,
            self.in_horizon,
            self.fifo,
            self.fifo_pos,
        )

    def copy(self) -> ContextState:
        """An independent copy: the same histories, which then go their own way (a shadow
        candidate's, which must judge each record in the history the active model saw)."""
        twin = ContextState(self.n_sensors, capacity=1)
        twin.slots = dict(self.slots)
        for name in _ARRAYS:
            setattr(twin, name, getattr(self, name).copy())
        twin._deviations_of = self._deviations_of
        return twin

    def _deviations_for(self, params: ContextParams) -> None:
        # The held readings' deviations are those of ``params`` (computed again otherwise).
        if self._deviations_of is params:
            return
        if self.slots:
            refresh_kernel(
                self.count,
                self.values,
                self.deviations,
                params.base_rows(list(self.slots)),  # (slots are numbered as they arrive)
                params.med,
                params.scl,
                params.coef,
                params.icpt,
                params.rscale,
            )
        self._deviations_of = params

    def forget(self, vehicle_ids: Sequence[str]) -> None:
        """Drop the history of these vehicles (their slots are reused by no one else)."""
        for vehicle in vehicle_ids:
            slot = self.slots.get(vehicle)
            if slot is not None:
                self.count[slot] = 0
