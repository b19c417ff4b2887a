"""A FastStream ``KafkaBroker`` whose start waits for Kafka to accept the worker.

FastStream connects the broker after the worker's HTTP side is up. A plain ``KafkaBroker``
raises when Kafka refuses it (a wrong password, a missing ACL, brokers not up yet), the app
exits and the orchestrator restarts it, again and again. This one keeps trying, with a
backoff up to ``MAX_BACKOFF_SECONDS``; meanwhile ``problem`` holds why Kafka refused it (for
``/health/ready``) and every failed attempt logs a warning line that says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from faststream.kafka import KafkaBroker

from shared.kafka.diagnosis import connection_problem, describe
from shared.settings import Settings

log = logging.getLogger("consumer.kafka")

MAX_BACKOFF_SECONDS = 30.0


class PatientKafkaBroker(KafkaBroker):
    """``start`` retries until Kafka accepts the connection; ``problem`` says why not yet."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__(**options)
        self.worker_settings = settings
        self.problem: str | None = None

    async def start(self) -> None:
        backoff = 1.0
        while True:
            try:
                await super().start()
            except Exception as error:  # every refusal is waited out; the reason is logged
                await self._refused(error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            self.problem = None
            return

    async def _refused(self, error: Exception, backoff: float) -> None:
        reason = describe(error)
        if type(error).__name__ == "KafkaConnectionError":
            # aiokafka only logs the cause of a refused bootstrap: look for it.
            reason = await connection_problem(self.worker_settings) or reason
        self.problem = reason
        log.warning(
            "Kafka refused the worker: %s; retrying in %.0f s",
            reason,
            backoff,
            extra={"reason": reason, "error": type(error).__name__},
        )
        with contextlib.suppress(Exception):  # a half-made connection: its clients closed
            await self.stop()
