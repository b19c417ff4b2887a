"""``make run`` (scripts/run-local.py): up, fed by the CLI, anomalies out, Ctrl-C leaves nothing.

The runner is started as ``make`` starts it (``python scripts/run-local.py``) on free ports,
with its broker's data, its models and its key file in a temporary directory (the broker's
jars come from the shared cache, var/kafka/lib).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.broker import free_ports
from tests.integration.cli_helpers import REPO, assert_ok, clean_env, run_cli

RUNNER = REPO / "scripts" / "run-local.py"
KAFKA_HOME = Path(os.environ.get("KAFKA_LOCAL_HOME") or REPO / "var" / "kafka")
UP_LINE = "make run: the system is up"


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Runner:
    """scripts/run-local.py with its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(RUNNER)],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, line: str, timeout: float) -> float:
        """Seconds until ``line`` appears in the output; fails if the runner exits first."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if line in self.text():
                return time.monotonic() - began
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the runner exited ({self.process.returncode}):\n{self.text()[-4000:]}"
                )
            time.sleep(0.2)
        raise AssertionError(f"no {line!r} within {timeout}s:\n{self.text()[-4000:]}")


@pytest.fixture
def ports() -> dict[str, int]:
    kafka, controller, api, worker = free_ports(4)
    return {"kafka": kafka, "controller": controller, "api": api, "worker": worker}


def runner_env(tmp_path: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    settings = {
        "KAFKA_LOCAL_PORT": str(ports["kafka"]),
        "KAFKA_LOCAL_CONTROLLER_PORT": str(ports["controller"]),
        "KAFKA_LOCAL_DATA": str(tmp_path / "kafka"),
        "KAFKA_LOCAL_HOME": str(KAFKA_HOME),
        "API_PORT": str(ports["api"]),
        "CONSUMER_PORT": str(ports["worker"]),
        "MODEL_DIR": str(tmp_path / "models"),
        "VEHICLE_ANOMALY_KEY_FILE": str(tmp_path / "dev-api-key"),
    }
    return clean_env(**{**settings, **extra})


@contextlib.contextmanager
def cleanup(runner: Runner, env: dict[str, str]) -> Iterator[list[int]]:
    """Whatever happens, stop the runner, its children and the broker, each by its pid."""
    pids: list[int] = []
    try:
        yield pids
    finally:
        if runner.process.poll() is None:
            runner.process.send_signal(signal.SIGINT)
            try:
                runner.process.wait(90)
            except subprocess.TimeoutExpired:
                runner.process.kill()
                runner.process.wait(10)
        for pid in pids:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        subprocess.run(
            [str(REPO / "scripts" / "kafka-local"), "stop"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )


@pytest.mark.skipif(
    shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="needs Java 17+"
)
def test_make_run_serves_the_cli_and_stops_clean_on_ctrl_c(
    tmp_path: Path, ports: dict[str, int]
) -> None:
    """make run comes up, simulate --train feeds it, tail sees an anomaly, Ctrl-C stops all."""
    env = runner_env(tmp_path, ports)
    began = time.monotonic()
    runner = Runner(env, tmp_path / "run.log")
    with cleanup(runner, env) as pids:
        up_after = runner.wait_for(UP_LINE, timeout=240)
        text = runner.text()
        key = (tmp_path / "dev-api-key").read_text().strip()
        assert f"API key  {key}" in text
        assert f"http://127.0.0.1:{ports['api']}" in text
        assert "api    | " in text and "worker | " in text  # the children's logs are forwarded
        services = children(runner.process.pid)
        broker_pid = int(
            (KAFKA_HOME / "run" / f"kafka-{ports['kafka']}.pid").read_text().split()[0]
        )
        pids += [*services, broker_pid]
        assert len(services) == 2 and all(alive(p) for p in pids)

        cli_env = clean_env(
            KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{ports['kafka']}",
            VEHICLE_ANOMALY_API=f"http://127.0.0.1:{ports['api']}",
            VEHICLE_ANOMALY_KEY_FILE=str(tmp_path / "dev-api-key"),  # the key make run wrote
        )
        simulate = run_cli(
            "simulate",
            "--train",
            "--train-records",
            "3000",
            "--count",
            "600",
            "--rate",
            "300",
            "--anomaly-rate",
            "0.05",
            env=cli_env,
            cwd=tmp_path,
        )
        assert "sent 600 records" in assert_ok(simulate)
        tail = run_cli(
            "tail", "--from-beginning", "--limit", "1", "--timeout", "60", env=cli_env, cwd=tmp_path
        )
        lines = assert_ok(tail).splitlines()
        assert len(lines) == 2 and " yes " in lines[1] and "telemetry.raw[" in lines[1]
        first_anomaly_after = time.monotonic() - began

        runner.process.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the runner
        assert runner.process.wait(120) == 0, runner.text()[-3000:]
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in pids if alive(p)], f"left running: {pids}"
        for port in ports.values():
            assert not listening(port), f"something still listens on {port}"
        assert "make run: stopped" in runner.text()
        # the trained version survived the stop, whole
        versions = [
            p for p in (tmp_path / "models").iterdir() if p.is_dir() and not p.name.startswith(".")
        ]
        assert versions and all(
            (v / "model.joblib").is_file() and (v / "meta.json").is_file() for v in versions
        )
        assert (tmp_path / "models" / "LATEST").read_text().strip() in {v.name for v in versions}
        print(
            f"\nmake run: up after {up_after:.1f} s, first anomaly printed after {first_anomaly_after:.1f} s"
        )


def test_missing_prerequisites_are_named(tmp_path: Path, ports: dict[str, int]) -> None:
    """Without java and mvn on PATH (and no cached jars) the runner names both and starts nothing."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = runner_env(tmp_path, ports, PATH=str(empty), KAFKA_LOCAL_HOME=str(tmp_path / "no-jars"))
    env.pop("JAVA_HOME", None)
    result = subprocess.run(
        [sys.executable, str(RUNNER)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "missing: Java 17 or newer" in result.stderr
    assert "missing: Maven (mvn)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "kafka").exists() and not listening(ports["kafka"])


def test_a_busy_api_port_is_named(tmp_path: Path, ports: dict[str, int]) -> None:
    """When API_PORT is taken the runner says which variable to change, before starting anything."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["api"]))
        busy.listen()
        result = subprocess.run(
            [sys.executable, str(RUNNER)],
            cwd=REPO,
            env=runner_env(tmp_path, ports),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"port {ports['api']} is in use (API_PORT)" in result.stderr
    assert not (tmp_path / "kafka").exists()
