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
var/dev-api-key, or VEHICLE_ANOMALY_KEY_FILE), MODEL_DIR (var/models), MODEL_POLL_SECONDS (1
here), LOG_FORMAT (console here), RUN_LOCAL_READY_TIMEOUT (120 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var"
KAFKA_LOCAL = ROOT / "scripts" / "kafka-local"
# The api waits up to 25 s for a training in flight after SIGTERM; leave it that, and more.
STOP_GRACE_SECONDS = 35
BROKER_STOP_TIMEOUT = 60
TOPIC_TIMEOUT = 60
PREFIX_WIDTH = 7


class Stop(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


def say(message: str) -> None:
    print(f"make run: {message}", flush=True)


def fail(message: str) -> None:
    print(f"make run: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


# --- prerequisites -------------------------------------------------------------------------


def java_command() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def java_major(java: str) -> int | None:
    try:
        output = subprocess.run(
            [java, "-XshowSettings:properties", "-version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"java\.specification\.version = (?:1\.)?(\d+)", output)
    return int(match.group(1)) if match else None


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def check_prerequisites(api_host: str, api_port: int, consumer_port: int) -> None:
    """Name everything that is missing, then stop; start nothing."""
    missing = []
    java = java_command()
    if java is None:
        missing.append(
            "Java 17 or newer, for the local Kafka broker: install a JDK "
            "(e.g. apt-get install openjdk-17-jre-headless, brew install openjdk@17) or set JAVA_HOME"
        )
    else:
        major = java_major(java)
        if major is None or major < 17:
            missing.append(
                f"Java 17 or newer ({java} is version {major or 'unknown'}): "
                "put a newer java on PATH or set JAVA_HOME"
            )
    home = Path(os.environ.get("KAFKA_LOCAL_HOME") or VAR / "kafka")
    if not (home / "lib" / ".kafka-local-complete").exists() and shutil.which("mvn") is None:
        missing.append(
            "Maven (mvn), needed once to fetch the Kafka broker's jars from Maven Central "
            "(e.g. apt-get install maven, brew install maven)"
        )
    for name, host, port in (
        ("API_PORT", api_host, api_port),
        ("CONSUMER_PORT", "0.0.0.0", consumer_port),  # noqa: S104 (the worker binds all interfaces)
    ):
        if not port_free(port, host if host not in ("", "localhost") else "127.0.0.1"):
            missing.append(
                f"port {port} is in use ({name}): is `make run` already running? "
                f"Stop it, or choose another port with {name}=..."
            )
    if missing:
        for item in missing:
            print(f"make run: missing: {item}", file=sys.stderr)
        raise SystemExit(1)


# --- the development key -------------------------------------------------------------------


def key_file() -> Path:
    explicit = os.environ.get("VEHICLE_ANOMALY_KEY_FILE", "").strip()
    return Path(explicit) if explicit else VAR / "dev-api-key"


def dev_api_key() -> str:
    """A key kept in a file (var/dev-api-key), so the command-line tool and curl can reuse it."""
    path = key_file()
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "dev-" + secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


# --- processes -----------------------------------------------------------------------------


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except (ImportError, OSError):
        return None


_LIBC = _load_libc()  # loaded before any fork: the child must not import anything


def _die_with_parent() -> None:
    """In the child: get SIGTERM should this runner be killed outright (Linux only)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def forward(name: str, stream: IO[bytes]) -> None:
    """Copy a child's output lines to ours, prefixed with its name."""
    prefix = f"{name:<{PREFIX_WIDTH}}| "
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        with contextlib.suppress(ValueError, OSError):
            sys.stdout.write(prefix + line + "\n")
            sys.stdout.flush()
    stream.close()


class Service:
    """One child process in its own session (Ctrl-C on the terminal reaches the runner only)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if _LIBC is not None else None,
        )
        assert self.process.stdout is not None
        self.thread = threading.Thread(
            target=forward, args=(name, self.process.stdout), name=f"forward-{name}", daemon=True
        )
        self.thread.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        # The child leads its own process group (start_new_session): signal that group, by id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)


def stop_services(services: list[Service], force: threading.Event) -> None:
    """SIGTERM every service, wait up to STOP_GRACE_SECONDS, then SIGKILL what is left."""
    for service in services:
        if service.alive():
            service.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for service in services:
        while service.alive() and time.monotonic() < deadline and not force.is_set():
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.process.wait(timeout=0.2)
        if service.alive():
            reason = "on a second Ctrl-C" if force.is_set() else f"after {STOP_GRACE_SECONDS} s"
            say(f"{service.name} did not stop; killing it {reason}")
            service.signal_group(signal.SIGKILL)
            service.process.wait()
        # A well-behaved child leaves no process in its group; make sure.
        service.signal_group(signal.SIGKILL)
        service.thread.join(timeout=5)


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own localhost URL)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --- the broker ----------------------------------------------------------------------------


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


# --- main ----------------------------------------------------------------------------------


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
    topics = [settings.telemetry_topic, settings.anomaly_topic, settings.dlq_topic]

    env = {**os.environ, "KAFKA_LOCAL_PORT": port}
    service_env = {
        **env,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "MODEL_DIR": str(model_dir),
        "API_KEYS": ",".join(keys) if keys else key,
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
