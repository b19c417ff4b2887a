"""The latency baseline: a bare consumer that answers each record at once, scoring nothing.

The echo is a process of its own, as the worker is. It reads the telemetry topic in batches as
the worker does (at most 500 records, 50 ms to fill one) and, per batch, sends one small
answer per record to the anomalies topic with the worker's producer settings (``acks=all``,
idempotent, no linger), waits for them and commits. The same steady load and the same reader
as the worker's latency run time it (broker append -> answer read), so its percentiles are
what the broker, the client library and this machine cost before any scoring: the floor under
the worker's.

Alone, against a broker of its own (``scripts/kafka-local``, so ``KAFKA_LOCAL_GC_OPTS`` and
the other ``KAFKA_LOCAL_*`` settings apply) or ``KAFKA_BOOTSTRAP_SERVERS``, one line per run::

    .venv/bin/python -m bench.pipeline_echo [--repeat 5] [--rate 2000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import tempfile
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.pipeline_broker import broker, create_topics
from bench.pipeline_latency import p99_by_second, percentiles, read_verdicts, steady_load


async def _echo(bootstrap: str, source: str, target: str, ready: Any, stop: Any) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"bench-echo-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=0
    )
    await consumer.start()
    await producer.start()
    ready.set()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50, max_records=500)
            pending = []
            for records in batches.values():
                for record in records:
                    body = {
                        "source": {"partition": record.partition, "offset": record.offset},
                        "model_version": "echo",
                    }
                    pending.append(
                        await producer.send(target, json.dumps(body).encode(), key=record.key)
                    )
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


def _echo_process(bootstrap: str, source: str, target: str, ready: Any, stop: Any) -> None:
    asyncio.run(_echo(bootstrap, source, target, ready, stop))


async def echo_latency(bootstrap: str, rate: int, seconds: float, warmup: float) -> dict[str, Any]:
    """Percentiles of broker append -> echo read at ``rate`` records/s (after ``warmup`` s)."""
    suffix = uuid.uuid4().hex[:6]
    source, target = f"bench-echo-in-{suffix}", f"bench-echo-out-{suffix}"
    await create_topics(bootstrap, [source], {"message.timestamp.type": "LogAppendTime"})
    await create_topics(bootstrap, [target])
    spawn = multiprocessing.get_context("spawn")
    ready, stop = spawn.Event(), spawn.Event()
    echo = spawn.Process(target=_echo_process, args=(bootstrap, source, target, ready, stop))
    echo.start()
    received: list[tuple[float, dict[str, Any]]] = []
    append_times: dict[tuple[int, int], int] = {}
    done = asyncio.Event()
    reader = asyncio.create_task(read_verdicts(bootstrap, target, done, received))
    try:
        await asyncio.get_running_loop().run_in_executor(None, ready.wait, 60)
        gc.collect()
        gc.disable()
        try:
            sent = await steady_load(bootstrap, source, rate, warmup + seconds, 5, append_times)
            for _ in range(1_200):  # every answer read, or a minute
                if len(received) >= sent:
                    break
                await asyncio.sleep(0.05)
        finally:
            gc.enable()
    finally:
        done.set()
        await reader
        stop.set()
        echo.join(30)
        if echo.is_alive():
            echo.kill()
    timeline = [
        (append_times[where], seen * 1000 - append_times[where])
        for seen, body in received
        if (where := (body["source"]["partition"], body["source"]["offset"])) in append_times
    ]
    load_start = min((t for t, _ in timeline), default=0)
    measured_from = load_start + warmup * 1000
    return {
        "offered_rate_per_s": rate,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "records_sent": sent,
        "answers_matched": len(timeline),
        "latency": percentiles([latency for t, latency in timeline if t >= measured_from]),
        "p99_ms_by_second": p99_by_second(timeline, load_start),
    }


async def _main(repeat: int, rate: int, seconds: float, warmup: float) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        async with broker(Path(workdir)) as bootstrap:
            for _ in range(repeat):
                run = await echo_latency(bootstrap, rate, seconds, warmup)
                print(json.dumps({k: run[k] for k in ("latency", "p99_ms_by_second")}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs against one broker (5)")
    parser.add_argument("--rate", type=int, default=2000, help="offered records/s (2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds (10)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before them (1)")
    args = parser.parse_args()
    asyncio.run(_main(args.repeat, args.rate, args.seconds, args.warmup))
