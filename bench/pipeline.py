"""Pipeline benchmark (not a test): the worker's throughput and latency against a real broker.

    .venv/bin/python bench/pipeline.py                  # starts its own broker (scripts/kafka-local)
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/pipeline.py --records 50000

Worker throughput is measured between the first and the last /health poll (every 0.1 s) that
show records handled (a batch counts once its verdicts are acknowledged; its commit follows in
the background within a commit round trip), so it needs enough records to span several
seconds: at 50-60k records/s, the default 300k.

One run measures, on a topic pre-loaded with ``--records`` valid records (8 features, 2 %
anomalies injected):

(a) baseline: a bare aiokafka consumer in a group that reads everything and commits per batch,
    waiting for each commit;
(a2) the same bare consumer committing in the background as the worker does (one commit in
    flight, the offsets of the batches read meanwhile merged into the next): a reference only;
(b) the worker (``python -m consumer``), anomalies only;
(c) the worker with PUBLISH_ALL_VERDICTS=true;
(d) the publish path alone: 50k verdicts through each sink, 500 at a time;
each of (a)/(a2)/(b)/(c) ``--repeat`` times, (b)/(c) with both publishers
(``CONSUMER_PUBLISHER=aiokafka`` and ``=faststream``), the publishers interleaved and the
baselines run once per repetition; the median run is reported (on a shared 2-core machine
other processes swing single runs by tens of percent).

Then, ``--latency-repeat`` times (the run with the median p99 is reported), with the default
publisher and PUBLISH_ALL_VERDICTS=true, at a steady offered load of ``--rate`` records/s for
``--seconds`` s after ``--warmup`` s of it (the load starts on an idle worker and broker; the
warm-up records are reported apart, in ``latency_including_warmup``): the latency from the
broker's append time of a record (the telemetry topic uses LogAppendTime) to the moment its
verdict is read from the anomalies topic (p50/p95/p99/max); and the time from publishing a
model to the first verdict that names it, both cold (worker waiting with no model, records
queued) and as a hot swap under load. The load and the verdict reader share this process's
event loop, so nothing else may hold it while they run: the models are trained beforehand and
published by another process, and the garbage collector is off (its full collections took
0.1 s, and a fit 0.2 s, with the GIL held).

Writes bench/results/pipeline.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from sklearn.ensemble import IsolationForest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.registry import ModelRegistry  # noqa: E402

N_FEATURES = 8
PARTITIONS = 3
RESULTS = REPO / "bench" / "results" / "pipeline.json"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- broker -------------------------------------------------------------------------------------


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


# --- data -------------------------------------------------------------------------------------


def make_records(count: int, seed: int, anomaly_rate: float) -> tuple[list[bytes], list[bytes]]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(count, N_FEATURES))
    anomalous = rng.random(count) < anomaly_rate
    rows[anomalous] = rng.uniform(6, 9, size=(int(anomalous.sum()), N_FEATURES))
    values, keys = [], []
    for i in range(count):
        vehicle = f"VH-{i % 500:04d}"
        values.append(
            json.dumps(
                {
                    "vehicle_id": vehicle,
                    "timestamp": "2024-01-15T10:00:00Z",
                    "feature_vector": [round(float(x), 6) for x in rows[i]],
                }
            ).encode()
        )
        keys.append(vehicle.encode())
    return values, keys


def train_model(seed: int) -> IsolationForest:
    rng = np.random.default_rng(seed)
    return IsolationForest(n_estimators=100, random_state=seed).fit(
        rng.normal(size=(2048, N_FEATURES))
    )


def publish_model(model_dir: Path, seed: int, model: IsolationForest | None = None) -> str:
    """Publish a model (``model``, or one trained now from ``seed``); returns its version."""
    model = model if model is not None else train_model(seed)
    return (
        ModelRegistry(model_dir)
        .publish(model, n_features=N_FEATURES, record_count=2048, params={"n_estimators": 100})
        .version
    )


# The latency run publishes its models from another process: training, pickling and writing
# a model in this one would hold the GIL that the verdict reader (and the load) need, and
# stamp verdicts late that the worker had answered in time.
_prepared: dict[int, IsolationForest] = {}


def _prepare(seed: int) -> None:
    _prepared[seed] = train_model(seed)


def _publish_prepared(model_dir: str, seed: int) -> str:
    return publish_model(Path(model_dir), seed, _prepared.pop(seed))


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


# --- (a) baseline -----------------------------------------------------------------------------


async def baseline(
    bootstrap: str, topic: str, total: int, *, background_commit: bool = False
) -> dict[str, Any]:
    """A bare consumer: read everything, commit after each batch (awaited, or in background)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-baseline-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    seen = 0
    first: float | None = None
    pending: dict[TopicPartition, int] = {}
    committer: asyncio.Task[None] | None = None

    async def commit_behind() -> None:
        while pending:
            offsets = dict(pending)
            pending.clear()
            await consumer.commit(offsets)

    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batches:
                continue
            first = first or time.perf_counter()
            seen += sum(len(records) for records in batches.values())
            if not background_commit:
                await consumer.commit()
                continue
            for tp, records in batches.items():
                pending[tp] = records[-1].offset + 1
            if committer is None or committer.done():
                committer = asyncio.create_task(commit_behind())
        if committer is not None:
            await committer
        elapsed = time.perf_counter() - (first or time.perf_counter())
    finally:
        await consumer.stop()
    return {"records": seen, "seconds": round(elapsed, 3), "records_per_s": round(seen / elapsed)}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, with every run's rate in ``samples_records_per_s``."""
    outcome = dict(sorted(runs, key=lambda run: run["records_per_s"])[len(runs) // 2])
    outcome["samples_records_per_s"] = [run["records_per_s"] for run in runs]
    return outcome


# --- the worker as a process ---------------------------------------------------------------------


class Worker:
    def __init__(
        self, bootstrap: str, topics: dict[str, str], model_dir: Path, log: Path, **extra: str
    ) -> None:
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CONSUMER_"))},
            "PYTHONPATH": str(REPO),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TELEMETRY_TOPIC": topics["telemetry"],
            "ANOMALY_TOPIC": topics["anomalies"],
            "DLQ_TOPIC": topics["dlq"],
            "CONSUMER_GROUP": f"bench-worker-{uuid.uuid4().hex[:6]}",
            "MODEL_DIR": str(model_dir),
            "CONSUMER_PORT": str(self.port),
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "WARNING",
            **extra,
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "consumer"],
                env=self.env,
                cwd=self.log.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    async def health(self) -> dict[str, Any] | None:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}/health")
            return response.json() if response.status_code == 200 else None
        except httpx.HTTPError:
            return None

    async def wait_for(self, predicate: Any, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[
                -3000:
            ]
            health = await self.health()
            if health is not None and predicate(health):
                return health
            await asyncio.sleep(0.1)
        raise TimeoutError(f"worker condition not met in {timeout}s; log: {self.log}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


async def worker_throughput(
    bootstrap: str, topics: dict[str, str], model_dir: Path, workdir: Path, total: int, **extra: str
) -> dict[str, Any]:
    """Records/s between the first and the last committed batch (process start-up excluded)."""
    name = "-".join(f"{k}={v}" for k, v in extra.items()).lower().replace("_", "")
    name = "".join(c if c.isalnum() or c in "=-." else "_" for c in name)
    worker = Worker(bootstrap, topics, model_dir, workdir / f"worker-{name}.log", **extra).start()
    try:
        first = await worker.wait_for(lambda h: h["records"] > 0, 120)
        t0, r0 = time.perf_counter(), first["records"]
        last = await worker.wait_for(lambda h: h["records"] >= total, 600)
        elapsed = time.perf_counter() - t0
        done = last["records"] - r0
        return {
            "records": last["records"],
            "verdicts_published": last["verdicts_published"],
            "dead_letters": last["dead_letters"],
            "batches": last["batches_processed"],
            "measured_records": done,
            "seconds": round(elapsed, 3),
            "records_per_s": round(done / elapsed),
        }
    finally:
        worker.stop()


# --- latency at a steady load -------------------------------------------------------------------


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


async def latency_and_swap(
    bootstrap: str,
    workdir: Path,
    rate: int,
    seconds: float,
    poll: float,
    publisher: str,
    warmup: float = 1.0,
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
            await loop.run_in_executor(models, _prepare, seed)
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
        v1 = await loop.run_in_executor(models, _publish_prepared, str(model_dir), 0)
        cold_first = await first_verdict(received, v1, 60)
        await worker.wait_for(lambda h: h["records"] >= 200, 60)

        # Steady load (after ``warmup`` seconds of it, not counted); a hot swap to v2 halfway.
        load = asyncio.create_task(
            steady_load(bootstrap, topics["telemetry"], rate, warmup + seconds, 5, append_times)
        )
        await asyncio.sleep(warmup + seconds / 2)
        hot_published = time.time()
        v2 = await loop.run_in_executor(models, _publish_prepared, str(model_dir), 1)
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
        "worst": [
            {
                "appended_at_s": round((t - load_start) / 1000, 3),
                "latency_ms": round(lat, 1),
                "version": v,
            }
            for t, lat, v in worst
        ],
    }


# --- (d) the publish path alone -----------------------------------------------------------------


async def publish_path(bootstrap: str, messages: int, repeat: int) -> dict[str, Any]:
    """Verdicts/s through each sink alone: 500 per batch, sent together, confirmed together."""
    from faststream.kafka import KafkaBroker

    from consumer.processor import Kind, Outgoing
    from consumer.publishing import AiokafkaSink, FastStreamSink, Sink, publish_confirmed
    from consumer.wiring import producer_options
    from shared.settings import Settings

    topic = f"bench-publish-{uuid.uuid4().hex[:6]}"
    await create_topics(bootstrap, [topic])
    # each sink with the producer settings the worker gives it (the linger differs)
    options = {
        name: producer_options(Settings(_env_file=None, consumer_publisher=name))  # type: ignore[call-arg]
        for name in ("aiokafka", "faststream")
    }
    body = json.dumps(
        {
            "vehicle_id": "VH-0001",
            "timestamp": "2024-01-15T10:00:00Z",
            "anomaly_score": -0.01,
            "is_anomaly": True,
            "model_version": "20240115100000",
            "scored_at": "2024-01-15T10:00:00.123Z",
            "source": {"topic": "telemetry", "partition": 0, "offset": 123456},
        }
    ).encode()
    batches = [
        [
            Outgoing(
                Kind.VERDICT,
                topic,
                f"VH-{(b * 500 + i) % 500:04d}".encode(),
                body,
                (),
                "telemetry",
                0,
                b * 500 + i,
            )
            for i in range(500)
        ]
        for b in range(messages // 500)
    ]
    broker = KafkaBroker(bootstrap, **options["faststream"], log_level=10)
    await broker.connect()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options["aiokafka"])
    await producer.start()
    sinks: dict[str, Sink] = {
        "aiokafka": AiokafkaSink(producer),
        "faststream": FastStreamSink(broker),
    }
    rates: dict[str, list[int]] = {name: [] for name in sinks}
    try:
        for repetition in range(repeat):
            names = list(sinks) if repetition % 2 == 0 else list(sinks)[::-1]
            for name in names:
                started = time.perf_counter()
                for batch in batches:
                    await publish_confirmed(sinks[name], batch)
                rates[name].append(round(len(batches) * 500 / (time.perf_counter() - started)))
    finally:
        await producer.stop()
        await broker.stop()
    return {
        name: {"messages_per_s": sorted(values)[len(values) // 2], "samples": values}
        for name, values in rates.items()
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


# --- main ---------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(tmp)
        async with AsyncExitStack() as stack:
            bootstrap = await stack.enter_async_context(broker(workdir))
            suffix = uuid.uuid4().hex[:6]
            topics = {k: f"bench-{k}-{suffix}" for k in ("telemetry", "anomalies", "dlq")}
            await create_topics(bootstrap, list(topics.values()))
            model_dir = workdir / "models"
            publish_model(model_dir, seed=0)
            values, keys = make_records(args.records, 1, args.anomaly_rate)
            preload_s = await preload(bootstrap, topics["telemetry"], values, keys)
            print(f"pre-loaded {args.records} records in {preload_s:.1f}s", file=sys.stderr)

            results: dict[str, Any] = {
                "records": args.records,
                "features": N_FEATURES,
                "anomaly_rate": args.anomaly_rate,
                "partitions": PARTITIONS,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "worker": {},
            }
            # Repetitions interleave the publishers (alternating their order), so that load
            # from other processes on a shared machine hits both alike; the median is reported.
            samples: dict[str, list[dict[str, Any]]] = {}
            for repetition in range(args.repeat):
                for name, background in (("baseline", False), ("baseline_background_commit", True)):
                    run = await baseline(
                        bootstrap, topics["telemetry"], args.records, background_commit=background
                    )
                    samples.setdefault(name, []).append(run)
                    print(f"{name}: {run}", file=sys.stderr)
                order = args.publishers if repetition % 2 == 0 else args.publishers[::-1]
                for publisher in order:
                    for mode, publish_all in (("anomalies_only", "false"), ("publish_all", "true")):
                        outcome = await worker_throughput(
                            bootstrap,
                            topics,
                            model_dir,
                            workdir,
                            args.records,
                            PUBLISH_ALL_VERDICTS=publish_all,
                            CONSUMER_PUBLISHER=publisher,
                        )
                        samples.setdefault(f"{publisher}/{mode}", []).append(outcome)
                        print(f"{publisher}/{mode}: {outcome}", file=sys.stderr)
            results["baseline"] = median_run(samples["baseline"])
            results["baseline_background_commit"] = median_run(
                samples["baseline_background_commit"]
            )
            for publisher in args.publishers:
                for mode in ("anomalies_only", "publish_all"):
                    outcome = median_run(samples[f"{publisher}/{mode}"])
                    rate = outcome["records_per_s"]
                    outcome["ratio_to_baseline"] = round(
                        rate / results["baseline"]["records_per_s"], 3
                    )
                    outcome["ratio_to_baseline_background_commit"] = round(
                        rate / results["baseline_background_commit"]["records_per_s"], 3
                    )
                    results["worker"][f"{publisher}/{mode}"] = outcome
            results["publish_path"] = await publish_path(bootstrap, 50_000, args.repeat)
            print(f"publish path: {results['publish_path']}", file=sys.stderr)
            if args.seconds > 0:
                # One hot swap per run stalls the worker briefly, so p99 varies from run to run:
                # the run with the median p99 is reported, with every run's percentiles.
                latency_runs = []
                for _ in range(args.latency_repeat):
                    run = await latency_and_swap(
                        bootstrap,
                        workdir,
                        args.rate,
                        args.seconds,
                        args.poll,
                        args.publishers[0],
                        args.warmup,
                    )
                    latency_runs.append(run)
                    print(f"latency: {run['latency']}", file=sys.stderr)
                latency_runs.sort(key=lambda run: run["latency"].get("p99_ms", 0.0))
                results["latency"] = latency_runs[len(latency_runs) // 2]
                results["latency"]["samples"] = [
                    {k: run["latency"].get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
                    | {"p99_ms_including_warmup": run["latency_including_warmup"].get("p99_ms")}
                    for run in latency_runs
                ]
    return results


def table(results: dict[str, Any]) -> str:
    base = results["baseline"]["records_per_s"]
    lines = [f"{'run':<40}{'records/s':>12}{'x baseline':>12}"]

    def line(label: str, outcome: dict[str, Any]) -> str:
        runs = ", ".join(str(rate) for rate in outcome.get("samples_records_per_s", []))
        rate = outcome["records_per_s"]
        return f"{label:<40}{rate:>12}{rate / base:>12.3f}   runs: {runs}"

    lines.append(line("(a) baseline consume+commit", results["baseline"]))
    if "baseline_background_commit" in results:
        lines.append(
            line("(a2) consume, commit in background", results["baseline_background_commit"])
        )
    for name, outcome in results["worker"].items():
        lines.append(line(("(b) " if name.endswith("anomalies_only") else "(c) ") + name, outcome))
    if "publish_path" in results:
        lines.append("")
        lines.append("(d) publish path alone (500 verdicts per batch, sent together, confirmed):")
        for name, outcome in results["publish_path"].items():
            runs = ", ".join(str(rate) for rate in outcome["samples"])
            lines.append(f"    {name:<30}{outcome['messages_per_s']:>12}   runs: {runs}")
    if "latency" in results:
        lat = results["latency"]
        pct = lat["latency"]
        lines += [
            "",
            f"latency at {lat['offered_rate_per_s']} rec/s for {lat['seconds']}s after "
            f"{lat.get('warmup_seconds', 0)}s of warm-up ({pct.get('count', 0)} verdicts, "
            "broker append -> verdict read):",
            f"  p50 {pct.get('p50_ms')} ms   p95 {pct.get('p95_ms')} ms   "
            f"p99 {pct.get('p99_ms')} ms   max {pct.get('max_ms')} ms   (p99 of each run: "
            + ", ".join(str(run["p99_ms"]) for run in lat.get("samples", []))
            + ")",
            "  with the warm-up records counted: p99 "
            + ", ".join(str(run.get("p99_ms_including_warmup")) for run in lat.get("samples", []))
            + " ms",
            f"model publish -> first verdict (MODEL_POLL_SECONDS={lat['model_poll_seconds']}): "
            f"cold {lat['model_publish_to_first_verdict_s']['cold_start_no_model']} s, "
            f"hot swap {lat['model_publish_to_first_verdict_s']['hot_swap_under_load']} s",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--anomaly-rate", type=float, default=0.02)
    parser.add_argument("--rate", type=int, default=2_000, help="offered load of the latency run")
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="length of the latency run (0: skip)"
    )
    parser.add_argument(
        "--poll", type=float, default=1.0, help="MODEL_POLL_SECONDS of the latency run"
    )
    parser.add_argument(
        "--latency-repeat", type=int, default=3, help="latency runs (the median p99 is reported)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="seconds of load before the latency is measured (reported apart)",
    )
    parser.add_argument(
        "--publishers",
        nargs="+",
        default=["aiokafka", "faststream"],
        choices=["aiokafka", "faststream"],
        help="the first one is used for the latency run",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="worker throughput runs per publisher and mode"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    results["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
