#!/usr/bin/env python3
"""`make run`: the whole system on this machine, without Docker.

1. checks the prerequisites (Java 17+, Maven the first time, free ports) and names what is missing;
2. starts the local Apache Kafka broker (scripts/kafka-local), unless one already runs on the port;
3. creates the topics;
4. starts the api and the worker (`python -m api`, `python -m consumer`) with a development API
   key, forwards their logs with a prefix, and waits until both answer /healthz;
5. prints where everything is, then watches: if the api or the worker dies, it stops the rest;
6. on Ctrl-C (or SIGTERM) stops the worker and the api (SIGTERM: the api finishes a training in
   progress, the worker commits what it published), then the broker if this run started it.
   A second Ctrl-C kills what is left at once.

Environment (all optional): KAFKA_LOCAL_PORT (9092), KAFKA_LOCAL_CONTROLLER_PORT,
KAFKA_LOCAL_DATA, KAFKA_LOCAL_HOME (see scripts/kafka-local), API_PORT (8000),
CONSUMER_PORT (8001), API_HOST (127.0.0.1 here), API_KEYS (default: a development key kept in
var/dev-api-key, or VEHICLE_ANOMALY_KEY_FILE), MODEL_SIGNING_KEY (default: a development
key kept in var/dev-signing-key), MODEL_DIR (var/models), MODEL_POLL_SECONDS (1
here), LOG_FORMAT (console here), RUN_LOCAL_READY_TIMEOUT (120 s).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path

from runlocal.broker import broker_running, create_topics, kafka_local
from runlocal.common import ROOT, Stop, fail, say
from runlocal.devkey import dev_api_key, dev_signing_key, key_file
from runlocal.prerequisites import check_prerequisites
from runlocal.services import Service, describe_exit, http_ok, stop_services

BROKER_STOP_TIMEOUT = 60
TOPIC_TIMEOUT = 60


def main() -> int:
    started_at = time.monotonic()
    stop = threading.Event()
    force = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            force.set()
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    port = os.environ.get("KAFKA_LOCAL_PORT", "9092")
    if not port.isdigit():
        fail(f"KAFKA_LOCAL_PORT must be a port number, not {port!r}")
    bootstrap = f"127.0.0.1:{port}"

    sys.path.insert(0, str(ROOT))
    from shared.errors import ConfigurationError
    from shared.settings import load_settings

    try:
        # The local broker is plain TCP on 127.0.0.1, whatever .env says for production.
        settings = load_settings(
            kafka_bootstrap_servers=bootstrap,
            kafka_security_protocol="PLAINTEXT",
            kafka_sasl_mechanism=None,
        )
    except ConfigurationError as error:
        fail(str(error))
        raise  # unreachable; for type checkers
    api_host = os.environ.get("API_HOST", "127.0.0.1")
    check_prerequisites(api_host, settings.api_port, settings.consumer_port)

    keys = [k.get_secret_value() for k in settings.api_keys if k.get_secret_value()]
    key = keys[0] if keys else dev_api_key()
    model_dir = Path(settings.model_dir)
    if not model_dir.is_absolute():
        model_dir = ROOT / model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    topics = [
        settings.telemetry_topic,
        settings.anomaly_topic,
        settings.alert_topic,
        settings.dlq_topic,
    ]

    env = {**os.environ, "KAFKA_LOCAL_PORT": port}
    service_env = {
        **env,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "MODEL_DIR": str(model_dir),
        "API_KEYS": ",".join(keys) if keys else key,
        # the services refuse to load unsigned models: sign with MODEL_SIGNING_KEY if set,
        # else with a development key kept in var/dev-signing-key
        "MODEL_SIGNING_KEY": (
            settings.model_signing_key.get_secret_value()
            if settings.signing_key is not None and settings.model_signing_key is not None
            else dev_signing_key()
        ),
        "API_HOST": api_host,
        "MODEL_POLL_SECONDS": os.environ.get("MODEL_POLL_SECONDS", "1"),
        "LOG_FORMAT": os.environ.get("LOG_FORMAT", "console"),
        "PYTHONUNBUFFERED": "1",
    }
    service_env.pop("KAFKA_SASL_MECHANISM", None)

    services: list[Service] = []
    started_broker = False
    code = 0
    try:
        if broker_running(env):
            say(f"using the Kafka broker already running on {bootstrap} (it is left running)")
        else:
            started_broker = True
            if kafka_local("start", env, stop) != 0:
                fail(
                    "the local Kafka broker did not start (see above; `scripts/kafka-local logs` has more)"
                )
        if stop.is_set():
            raise Stop
        asyncio.run(create_topics(bootstrap, topics, partitions=3, timeout=TOPIC_TIMEOUT))

        python = sys.executable
        services.append(Service("worker", [python, "-m", "consumer"], service_env))
        services.append(Service("api", [python, "-m", "api"], service_env))
        host = "127.0.0.1" if api_host in ("0.0.0.0", "", "localhost") else api_host  # noqa: S104
        api_url = f"http://{host}:{settings.api_port}"
        worker_url = f"http://127.0.0.1:{settings.consumer_port}"
        pending = {"api": f"{api_url}/healthz", "worker": f"{worker_url}/healthz"}
        deadline = time.monotonic() + float(os.environ.get("RUN_LOCAL_READY_TIMEOUT", "120"))
        while pending:
            if stop.is_set():
                raise Stop
            for service in services:
                if not service.alive():
                    fail(
                        f"{service.name} {describe_exit(service.process.returncode)} while starting "
                        "(its output is above)"
                    )
            for name, url in list(pending.items()):
                if http_ok(url):
                    del pending[name]
            if time.monotonic() > deadline:
                fail(
                    f"{' and '.join(pending)} did not answer /healthz in time (its output is above)"
                )
            time.sleep(0.2)

        cli = ROOT / ".venv" / "bin" / "vehicle-anomaly"
        cli_name = os.path.relpath(cli) if cli.exists() else "vehicle-anomaly"
        say(
            f"the system is up (in {time.monotonic() - started_at:.1f} s)\n"
            f"  api      {api_url}   (docs: {api_url}/docs)\n"
            f"  worker   {worker_url}/health   (it waits for a model: the first training starts it)\n"
            f"  kafka    {bootstrap}   topics: {', '.join(topics)}\n"
            f"  models   {model_dir}\n"
            f"  API key  {key}   ({'from API_KEYS' if keys else f'kept in {key_file()}'}; "
            "vehicle-anomaly finds it)\n"
            f"Next, in another terminal:\n"
            f"  {cli_name} simulate --train    train a model on a simulated fleet, then stream it\n"
            f"  {cli_name} tail                watch the anomalies\n"
            f"Press Ctrl-C to stop everything."
        )
        while not stop.is_set():
            for service in services:
                if not service.alive():
                    print(
                        f"make run: error: {service.name} {describe_exit(service.process.returncode)}; "
                        "stopping the rest",
                        file=sys.stderr,
                        flush=True,
                    )
                    code = 1
                    stop.set()
                    break
            stop.wait(0.2)
    except Stop:
        pass
    except SystemExit as exit_:
        code = int(exit_.code or 0) if isinstance(exit_.code, int) else 1
    except Exception as error:  # a start-up step failed: report it on one line, then clean up
        print(f"make run: error: {error}", file=sys.stderr, flush=True)
        code = 1
    finally:
        say("stopping")
        stop_services(services, force)
        if started_broker:
            broker_code = kafka_local(
                "stop", {**env, "KAFKA_LOCAL_STOP_TIMEOUT": str(BROKER_STOP_TIMEOUT)}
            )
            if broker_code != 0:
                print("make run: error: the broker did not stop cleanly", file=sys.stderr)
                code = code or 1
        say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
