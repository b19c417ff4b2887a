"""Latency at a steady load (broker append to verdict read) and model publish to first verdict."""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.pipeline_broker import create_topics
from bench.pipeline_throughput import Worker
from bench.pipeline_workload import make_records, prepare_model, publish_prepared


async def steady_load(
    bootstrap: str,
    topic: str,
    rate: int,
    seconds: float,
    seed: int,
    append_times: dict[tuple[int, int], int],
) -> int:
    values, keys = make_records(int(rate * seconds) + rate, seed, 0.02)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    await producer.start()
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    sent = 0
    pending: list[Any] = []

    def remember(future: Any) -> None:
        if not future.cancelled() and future.exception() is None:
            meta = future.result()
            append_times[(meta.partition, meta.offset)] = meta.timestamp

    started = time.perf_counter()
    try:
        while (now := time.perf_counter()) - started < seconds:
            due = min(len(values), int((now - started) * rate) + per_tick)
            while sent < due:
                future = await producer.send(topic, values[sent], key=keys[sent])
                future.add_done_callback(remember)
                pending.append(future)
                sent += 1
            await asyncio.sleep(tick)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def read_verdicts(
    bootstrap: str, topic: str, stop: asyncio.Event, received: list[tuple[float, dict[str, Any]]]
) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.time()
            for records in batches.values():
                received.extend((now, json.loads(r.value)) for r in records)
    finally:
        await consumer.stop()


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = np.array(sorted(samples))
    return {
        "count": len(samples),
        "p50_ms": round(float(np.percentile(ordered, 50)), 1),
        "p95_ms": round(float(np.percentile(ordered, 95)), 1),
        "p99_ms": round(float(np.percentile(ordered, 99)), 1),
        "max_ms": round(float(ordered[-1]), 1),
        "mean_ms": round(statistics.fmean(samples), 1),
    }


def p99_by_second(timeline: Sequence[tuple[float, float]], start: float) -> dict[int, float]:
    """The p99 of the latencies (ms) of each second of appends (ms) from ``start`` on."""
    by_second: dict[int, list[float]] = {}
    for appended, latency in timeline:
        by_second.setdefault(int((appended - start) // 1000), []).append(latency)
    return {
        second: round(float(np.percentile(values, 99)), 1)
        for second, values in sorted(by_second.items())
    }


async def latency_and_swap(
    bootstrap: str,
    workdir: Path,
    rate: int,
    seconds: float,
    poll: float,
    publisher: str,
    warmup: float = 1.0,
    kind: str = "point",
) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:6]
    topics = {k: f"bench-{k}-{suffix}" for k in ("telemetry", "anomalies", "dlq")}
    await create_topics(
        bootstrap, [topics["telemetry"]], {"message.timestamp.type": "LogAppendTime"}
    )
    await create_topics(bootstrap, [topics["anomalies"], topics["dlq"]])
    model_dir = workdir / f"models-latency-{suffix}"
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as models:
        for seed in (0, 1):  # trained before anything is timed
            await loop.run_in_executor(models, prepare_model, seed, kind)
        # No collector pauses in this process while it times: a full collection (0.1 s with
        # the verdicts read so far) would hold up the load and stamp verdicts late.
        gc.collect()
        gc.disable()
        try:
            return await _latency_and_swap(
                bootstrap,
                workdir,
                rate,
                seconds,
                poll,
                publisher,
                warmup,
                topics,
                model_dir,
                models,
            )
        finally:
            gc.enable()


async def _latency_and_swap(
    bootstrap: str,
    workdir: Path,
    rate: int,
    seconds: float,
    poll: float,
    publisher: str,
    warmup: float,
    topics: dict[str, str],
    model_dir: Path,
    models: ProcessPoolExecutor,
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    received: list[tuple[float, dict[str, Any]]] = []
    append_times: dict[tuple[int, int], int] = {}
    stop = asyncio.Event()
    reader = asyncio.create_task(read_verdicts(bootstrap, topics["anomalies"], stop, received))
    worker = Worker(
        bootstrap,
        topics,
        model_dir,
        workdir / "worker-latency.log",
        PUBLISH_ALL_VERDICTS="true",
        MODEL_POLL_SECONDS=str(poll),
        CONSUMER_PUBLISHER=publisher,
    ).start()
    try:
        # Cold start: records wait, no model; publish one and time the first verdict naming it.
        values, keys = make_records(200, 99, 0.02)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        await asyncio.gather(
            *[
                await producer.send(topics["telemetry"], v, key=k)
                for v, k in zip(values, keys, strict=True)
            ]
        )
        await producer.stop()
        await worker.wait_for(lambda h: h["consuming"] is False and h["model_version"] is None, 60)
        await asyncio.sleep(1.0)
        cold_published = time.time()
        v1 = await loop.run_in_executor(models, publish_prepared, str(model_dir), 0)
        cold_first = await first_verdict(received, v1, 60)
        await worker.wait_for(lambda h: h["records"] >= 200, 60)

        # Steady load (after ``warmup`` seconds of it, not counted); a hot swap to v2 halfway.
        load = asyncio.create_task(
            steady_load(bootstrap, topics["telemetry"], rate, warmup + seconds, 5, append_times)
        )
        await asyncio.sleep(warmup + seconds / 2)
        hot_published = time.time()
        v2 = await loop.run_in_executor(models, publish_prepared, str(model_dir), 1)
        hot_first = await first_verdict(received, v2, 60)
        sent = await load
        await worker.wait_for(lambda h: h["records"] >= 200 + sent, 120)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await reader
        worker.stop()
    timeline = [
        (append_times[where], seen * 1000 - append_times[where], body["model_version"])
        for seen, body in received
        if (where := (body["source"]["partition"], body["source"]["offset"])) in append_times
    ]
    load_start = min((t for t, _, _ in timeline), default=0)
    measured_from = load_start + warmup * 1000
    latencies = [latency for t, latency, _ in timeline if t >= measured_from]
    worst = sorted(timeline, key=lambda item: -item[1])[:5]
    by_version: dict[str, int] = {}
    for _, body in received:
        by_version[body["model_version"]] = by_version.get(body["model_version"], 0) + 1
    return {
        "offered_rate_per_s": rate,
        "seconds": seconds,
        "warmup_seconds": warmup,
        "records_sent": sent,
        "verdicts_matched": len(timeline),
        # the records appended after the warm-up (the first second starts from an idle worker
        # and broker, whose first acknowledgements take tens of milliseconds)
        "latency": percentiles(latencies),
        "latency_including_warmup": percentiles([latency for _, latency, _ in timeline]),
        "model_poll_seconds": poll,
        "model_publish_to_first_verdict_s": {
            "cold_start_no_model": round(cold_first - cold_published, 3),
            "hot_swap_under_load": round(hot_first - hot_published, 3),
        },
        "verdicts_by_version": by_version,
        "hot_swap_published_at_s": round(hot_published - load_start / 1000, 3),
        # where in the run the slow verdicts are (the hot swap's second, or spread out)
        "p99_ms_by_second": p99_by_second([(t, lat) for t, lat, _ in timeline], load_start),
        "worst": [
            {
                "appended_at_s": round((t - load_start) / 1000, 3),
                "latency_ms": round(lat, 1),
                "version": v,
            }
            for t, lat, v in worst
        ],
    }


async def first_verdict(
    received: list[tuple[float, dict[str, Any]]],
    version: str,
    timeout: float,  # noqa: ASYNC109
) -> float:
    deadline = time.monotonic() + timeout
    index = 0
    while time.monotonic() < deadline:
        while index < len(received):
            seen, body = received[index]
            index += 1
            if body["model_version"] == version:
                return seen
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no verdict of {version} within {timeout}s")
