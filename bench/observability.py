"""Observability overhead benchmark (not a test): worker throughput with telemetry on vs off.

    .venv/bin/python -m bench.observability                       # its own broker (kafka-local)
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.observability --records 50000

One run, one broker, one topic pre-loaded with ``--records`` valid records (``--traced`` of
them carry a W3C ``traceparent`` header); then ``python -m consumer`` reads the whole topic
(each run in a fresh consumer group), alternating ``--repeat`` times between:

* off: ``CONSUMER_TELEMETRY=false`` (no FastStream Prometheus/OpenTelemetry middleware, no
  spans; the worker's own metrics stay on);
* on: ``CONSUMER_TELEMETRY=true`` with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a local
  OTLP/HTTP sink in this process (it answers 200 and counts the export requests), so every
  span is really serialised and sent.

Throughput is measured as in ``bench/pipeline.py`` (first to last committed batch on
/health); the median of each mode is reported. Writes bench/results/observability.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.pipeline import (
    RESULTS,
    broker,
    create_topics,
    make_records,
    publish_model,
    worker_throughput,
)

OUT = RESULTS.parent / "observability.json"


class _Sink(BaseHTTPRequestHandler):
    requests = 0
    received_bytes = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        type(self).requests += 1
        type(self).received_bytes += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


async def preload(
    bootstrap: str, topic: str, values: list[bytes], keys: list[bytes], traced: float
) -> int:
    """Send the records; every ``1/traced``-th one with a traceparent. Returns how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024
    )
    every = round(1 / traced) if traced > 0 else 0
    count = 0
    await producer.start()
    try:
        futures = []
        for i, (value, key) in enumerate(zip(values, keys, strict=True)):
            headers = None
            if every and i % every == 0:
                headers = [("traceparent", f"00-{i + 1:032x}-{i + 1:016x}-01".encode())]
                count += 1
            futures.append(await producer.send(topic, value, key=key, headers=headers))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return count


async def run(args: argparse.Namespace) -> dict[str, Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory(prefix="bench-obs-") as tmp:
            workdir = Path(tmp)
            async with broker(workdir) as bootstrap:
                topics = {
                    "telemetry": f"bench-obs-raw-{int(time.time())}",
                    "anomalies": f"bench-obs-anomalies-{int(time.time())}",
                    "dlq": f"bench-obs-dlq-{int(time.time())}",
                }
                await create_topics(bootstrap, list(topics.values()))
                model_dir = workdir / "models"
                publish_model(model_dir, seed=1)
                values, keys = make_records(args.records, seed=2, anomaly_rate=0.02)
                traced = await preload(bootstrap, topics["telemetry"], values, keys, args.traced)
                modes = {
                    "off": {"CONSUMER_TELEMETRY": "false"},
                    "on": {
                        "CONSUMER_TELEMETRY": "true",
                        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                        "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
                    },
                }
                runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
                for _ in range(args.repeat):
                    for mode, env in modes.items():
                        result = await worker_throughput(
                            bootstrap, topics, model_dir, workdir, args.records, **env
                        )
                        runs[mode].append(result)
                        print(f"{mode:>3}: {result['records_per_s']:,} records/s", flush=True)
    finally:
        server.shutdown()
    median = {
        mode: round(statistics.median(r["records_per_s"] for r in results))
        for mode, results in runs.items()
    }
    return {
        "records": args.records,
        "traced_records": traced,
        "repeat": args.repeat,
        "records_per_s_median": median,
        "overhead_percent": round(100 * (1 - median["on"] / median["off"]), 1),
        "otlp_export_requests": _Sink.requests,
        "otlp_bytes": _Sink.received_bytes,
        "runs": runs,
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
    }


def _cpus() -> int | None:
    import os

    return os.cpu_count()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument(
        "--traced", type=float, default=0.01, help="share of records with a traceparent"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    median = results["records_per_s_median"]
    print(
        f"telemetry off {median['off']:,} records/s, on {median['on']:,} records/s "
        f"({results['overhead_percent']}% overhead; {results['traced_records']:,} traced "
        f"records, {results['otlp_export_requests']} OTLP export requests); "
        f"wrote {args.out}"
    )


if __name__ == "__main__":
    main()
