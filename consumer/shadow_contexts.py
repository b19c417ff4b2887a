"""The shadow candidate's own history of each partition, in step with the records scored.

A context candidate judges each record in its vehicle's recent history, as the active model
does; the history is the same whichever model reads it (a :class:`ContextState` holds readings;
each reading's deviations are kept for the model that last read it and computed again for
another), but scoring adds each record to it, so the candidate keeps its own states, in a
:class:`consumer.context_store.ContextStore` of its own (:meth:`ContextStore.sibling`), kept in
step as the active model's is. Where a partition's state does not end exactly where the batch
begins (a new candidate, a partition just assigned, a batch rewound after a failure) it is a
copy of the active model's, which the active store has just put in step with the batch; under
a point model, which keeps no history, it is rebuilt from the partition's tail. Either way the
candidate's scores are those of a worker that had scored every record with it.
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
    """The candidate version's store of states (a new one for each candidate)."""

    def __init__(self, new_store: Callable[[], ContextStore]) -> None:
        self.version: str | None = None
        self._new_store = new_store
        self._store: ContextStore | None = None

    async def prepare(
        self,
        candidate: Detector,
        active: Mapping[Where, ContextState] | None,
        first_offsets: Mapping[Where, int],
    ) -> dict[Where, ContextState]:
        """The candidate's states for a batch beginning at ``first_offsets``; call before the
        active model scores the batch (a copy must hold what the active state holds then).
        ``active`` is the active model's states, ``None`` under a point model."""
        if self._store is None or candidate.version != self.version:
            self._store = self._new_store()
            self.version = candidate.version
        await self._store.prepare(candidate, first_offsets, source=active)
        return self._store.states

    def advance(self, next_offsets: Mapping[Where, int]) -> None:
        """The batch was scored by the candidate: each state now ends after its last record."""
        if self._store is not None:
            self._store.advance(next_offsets)

    def drop(self, partitions: Iterable[Where]) -> None:
        """Forget these partitions' states (revoked, or left mid-batch by a failure)."""
        if self._store is not None:
            self._store.drop(partitions)

    def clear(self) -> None:
        """No candidate: forget every state."""
        self.version = None
        self._store = None
