"""The shadow candidate's own history of each partition, in step with the active model's.

A context candidate judges each record in its vehicle's recent history, as the active model
does; the history is the same whichever model reads it (a :class:`ContextState` holds readings,
no model parameters), but scoring adds each record to it, so the candidate keeps its own copy
per partition. A partition's copy is taken from the active model's state, which the
:class:`consumer.context_store.ContextStore` has just put in step with the batch, whenever the
candidate's copy does not end exactly where the batch begins: a new candidate, a partition
just assigned, a batch rewound after a failure (whose records the copy may already hold). The
candidate's scores are then those of a worker that had scored every record with it from the
start. Under a point model there is no active history to copy: the candidate's starts empty,
so the first readings of each vehicle are judged as a new vehicle's until it has a history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.context import ContextState
    from shared.detector import Detector

Where = tuple[str, int]


class ShadowContexts:
    """Per partition, the candidate's state and the offset after the last record it holds."""

    def __init__(self) -> None:
        self.version: str | None = None
        self._states: dict[Where, ContextState] = {}
        self._next: dict[Where, int] = {}

    def prepare(
        self,
        candidate: Detector,
        active: Mapping[Where, ContextState] | None,
        first_offsets: Mapping[Where, int],
    ) -> dict[Where, ContextState]:
        """The candidate's states for a batch beginning at ``first_offsets``; call before the
        active model scores the batch (a copy must hold what the active state holds then)."""
        if candidate.version != self.version:
            self.version = candidate.version
            self._states.clear()
            self._next.clear()
        for where, offset in first_offsets.items():
            state = self._states.get(where)
            if (
                state is not None
                and self._next.get(where) == offset
                and state.n_sensors == candidate.n_features
            ):
                continue
            source = active.get(where) if active is not None else None
            if source is not None and source.n_sensors == candidate.n_features:
                self._states[where] = source.copy()
            else:
                self._states[where] = candidate.new_state()
        for where in first_offsets:
            # in flight: until advance() says the batch was scored, no copy is in step
            self._next.pop(where, None)
        return self._states

    def advance(self, next_offsets: Mapping[Where, int]) -> None:
        """The batch was scored by the candidate: each copy now ends after its last record."""
        self._next.update(next_offsets)

    def drop(self, partitions: Iterable[Where]) -> None:
        """Forget these partitions' copies (revoked)."""
        for where in partitions:
            self._states.pop(where, None)
            self._next.pop(where, None)

    def clear(self) -> None:
        """No candidate: forget every copy."""
        self.version = None
        self._states.clear()
        self._next.clear()
