"""The shadow candidate's own history of each partition, in step with the records scored.

A context candidate judges each record in its vehicle's recent history, as the active model
does; the history is the same whichever model reads it (a :class:`ContextState` holds readings;
each reading's deviations are kept for the model that last read it and computed again for
another), but scoring adds each record to it, so the candidate keeps its own states.

Under a context model, a partition's state is a copy of the active model's, which the
:class:`consumer.context_store.ContextStore` has just put in step with the batch, taken
whenever the candidate's copy does not end exactly where the batch begins: a new candidate, a
partition just assigned, a batch rewound after a failure (whose records the copy may already
hold). Under a point model, which keeps no history, the candidate has a store of its own
(:meth:`ContextStore.sibling`), rebuilt from the partitions' tails as an active context model's
is. Either way its scores are those of a worker that had scored every record with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consumer.context_store import ContextStore
    from shared.context import ContextState
    from shared.detector import Detector

Where = tuple[str, int]


class ShadowContexts:
    """Per partition, the candidate's state and the offset after the last record it holds."""

    def __init__(self, new_store: Callable[[], ContextStore]) -> None:
        self.version: str | None = None
        self._new_store = new_store
        self._store: ContextStore | None = None  # (under a point model)
        self._states: dict[Where, ContextState] = {}
        self._next: dict[Where, int] = {}

    async def prepare(
        self,
        candidate: Detector,
        active: Mapping[Where, ContextState] | None,
        first_offsets: Mapping[Where, int],
    ) -> dict[Where, ContextState]:
        """The candidate's states for a batch beginning at ``first_offsets``; call before the
        active model scores the batch (a copy must hold what the active state holds then).
        ``active`` is the active model's states, ``None`` under a point model."""
        if candidate.version != self.version:
            self.clear()
            self.version = candidate.version
        if active is None:
            self._states.clear()
            self._next.clear()
            if self._store is None:
                self._store = self._new_store()
            await self._store.prepare(candidate, first_offsets)  # rebuilds what is not in step
            return self._store.states
        self._store = None
        for where, offset in first_offsets.items():
            state = self._states.get(where)
            if (
                state is not None
                and self._next.get(where) == offset
                and state.n_sensors == candidate.n_features
            ):
                continue
            source = active.get(where)
            if source is not None and source.n_sensors == candidate.n_features:
                self._states[where] = source.copy()
            else:
                self._states[where] = candidate.new_state()
        for where in first_offsets:
            # in flight: until advance() says the batch was scored, no copy is in step
            self._next.pop(where, None)
        return self._states

    def advance(self, next_offsets: Mapping[Where, int]) -> None:
        """The batch was scored by the candidate: each state now ends after its last record."""
        if self._store is not None:
            self._store.advance(next_offsets)
        else:
            self._next.update(next_offsets)

    def drop(self, partitions: Iterable[Where]) -> None:
        """Forget these partitions' states (revoked, or left mid-batch by a failure)."""
        dropped = list(partitions)
        if self._store is not None:
            self._store.drop(dropped)
        for where in dropped:
            self._states.pop(where, None)
            self._next.pop(where, None)

    def clear(self) -> None:
        """No candidate: forget every state."""
        self.version = None
        self._store = None
        self._states.clear()
        self._next.clear()
