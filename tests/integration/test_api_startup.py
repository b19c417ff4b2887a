"""``python -m api`` as a real process: it refuses to start on bad settings with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_python_dash_m_api_refuses_without_keys(tmp_path: Path) -> None:
    """`python -m api` without keys prints one line naming API_KEYS and exits 2."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in {"API_KEYS", "AUTH_DISABLED"}
    }
    env.update({"MODEL_DIR": str(tmp_path), "API_PORT": "1"})
    done = subprocess.run(
        [sys.executable, "-m", "api"],
        env=env,
        cwd=tmp_path,  # no .env file there
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "api: API_KEYS is empty: set API_KEYS=key1,key2 or AUTH_DISABLED=true for a local demo"
    ]


def test_python_dash_m_api_refuses_without_a_signing_key(tmp_path: Path) -> None:
    """`python -m api` with keys but no MODEL_SIGNING_KEY prints one line naming it and exits 2."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in {"MODEL_SIGNING_KEY", "ALLOW_UNSIGNED_MODELS", "AUTH_DISABLED"}
    }
    env.update({"MODEL_DIR": str(tmp_path), "API_PORT": "1", "API_KEYS": "k"})
    done = subprocess.run(
        [sys.executable, "-m", "api"],
        env=env,
        cwd=tmp_path,  # no .env file there
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("api: MODEL_SIGNING_KEY is not set")


def test_python_dash_m_api_names_a_bad_variable(tmp_path: Path) -> None:
    """`python -m api` with a bad setting prints one line naming the variable and exits 2."""
    env = {**os.environ, "API_PORT": "eighty", "API_KEYS": "k"}
    done = subprocess.run(
        [sys.executable, "-m", "api"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "API_PORT" in done.stderr
