"""The pipeline benchmarks' broker and topics.

A local broker (``scripts/kafka-local``) on free ports, or ``KAFKA_BOOTSTRAP_SERVERS``;
topics created and awaited; a topic pre-loaded with records.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 3


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def broker(workdir: Path) -> Any:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield external
        return
    port, controller = free_port(), free_port()
    env = {
        **os.environ,
        "KAFKA_LOCAL_PORT": str(port),
        "KAFKA_LOCAL_CONTROLLER_PORT": str(controller),
        "KAFKA_LOCAL_DATA": str(workdir / "kafka"),
    }
    script = str(REPO / "scripts" / "kafka-local")
    started = await asyncio.to_thread(
        subprocess.run, [script, "start"], env=env, capture_output=True, text=True, check=False
    )
    if started.returncode != 0:
        raise SystemExit(f"kafka-local start failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(
            subprocess.run, [script, "stop"], env=env, capture_output=True, check=False
        )


async def create_topics(
    bootstrap: str, names: list[str], configs: dict[str, str] | None = None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, PARTITIONS, 1, topic_configs=configs) for n in names]
        )
        for _ in range(100):
            metadata = await admin.describe_topics(names)
            if all(
                t["error_code"] == 0
                and len(t["partitions"]) == PARTITIONS
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in metadata
            ):
                return
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, v, key=k) for v, k in zip(values, keys, strict=True)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started
