"""The local Kafka broker (scripts/kafka-local) and the topics `make run` creates on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time

from runlocal.common import KAFKA_LOCAL, ROOT, Stop


def kafka_local(command: str, env: dict[str, str], stop: threading.Event | None = None) -> int:
    """Run scripts/kafka-local in its own session (Ctrl-C does not reach it); its exit status.

    With ``stop``, a stop request ends the wait (the caller then stops the broker).
    """
    process = subprocess.Popen(
        [str(KAFKA_LOCAL), command],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    while True:
        try:
            return process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if stop is not None and stop.is_set():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                process.wait()
                raise Stop from None


def broker_running(env: dict[str, str]) -> bool:
    result = subprocess.run(
        [str(KAFKA_LOCAL), "status"], env=env, capture_output=True, check=False, timeout=30
    )
    return result.returncode == 0


async def create_topics(bootstrap: str, names: list[str], partitions: int, timeout: float) -> None:  # noqa: ASYNC109
    """Create the missing topics, retrying while a just-started broker settles."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another runner was quicker
                    await admin.create_topics(missing)
            if set(names) <= set(await admin.list_topics()):
                return
        except (KafkaError, OSError) as error:
            last_error = error
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(0.5)
    raise RuntimeError(f"could not create the topics on {bootstrap} in {timeout:g} s: {last_error}")
