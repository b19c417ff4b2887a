"""``POST /score`` answered before FastAPI's routing and dependency solving.

``/score`` is the hot route; resolving its dependency tree (two security schemes, the
authentication, the rate limit, the body, the services, a query parameter) cost more than
scoring the record. This ASGI middleware, the innermost, answers ``POST /score`` with the same
functions the route uses (:func:`api.auth.identify_caller`, :func:`api.deps.take_token`,
:func:`api.body.parse_score_request`, :func:`api.scoring.verdict`) and the same problem+json
answers; the route stays for the OpenAPI document and answers anything this one passes on.
The request middleware around it still sets the request id, logs and counts the request.

:func:`install_score_dispatch` goes one step further: ``POST /score`` skips FastAPI's own
outer layers too (its last-resort error middleware, its native-telemetry hooks, its app-wide
body limit), which cost a fifth of a request and do nothing for it: the request middleware
already answers an unhandled exception with the 500 problem, and no app-wide body limit is
set. Not with tracing on: the OpenTelemetry instrumentation wraps the stack FastAPI builds.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio.to_thread
from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import bearer_credentials, identify_caller
from api.body import THREAD_THRESHOLD_BYTES, check_content_type_value, parse_score_request
from api.deps import take_token
from api.errors import ProblemError, problem_for, problem_of, validation_problem
from api.routes.score import router as score_router
from api.schemas import FieldError
from api.scoring import verdict
from shared.errors import ERROR_TABLE

SCORE_PATH = "/score"
MAX_VERSION_LENGTH = 64
_SHARED_ERRORS = tuple(ERROR_TABLE)
_JSON_CONTENT_TYPE = (b"content-type", b"application/json")


class ScoreFastPath:
    """Answers ``POST /score`` itself; every other request goes on to ``app``."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi
        self._route: object | None = None

    def _score_route(self) -> object | None:
        if self._route is None:
            self._route = _find_route(score_router.routes)
        return self._route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SCORE_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.fastapi
        scope["route"] = self._score_route()  # the metrics' route label
        request = Request(scope, receive)
        try:
            body = await self._answer(request)
        except ProblemError as error:
            response = problem_of(request, error)
        except _SHARED_ERRORS as error:
            response = problem_of(request, problem_for(error))
        else:
            # the two messages a Response would send, without building one
            headers = [(b"content-length", b"%d" % len(body)), _JSON_CONTENT_TYPE]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> bytes:
        api_key, authorization, content_type = _score_headers(request.scope["headers"])
        principal = identify_caller(request, api_key, bearer_credentials(authorization))
        request.state.principal = principal
        services = request.app.state.services
        take_token(services, principal)
        # (parsing an empty query string costs as much as reading the record)
        query = request.scope.get("query_string")
        model_version = request.query_params.get("model_version") if query else None
        if model_version is not None and len(model_version) > MAX_VERSION_LENGTH:
            raise _query_problem(model_version)
        check_content_type_value(content_type)
        raw = await read_body(request.receive)
        if len(raw) > THREAD_THRESHOLD_BYTES:
            record = await anyio.to_thread.run_sync(parse_score_request, raw)
        else:
            record = parse_score_request(raw)
        return await verdict(services, record, model_version)


class ScoreDispatch:
    """The app's middleware stack, with ``POST /score`` sent to ``score`` (the user
    middleware alone: request context, body limit, :class:`ScoreFastPath`)."""

    def __init__(self, stack: ASGIApp, score: ASGIApp) -> None:
        self.stack = stack
        self.score = score

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == SCORE_PATH and scope["method"] == "POST":
            await self.score(scope, receive, send)
        else:
            await self.stack(scope, receive, send)


def install_score_dispatch(app: FastAPI) -> None:
    """Make ``app`` build its middleware stack as a :class:`ScoreDispatch` (after the user
    middleware is added, before the first request)."""
    if app.max_body_size is not None:  # an app-wide limit is one of the layers skipped
        return
    build = app.build_middleware_stack

    def build_with_dispatch() -> ASGIApp:
        stack = build()
        score: ASGIApp = _unanswered
        for cls, args, kwargs in reversed(app.user_middleware):
            score = cls(score, *args, **kwargs)
        return ScoreDispatch(stack, score)

    app.build_middleware_stack = build_with_dispatch  # type: ignore[method-assign]


async def _unanswered(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("ScoreFastPath answers every POST /score")  # pragma: no cover


def _score_headers(
    headers: Sequence[tuple[bytes, bytes]],
) -> tuple[str | None, str | None, str | None]:
    """The first ``X-API-Key``, ``Authorization`` and ``Content-Type`` of a request, as
    Starlette's ``Headers.get`` reads each, in one pass (names arrive lowercased in ASGI)."""
    api_key = authorization = content_type = None
    for name, value in headers:
        if name == b"x-api-key":
            if api_key is None:
                api_key = value.decode("latin-1")
        elif name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
    return api_key, authorization, content_type


async def read_body(receive: Receive) -> bytes:
    """The request's body, as ``Request.body`` reads it (``ClientDisconnect`` if the client
    goes), without its stream generator."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _find_route(routes: Sequence[object]) -> object | None:
    """The ``POST /score`` route among ``routes`` (and any nested routers')."""
    for route in routes:
        if getattr(route, "path", None) == SCORE_PATH:
            return route
        found = _find_route(getattr(route, "routes", ()))
        if found is not None:
            return found
    return None


def _query_problem(value: str) -> ProblemError:
    """The 422 that FastAPI's ``Query(max_length=64)`` gives the route, as a problem."""
    error = FieldError(
        field="model_version",
        location="query",
        message=f"String should have at most {MAX_VERSION_LENGTH} characters",
        type="string_too_long",
    )
    return validation_problem([error])
