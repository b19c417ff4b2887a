"""Pure ASGI middleware (no ``BaseHTTPMiddleware``: it would break context variables).

* :class:`RequestContextMiddleware`: request id (``X-Request-ID`` in and out, and
  ``shared.observability.request_id_var`` for logs), one access log line, the HTTP metrics,
  and the last-resort 500 problem for an unhandled exception (logged with its traceback).
* :class:`BodySizeLimitMiddleware`: refuses a body over the limit with 413, from its
  ``Content-Length`` before reading anything, or while counting the bytes of a chunked one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import (
    BODY_TIMEOUT,
    PAYLOAD_TOO_LARGE,
    ProblemError,
    internal_error_response,
    problem_response,
)
from api.metrics import UNMATCHED_ROUTE, ApiMetrics
from shared.log_lines import info_line
from shared.observability import request_id_var

access_logger = logging.getLogger("api.access")
error_logger = logging.getLogger("api.error")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_NAME = REQUEST_ID_HEADER.lower().encode("ascii")
# The status counted and logged for a request whose client disconnected (nginx's convention).
CLIENT_CLOSED = 499
MAX_CACHED_LABELS = 512
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:+=/-]{1,128}$")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` when it is safe to log and echo, else 32 new random hex
    digits."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if _REQUEST_ID_RE.match(text):
                return text
            break
    return os.urandom(16).hex()  # 32 hex digits, as a uuid4's


class RequestContextMiddleware:
    """Request id, access log, metrics and the 500 fallback, for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # (method, route, status) -> its counter and histogram: prometheus_client's labels()
        # takes a lock and builds a key on every call
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _observe(self, labels: tuple[str, str, str], elapsed: float) -> None:
        children = self._children.get(labels)
        if children is None:
            children = (
                self.metrics.requests.labels(*labels),
                self.metrics.request_duration.labels(*labels),
            )
            if len(self._children) < MAX_CACHED_LABELS:  # a client's made-up methods
                self._children[labels] = children
        children[0].inc()
        children[1].observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(scope.get("headers", []))
        id_bytes = request_id.encode("ascii")
        token = request_id_var.set(request_id)
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                # (only this middleware sets the header: appended, not looked for first)
                message["headers"] = [*message.get("headers", ()), (_REQUEST_ID_NAME, id_bytes)]
                if status in (301, 302, 307, 308):
                    headers = MutableHeaders(scope=message)
                    if "location" in headers:
                        # Starlette's trailing-slash redirect builds an absolute URL from the
                        # Host header: keep only its path, so a forged Host goes nowhere.
                        headers["location"] = _relative(headers["location"])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except ClientDisconnect:
            # The client went away mid-request: nobody to answer, nothing of ours failed.
            access_logger.info(
                "client disconnected", extra={"method": scope["method"], "path": scope["path"]}
            )
            status = CLIENT_CLOSED
        except Exception:
            error_logger.exception(
                "unhandled exception", extra={"method": scope["method"], "path": scope["path"]}
            )
            if not response_started:
                response = internal_error_response(scope["path"])
                await response(scope, receive, send_wrapper)
            status = 500
        finally:
            self.metrics.in_progress.dec()
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            self._observe((scope["method"], route, str(status)), elapsed)
            info_line(
                access_logger,
                f"{scope['method']} {scope['path']} {status}",
                _access_fields(scope, status, elapsed),
            )
            request_id_var.reset(token)


def _relative(location: str) -> str:
    parts = urlsplit(location)
    return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED_ROUTE


def _access_fields(scope: Scope, status: int, elapsed: float) -> dict[str, Any]:
    client = scope.get("client")
    state = scope.get("state") or {}
    principal = state.get("principal") if isinstance(state, dict) else None
    return {
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "client": client[0] if client else None,
        "caller": getattr(principal, "identity", None),
    }


class _BodyTooLarge(ProblemError):
    def __init__(self, limit: int, detail: str) -> None:
        super().__init__(413, detail, type_=PAYLOAD_TOO_LARGE)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """A route's largest body, and the setting that sets it (named in the 413)."""

    max_bytes: int
    setting: str
    advice: str = "split the batch into smaller requests"


class BodySizeLimitMiddleware:
    """413 for a request body over its route's limit, declared or streamed; 408 for a body
    whose next bytes do not arrive within ``read_timeout`` seconds (a client that declares
    1,000 bytes and sends 2 no longer holds the request).

    ``limits`` maps an exact path to its limit; every other path has ``default``. A record is
    under 10 KB, so ``/score`` takes far less than a training batch, and the routes without a
    body less still: no route accepts more than it can use.
    """

    def __init__(
        self,
        app: ASGIApp,
        limits: dict[str, BodyLimit],
        default: BodyLimit,
        read_timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.limits = limits
        self.default = default
        self.read_timeout = read_timeout

    @staticmethod
    def _too_large(limit: BodyLimit, size: str) -> _BodyTooLarge:
        return _BodyTooLarge(
            limit.max_bytes,
            f"the request body is {size}; the limit is {limit.max_bytes} bytes "
            f"({limit.setting}): {limit.advice}",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is not None and declared > limit.max_bytes:
            await self._refuse(scope, receive, send, self._too_large(limit, f"{declared} bytes"))
            return
        received = 0
        complete = False

        async def counting_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                # asyncio's own timeout: a quarter of anyio.fail_after's cost, on every read
                # of every body (uvicorn, the one server, runs on asyncio)
                async with asyncio.timeout(self.read_timeout):
                    message = await receive()
            except TimeoutError:
                raise ProblemError(
                    408,
                    f"the request body did not arrive within {self.read_timeout:g} s "
                    "(BODY_READ_TIMEOUT_SECONDS)",
                    type_=BODY_TIMEOUT,
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit.max_bytes:
                    raise self._too_large(limit, f"over {limit.max_bytes} bytes")
            return message

        # A route reading the body raises _BodyTooLarge from counting_receive; the problem
        # handler answers it like any ProblemError. This catches it if a route did not.
        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge as error:
            await self._refuse(scope, receive, send, error)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, error: ProblemError
    ) -> None:
        response = problem_response(
            None, error.status, error.detail, type_=error.type, path=scope["path"]
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
