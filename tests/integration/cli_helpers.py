"""The ``vehicle-anomaly`` command as a subprocess, in an environment without service settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLI = Path(sys.executable).with_name("vehicle-anomaly")
_SERVICE_PREFIXES = (
    "KAFKA_",
    "API_",
    "MODEL_",
    "CONSUMER_",
    "TELEMETRY_",
    "ANOMALY_",
    "DLQ_",
    "PUBLISH_",
    "VEHICLE_ANOMALY_",
    "IFOREST_",
    "DETECTOR_",
    "DETECTION_",
)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any service or CLI setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_PREFIXES)}
    env.update({"PYTHONPATH": str(REPO), **extra})
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``vehicle-anomaly ARGS`` as a subprocess; its completed process (text)."""
    return subprocess.run(
        [str(CLI), *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    """Status 0 and no traceback; the standard output."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    """Status ``code``, exactly one stderr line containing ``text``, no traceback."""
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("vehicle-anomaly"), result.stderr
    assert text in result.stderr, result.stderr
