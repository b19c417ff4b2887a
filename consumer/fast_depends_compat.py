"""Every fast_depends internal the worker relies on, behind one door.

* :class:`AwaitedRawField`: a ``CustomField`` whose ``use`` is overridden by a coroutine.
  fast_depends awaits a coroutine ``use`` but runs a synchronous one (FastStream's
  ``NoCast``) in a worker thread: one thread hop per batch. ``use``'s signature and that
  dispatch are internals; ``tests/unit/consumer/test_compat.py`` covers both, and the range
  in ``pyproject.toml`` is pinned to the minor it passed on.
"""

from __future__ import annotations

from typing import Any

from fast_depends.library import CustomField


class AwaitedRawField(CustomField):
    """The handler's argument as the decoder returned it, uncast, resolved on the event loop."""

    def __init__(self) -> None:
        super().__init__(cast=False)

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]  # fast_depends awaits a coroutine use
        return kwargs
