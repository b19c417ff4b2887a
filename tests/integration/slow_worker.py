"""``python -m tests.integration.slow_worker``: ``python -m consumer`` holding each batch.

Every batch is held ``TEST_BATCH_DELAY_SECONDS`` between scoring and publishing (through
``create_app``'s ``batch_hook``), so that a signal lands while a batch is in hand.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from consumer.__main__ import main


def slow_app(settings: Any) -> Any:
    """The worker's app, sleeping the configured delay before it publishes each batch."""
    from consumer.app import create_app

    delay = float(os.environ.get("TEST_BATCH_DELAY_SECONDS", "0"))

    async def hold() -> None:
        await asyncio.sleep(delay)

    return create_app(settings, batch_hook=hold)


if __name__ == "__main__":
    sys.exit(main(slow_app))
