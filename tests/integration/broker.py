"""Getting a Kafka broker for a test session.

:func:`kafka_broker` yields a bootstrap address ("host:port"), picking in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` when set: a broker someone else runs (nothing started or stopped);
2. a testcontainers Kafka container (KRaft) when ``docker info`` succeeds;
3. ``scripts/kafka-local`` on free ports with its own data directory, stopped at the end.

``KAFKA_TEST_BROKER=docker`` or ``=local`` forces choice 2 or 3 (when ``KAFKA_BOOTSTRAP_SERVERS``
is unset).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
KAFKA_LOCAL = REPO_ROOT / "scripts" / "kafka-local"

# The first start resolves ~45 MB of jars with Maven; later starts take a few seconds.
START_TIMEOUT_S = 600
STOP_TIMEOUT_S = 90
DOCKER_IMAGE = os.environ.get("KAFKA_TEST_IMAGE", "confluentinc/cp-kafka:7.6.0")
_PORT_RACE_MARKERS = ("already in use", "BindException", "Address already in use")


class BrokerStartError(RuntimeError):
    """The test broker could not be started; the message carries its output."""


def docker_available(timeout: float = 10.0) -> bool:
    """True when a Docker daemon answers ``docker info`` within ``timeout`` seconds."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        result = subprocess.run(
            [docker, "info"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


@contextlib.contextmanager
def kafka_broker(data_root: Path) -> Iterator[str]:
    """Yield the bootstrap address of a broker for this session (see the module docstring)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if external:
        yield external
        return
    choice = os.environ.get("KAFKA_TEST_BROKER", "auto").strip().lower()
    if choice not in {"auto", "docker", "local"}:
        raise BrokerStartError(f"KAFKA_TEST_BROKER must be auto, docker or local, not {choice!r}")
    if choice == "docker" or (choice == "auto" and docker_available()):
        with _container_broker() as bootstrap:
            yield bootstrap
    else:
        with local_broker(data_root) as bootstrap:
            yield bootstrap


@contextlib.contextmanager
def _container_broker() -> Iterator[str]:
    with warnings.catch_warnings():
        # testcontainers >= 4.14 moved the module and warns on the old import path.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:
            from testcontainers.kafka import KafkaContainer

    container = (
        KafkaContainer(image=DOCKER_IMAGE)
        .with_kraft()
        .with_env("KAFKA_NUM_PARTITIONS", "3")
        .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true")
    )
    container.start(timeout=180)
    try:
        yield container.get_bootstrap_server()
    finally:
        container.stop()


def _run_kafka_local(
    command: str, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_LOCAL), command],
        env=env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


class _LocalBroker:
    """One ``scripts/kafka-local`` instance on the given ports; ``stop`` is idempotent."""

    def __init__(self, data_root: Path, port: int, controller_port: int) -> None:
        self.port = port
        self.env = {
            **os.environ,
            "KAFKA_LOCAL_PORT": str(port),
            "KAFKA_LOCAL_CONTROLLER_PORT": str(controller_port),
            "KAFKA_LOCAL_DATA": str(data_root / f"broker-{port}"),
        }
        self._stopped = True

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> subprocess.CompletedProcess[str]:
        self._stopped = False
        # Should the interpreter exit without running the fixture's teardown, still stop it.
        atexit.register(self.stop)
        return _run_kafka_local("start", self.env, START_TIMEOUT_S)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        result = _run_kafka_local("stop", self.env, STOP_TIMEOUT_S)
        if result.returncode != 0:
            raise BrokerStartError(f"scripts/kafka-local stop failed:\n{result.stdout}")


@contextlib.contextmanager
def local_broker(data_root: Path, attempts: int = 3) -> Iterator[str]:
    """Run ``scripts/kafka-local`` on free ports with data under ``data_root``; stop it on exit."""
    for attempt in range(1, attempts + 1):
        broker = _LocalBroker(data_root, *free_ports(2))
        try:
            result = broker.start()
        except BaseException:
            broker.stop()
            raise
        if result.returncode == 0:
            break
        broker.stop()
        if attempt < attempts and any(marker in result.stdout for marker in _PORT_RACE_MARKERS):
            continue  # another process took one of the ports meanwhile: try two new ones
        raise BrokerStartError(
            f"scripts/kafka-local start failed (exit {result.returncode}):\n{result.stdout}"
        )
    print(result.stdout, file=sys.stderr, end="")  # shown with pytest -s
    try:
        yield f"127.0.0.1:{broker.port}"
    finally:
        broker.stop()


@contextlib.contextmanager
def private_broker(data_root: Path) -> Iterator[_LocalBroker]:
    """A ``scripts/kafka-local`` broker of one test's own, on free ports with its own data.

    The test may ``stop()`` it (``kafka-local stop``: by the pid it recorded) and ``start()`` it
    again on the same ports and data; it is stopped when the block ends.
    """
    broker = _LocalBroker(data_root, *free_ports(2))
    try:
        result = broker.start()
        if result.returncode != 0:
            raise BrokerStartError(f"scripts/kafka-local start failed:\n{result.stdout}")
        yield broker
    finally:
        broker.stop()
