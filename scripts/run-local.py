#!/usr/bin/env python3
"""`make run`: the whole system on this machine, without Docker.

Starts the local Apache Kafka broker (scripts/kafka-local), creates the topics, then the api
and the worker with a development API key, and stops all of them on Ctrl-C. A broker that
was already running is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"
KAFKA_LOCAL = ROOT / "scripts" / "kafka-local"
STOP_GRACE_SECONDS = 20


def fail(message: str) -> None:
    print(f"make run: {message}", file=sys.stderr)
    raise SystemExit(1)


def check_prerequisites() -> None:
    """Name what is missing before starting anything."""
    java = shutil.which("java")
    if java is None:
        fail(
            "Java 17 or newer is needed for the local Kafka broker: install a JDK (e.g. apt-get install openjdk-17-jre-headless) or use Docker (docker compose up)"
        )
    version = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)', version)
    if match and int(match.group(1)) < 17:
        fail(f"Java 17 or newer is needed; found {match.group(0)}")
    jars_cached = (
        Path(os.environ.get("KAFKA_LOCAL_HOME", VAR / "kafka")) / "lib" / ".kafka-local-complete"
    ).exists()
    if not jars_cached and shutil.which("mvn") is None:
        fail(
            "Maven (mvn) is needed once, to fetch the Kafka broker's jars from Maven Central: install it (e.g. apt-get install maven)"
        )


def broker_running(env: dict[str, str]) -> bool:
    return (
        subprocess.run(
            [str(KAFKA_LOCAL), "status"], env=env, capture_output=True, check=False
        ).returncode
        == 0
    )


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another runner was quicker
                await admin.create_topics(missing)
    finally:
        await admin.close()


def dev_api_key() -> str:
    """A key kept in var/dev-api-key, so the command-line tool and curl can reuse it."""
    path = VAR / "dev-api-key"
    if path.exists():
        return path.read_text().strip()
    VAR.mkdir(parents=True, exist_ok=True)
    key = "dev-" + secrets.token_urlsafe(18)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"make run: {name} did not stop in {STOP_GRACE_SECONDS} s; killing it",
                file=sys.stderr,
            )
            process.kill()
            process.wait()


def main() -> int:
    check_prerequisites()
    port = os.environ.get("KAFKA_LOCAL_PORT", "9092")
    env = {**os.environ, "KAFKA_LOCAL_PORT": port}
    bootstrap = f"127.0.0.1:{port}"
    started_broker = not broker_running(env)
    if started_broker:
        if subprocess.run([str(KAFKA_LOCAL), "start"], env=env, check=False).returncode != 0:
            fail("the local Kafka broker did not start (scripts/kafka-local logs shows why)")
    else:
        print(f"make run: using the Kafka broker already running on {bootstrap}")

    key = dev_api_key()
    service_env = {
        **env,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "MODEL_DIR": os.environ.get("MODEL_DIR", str(VAR / "models")),
        "API_KEYS": os.environ.get("API_KEYS", key),
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "console"),
    }
    topics = [
        service_env.get(n, d)
        for n, d in (
            ("TELEMETRY_TOPIC", "telemetry.raw"),
            ("ANOMALY_TOPIC", "telemetry.anomalies"),
            ("DLQ_TOPIC", "telemetry.dlq"),
        )
    ]
    processes: dict[str, subprocess.Popen[bytes]] = {}
    interrupted = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        asyncio.run(create_topics(bootstrap, topics, partitions=3))
        for name in ("api", "consumer"):
            # Own process groups: Ctrl-C reaches this runner only, which stops them in order.
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", name], env=service_env, cwd=ROOT, start_new_session=True
            )
        api_port = service_env.get("API_PORT", "8000")
        print(
            f"\nmake run: the system is up\n"
            f"  api      http://127.0.0.1:{api_port}  (docs: /docs)\n"
            f"  worker   http://127.0.0.1:{service_env.get('CONSUMER_PORT', '8001')}/health\n"
            f"  kafka    {bootstrap}  topics: {', '.join(topics)}\n"
            f"  models   {service_env['MODEL_DIR']}\n"
            f"  API key  {service_env['API_KEYS']}   (also in var/dev-api-key)\n"
            f"Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        while not interrupted:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(
                        f"make run: {name} exited with status {process.returncode}; stopping",
                        file=sys.stderr,
                    )
                    code = 1
                    interrupted = True
            time.sleep(0.2)
    finally:
        print("\nmake run: stopping", flush=True)
        stop(processes)
        if started_broker:
            subprocess.run([str(KAFKA_LOCAL), "stop"], env=env, check=False)
    return code


if __name__ == "__main__":
    sys.exit(main())
