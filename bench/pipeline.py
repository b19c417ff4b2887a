"""Pipeline benchmark (not a test): the worker's throughput and latency against a real broker.

    .venv/bin/python bench/pipeline.py                  # starts its own broker (scripts/kafka-local)
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python bench/pipeline.py --records 50000

Worker throughput is measured between the first and the last committed batch as seen on
/health (polled every 0.1 s), so it needs enough records to span several seconds (>= 50k).

One run measures, on a topic pre-loaded with ``--records`` valid records (8 features, 2 %
anomalies injected):

(a) baseline: a bare aiokafka consumer in a group that reads everything and commits per batch;
(b) the worker (``python -m consumer``), anomalies only;
(c) the worker with PUBLISH_ALL_VERDICTS=true;
(d) the publish path alone: 50k verdicts through each sink, 500 at a time;
each of (b)/(c) with both publishers (``CONSUMER_PUBLISHER=aiokafka`` and ``=faststream``),
``--repeat`` times with the publishers interleaved; the median run is reported (on a shared
2-core machine other processes swing single runs by tens of percent).

Then, with the default publisher and PUBLISH_ALL_VERDICTS=true, at a steady offered load of
``--rate`` records/s for ``--seconds`` s: the latency from the broker's append time of a record
(the telemetry topic uses LogAppendTime) to the moment its verdict is read from the anomalies
topic (p50/p95/p99/max); and the time from publishing a model to the first verdict that names
it, both cold (worker waiting with no model, records queued) and as a hot swap under load.

Writes bench/results/pipeline.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from contextlib import AsyncExitStack, asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
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


def publish_model(model_dir: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    model = IsolationForest(n_estimators=100, random_state=seed).fit(
        rng.normal(size=(2048, N_FEATURES))
    )
    return (
        ModelRegistry(model_dir)
        .publish(model, n_features=N_FEATURES, record_count=2048, params={"n_estimators": 100})
        .version
    )


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


async def baseline(bootstrap: str, topic: str, total: int) -> dict[str, Any]:
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
    try:
        while seen < total:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if not batches:
                continue
            first = first or time.perf_counter()
            seen += sum(len(records) for records in batches.values())
            await consumer.commit()
        elapsed = time.perf_counter() - (first or time.perf_counter())
    finally:
        await consumer.stop()
    return {"records": seen, "seconds": round(elapsed, 3), "records_per_s": round(seen / elapsed)}


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
    bootstrap: str, workdir: Path, rate: int, seconds: float, poll: float, publisher: str
) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:6]
    topics = {k: f"bench-{k}-{suffix}" for k in ("telemetry", "anomalies", "dlq")}
    await create_topics(
        bootstrap, [topics["telemetry"]], {"message.timestamp.type": "LogAppendTime"}
    )
    await create_topics(bootstrap, [topics["anomalies"], topics["dlq"]])
    model_dir = workdir / f"models-latency-{suffix}"
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
        v1 = publish_model(model_dir, seed=0)
        cold_first = await first_verdict(received, v1, 60)
        await worker.wait_for(lambda h: h["records"] >= 200, 60)

        # Steady load; a hot swap to v2 halfway through.
        load = asyncio.create_task(
            steady_load(bootstrap, topics["telemetry"], rate, seconds, 5, append_times)
        )
        await asyncio.sleep(seconds / 2)
        hot_published = time.time()
        v2 = publish_model(model_dir, seed=1)
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
    latencies = [latency for _, latency, _ in timeline]
    load_start = min((t for t, _, _ in timeline), default=0)
    worst = sorted(timeline, key=lambda item: -item[1])[:5]
    by_version: dict[str, int] = {}
    for _, body in received:
        by_version[body["model_version"]] = by_version.get(body["model_version"], 0) + 1
    return {
        "offered_rate_per_s": rate,
        "seconds": seconds,
        "records_sent": sent,
        "verdicts_matched": len(latencies),
        "latency": percentiles(latencies),
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

    from consumer.app import producer_options
    from consumer.options import WorkerOptions
    from consumer.processor import Kind, Outgoing
    from consumer.publishing import AiokafkaSink, FastStreamSink, Sink, publish_confirmed

    topic = f"bench-publish-{uuid.uuid4().hex[:6]}"
    await create_topics(bootstrap, [topic])
    options = producer_options(WorkerOptions(_env_file=None))  # type: ignore[call-arg]
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
    broker = KafkaBroker(bootstrap, **options, log_level=10)
    await broker.connect()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
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
                "baseline": await baseline(bootstrap, topics["telemetry"], args.records),
                "worker": {},
            }
            print(f"baseline: {results['baseline']}", file=sys.stderr)
            # Repetitions interleave the publishers (alternating their order), so that load
            # from other processes on a shared machine hits both alike; the median is reported.
            samples: dict[str, list[dict[str, Any]]] = {}
            for repetition in range(args.repeat):
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
            for publisher in args.publishers:
                for mode in ("anomalies_only", "publish_all"):
                    runs = samples[f"{publisher}/{mode}"]
                    rates = [run["records_per_s"] for run in runs]
                    outcome = dict(
                        sorted(runs, key=lambda run: run["records_per_s"])[len(runs) // 2]
                    )
                    outcome["samples_records_per_s"] = rates
                    outcome["ratio_to_baseline"] = round(
                        outcome["records_per_s"] / results["baseline"]["records_per_s"], 3
                    )
                    results["worker"][f"{publisher}/{mode}"] = outcome
            results["publish_path"] = await publish_path(bootstrap, 50_000, args.repeat)
            print(f"publish path: {results['publish_path']}", file=sys.stderr)
            if args.seconds > 0:
                results["latency"] = await latency_and_swap(
                    bootstrap, workdir, args.rate, args.seconds, args.poll, args.publishers[0]
                )
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{'run':<34}{'records/s':>12}{'x baseline':>12}",
        f"{'(a) baseline consume+commit':<34}{results['baseline']['records_per_s']:>12}{1.0:>12.3f}",
    ]
    for name, outcome in results["worker"].items():
        label = ("(b) " if name.endswith("anomalies_only") else "(c) ") + name
        runs = ", ".join(str(rate) for rate in outcome.get("samples_records_per_s", []))
        lines.append(
            f"{label:<34}{outcome['records_per_s']:>12}{outcome['ratio_to_baseline']:>12.3f}"
            f"   runs: {runs}"
        )
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
            f"latency at {lat['offered_rate_per_s']} rec/s for {lat['seconds']}s "
            f"({pct.get('count', 0)} verdicts, broker append -> verdict read):",
            f"  p50 {pct.get('p50_ms')} ms   p95 {pct.get('p95_ms')} ms   "
            f"p99 {pct.get('p99_ms')} ms   max {pct.get('max_ms')} ms",
            f"model publish -> first verdict (MODEL_POLL_SECONDS={lat['model_poll_seconds']}): "
            f"cold {lat['model_publish_to_first_verdict_s']['cold_start_no_model']} s, "
            f"hot swap {lat['model_publish_to_first_verdict_s']['hot_swap_under_load']} s",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--anomaly-rate", type=float, default=0.02)
    parser.add_argument("--rate", type=int, default=2_000, help="offered load of the latency run")
    parser.add_argument(
        "--seconds", type=float, default=15.0, help="length of the latency run (0: skip)"
    )
    parser.add_argument(
        "--poll", type=float, default=1.0, help="MODEL_POLL_SECONDS of the latency run"
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
