"""The api and the worker as child processes: started, their output forwarded, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import IO, Any

from runlocal.common import ROOT, say

# The api waits up to 25 s for a training in flight after SIGTERM; leave it that, and more.
STOP_GRACE_SECONDS = 35
PREFIX_WIDTH = 7


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
