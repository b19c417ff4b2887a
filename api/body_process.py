"""Large ``/ingest`` bodies decoded and validated in child processes, not in the api's own.

``json.loads`` of a 27 MB batch holds the interpreter's lock for half a second in one
stretch (the C scanner never lets go of it), so in a worker thread it still stops the event
loop: ``/healthz`` waited that long. A child process has its own interpreter lock.

The work keeps its order in the api's process: the child decodes the body and counts its
records (413 past ``INGEST_MAX_RECORDS``) and says how many values the batch holds; the api
takes the batch's share of ``TRAINING_MAX_VALUES_IN_FLIGHT`` (503 if it does not fit) and only
then lets the child validate it and turn it into arrays
(:class:`api.training_batch.TrainingBatch`), so a refused batch is never validated and the
answers are those of :func:`api.body.parse_training_request`, which both sides call the
parts of. A problem found in the child comes back as its fields and is raised again here.

At most ``size`` children run, started on first use (a new interpreter: the api's threads
make ``fork`` unsafe) and reused; a child that fails or whose request is cancelled mid-exchange
is stopped rather than reused. :meth:`BodyProcesses.close` stops them (the app's lifespan).
A child's first body waits for its imports (scikit-learn, through ``shared.fitting``: about
5 s on a 2-core machine), once per child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import site
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from api.body import decode_batch, validate_batch
from api.budget import Share, WorkBudget
from api.errors import ProblemError
from api.training_batch import TrainingBatch

logger = logging.getLogger("api.body")

_STOP_SECONDS = 5.0


class BodyProcessError(RuntimeError):
    """A child process failed (not the body's fault): the request is a 500."""


def _problem_state(error: ProblemError) -> dict[str, Any]:
    return {
        "status": error.status,
        "detail": error.detail,
        "type_": error.type,
        "title": error.title,
        "errors": error.errors,
        "headers": error.headers,
    }


def _problem_from(state: dict[str, Any]) -> ProblemError:
    status = state.pop("status")
    detail = state.pop("detail")
    return ProblemError(status, detail, **state)


def _child_main(conn: Connection) -> None:
    """A child's loop: one body at a time, until the api sends ``None`` or goes away."""
    while True:
        try:
            max_records = conn.recv()
            if max_records is None:
                return
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            value, needed = decode_batch(raw, max_records)
            del raw
            conn.send(("counted", needed))
            if not conn.recv():  # the api refused the batch's share: drop it
                continue
            conn.send(("batch", validate_batch(value)))
        except ProblemError as error:
            conn.send(("problem", _problem_state(error)))
        except (EOFError, OSError):
            return
        except Exception as error:  # reported to the api, which answers 500
            conn.send(("failed", f"{type(error).__name__}: {error}"))
        finally:
            value = None


class _Child:
    """``python -m api.body_process FD``: a fresh interpreter, spoken to over a socket pair.

    Not ``multiprocessing``'s spawn, which imports the parent's ``__main__`` again in the
    child (whatever script started the api, a test runner say).
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = _child_environment()
        try:
            self.process = subprocess.Popen(  # noqa: S603  (this interpreter, this module)
                [sys.executable, "-m", "api.body_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=env,
                close_fds=True,
            )
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        try:
            self.process.wait(_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(_STOP_SECONDS)
        self.conn.close()


def _child_environment() -> dict[str, str]:
    """The api's environment, with this api package's directory on ``PYTHONPATH`` unless it
    is a site-packages directory (an installed api: importable anyway, and a site directory
    ahead of the standard library could shadow it)."""
    root = os.path.realpath(Path(__file__).resolve().parent.parent)
    sites = {os.path.realpath(p) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if root in sites:
        return dict(os.environ)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


class BodyProcesses:
    """Up to ``size`` child processes decoding ``/ingest`` bodies, one body each at a time."""

    def __init__(self, size: int) -> None:
        self._slots = anyio.CapacityLimiter(size)
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._lock = threading.Lock()
        self._closed = False

    @property
    def started(self) -> int:
        """How many children are running."""
        with self._lock:
            return len(self._idle) + len(self._busy)

    async def parse(
        self, raw: bytes, max_records: int, values: WorkBudget, shares: list[Share]
    ) -> TrainingBatch:
        """:func:`api.body.parse_training_request` of ``raw``, done in a child process."""
        async with self._slots:
            child = await self._checkout()
            reusable = False
            try:
                batch = await self._exchange(child, raw, max_records, values, shares)
                reusable = True
                return batch
            except ProblemError:
                reusable = True  # the exchange ended as the protocol says
                raise
            finally:
                self._checkin(child, reusable)

    async def _exchange(
        self,
        child: _Child,
        raw: bytes,
        max_records: int,
        values: WorkBudget,
        shares: list[Share],
    ) -> TrainingBatch:
        def send_body() -> None:
            child.conn.send(max_records)
            child.conn.send_bytes(raw)

        await anyio.to_thread.run_sync(send_body)
        kind, payload = await self._receive(child)
        if kind == "counted":
            go = False
            try:
                if payload is not None:
                    shares.append(values.take(payload))
                go = True
            finally:
                child.conn.send(go)  # False: the child drops the batch, the exchange is over
            kind, payload = await self._receive(child)
        if kind == "batch":
            batch: TrainingBatch = payload
            return batch
        if kind == "problem":
            raise _problem_from(payload)
        raise BodyProcessError(f"the body's child process failed: {payload}")

    @staticmethod
    async def _receive(child: _Child) -> tuple[str, Any]:
        try:
            message: tuple[str, Any] = await anyio.to_thread.run_sync(child.conn.recv)
        except (EOFError, OSError) as error:
            raise BodyProcessError(
                f"the body's child process ended (exit code {child.process.poll()})"
            ) from error
        return message

    async def _checkout(self) -> _Child:
        with self._lock:
            if self._closed:
                raise BodyProcessError("the api is stopping")
            while self._idle:
                child = self._idle.pop()
                if child.alive():
                    self._busy.add(child)
                    return child
                child.conn.close()
        child = await anyio.to_thread.run_sync(_Child)
        with self._lock:
            self._busy.add(child)
        logger.info("body process started", extra={"pid": child.process.pid})
        return child

    def _checkin(self, child: _Child, reusable: bool) -> None:
        with self._lock:
            self._busy.discard(child)
            if reusable and not self._closed:
                self._idle.append(child)
                return
        child.kill()

    def close(self) -> None:
        """Stop the children (idle ones at once; one in use is killed)."""
        with self._lock:
            self._closed = True
            idle, busy = self._idle, list(self._busy)
            self._idle, self._busy = [], set()
        for child in idle:
            child.stop()
        for child in busy:
            child.kill()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the api's to handle
    _child_main(Connection(int(sys.argv[1])))
