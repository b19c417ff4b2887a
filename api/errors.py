"""Every error answer is ``application/problem+json`` (RFC 9457).

Routes raise :class:`ProblemError` (or a ``shared.errors`` class, mapped here); FastAPI's own
``RequestValidationError`` and Starlette's ``HTTPException`` (unknown route, wrong method)
are turned into problems too. Unhandled exceptions are caught by the request middleware,
which answers :func:`internal_error_response` and logs the traceback with the request id.
"""

from __future__ import annotations

import http
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic_core import ErrorDetails
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api.schemas import PROBLEM_MEDIA_TYPE, FieldError, Problem
from shared.errors import (
    ERROR_TABLE,
    InvalidRecordError,
    JobsBusyError,
    ModelIntegrityError,
    TrainingError,
    error_kind,
    problem_type,
)
from shared.observability import request_id_var
from shared.schemas import TIMESTAMP_PATTERN, VEHICLE_ID_PATTERN

MAX_LISTED_ERRORS = 20

# Kinds of problem (the `type` member) the api answers itself, beyond the plain HTTP ones
# (`about:blank`); the shared errors' kinds are in shared.errors.ERROR_TABLE.
VALIDATION = problem_type("validation-error")
MALFORMED_JSON = problem_type("malformed-json")
PAYLOAD_TOO_LARGE = problem_type("payload-too-large")
BODY_TIMEOUT = problem_type("body-timeout")
TOO_MANY_RECORDS = problem_type("too-many-records")
UNSUPPORTED_MEDIA_TYPE = problem_type("unsupported-media-type")
UNAUTHORIZED = problem_type("unauthorized")
FORBIDDEN = problem_type("forbidden")
RATE_LIMITED = problem_type("rate-limited")
INTERNAL = problem_type("internal-error")

Headers = Mapping[str, str] | Sequence[tuple[str, str]]

_FRIENDLY_PATTERN_MESSAGES = {
    TIMESTAMP_PATTERN: "must be an RFC 3339 date-time with a zone, e.g. 2024-01-15T10:00:00Z",
    VEHICLE_ID_PATTERN: "must be 1 to 64 letters, digits or any of - _ . :",
}


class ProblemError(Exception):
    """Raise to answer a problem; ``headers`` are added to the response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str = "about:blank",
        title: str | None = None,
        errors: Sequence[FieldError] | None = None,
        headers: Headers | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.title = title or _phrase(status)
        self.errors = list(errors) if errors is not None else None
        self.headers = _header_pairs(headers)


def _header_pairs(headers: Headers | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(name), str(value)) for name, value in headers.items()]
    return list(headers)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    request: Request | None,
    status: int,
    detail: str | None,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Headers | None = None,
    path: str | None = None,
) -> Response:
    """Build the ``application/problem+json`` response."""
    instance = path if path is not None else (request.url.path if request is not None else None)
    problem = Problem(
        type=type_,
        title=title or _phrase(status),
        status=status,
        detail=detail,
        instance=instance,
        request_id=request_id_var.get(),
        errors=list(errors) if errors is not None else None,
    )
    body = problem.model_dump_json(exclude_none=True).encode()
    response = Response(content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)
    for name, value in _header_pairs(headers):  # a name may repeat (two challenges)
        response.headers.append(name, value)
    return response


def internal_error_response(path: str) -> Response:
    """The 500 answer: generic, never a traceback."""
    return problem_response(
        None,
        500,
        "the server failed to handle this request; quote the request id when reporting it",
        type_=INTERNAL,
        path=path,
    )


# --- validation errors --------------------------------------------------------------------


def _message(error: ErrorDetails | Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    if error.get("type") == "string_pattern_mismatch":
        friendly = _FRIENDLY_PATTERN_MESSAGES.get(str(ctx.get("pattern", "")))
        if friendly:
            return friendly
    return str(error.get("msg", "invalid value"))


_TYPE_TAGS = frozenset({"int", "float", "str", "bool", "none", "list", "dict", "tuple", "bytes"})


def _is_union_tag(part: str) -> bool:
    """pydantic names the member of a union in ``loc`` (``literal['auto']``, ``constrained-float``)."""
    return part in _TYPE_TAGS or any(c in part for c in "[]()-', ")


def _clean_loc(loc: list[str], kind: str) -> list[str]:
    keep_last = kind == "extra_forbidden"  # the last part is then the caller's unknown key
    body = loc[:-1] if keep_last else loc
    cleaned = [part for part in body if not _is_union_tag(part)]
    return cleaned + loc[-1:] if keep_last else cleaned


def field_errors(
    errors: Iterable[ErrorDetails | Mapping[str, Any]], *, location: str = "body"
) -> list[FieldError]:
    """pydantic's error list as :class:`FieldError` items (``loc`` joined with dots)."""
    found = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        where = location
        if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            where, loc = loc[0], loc[1:]
        kind = str(error.get("type", "value_error"))
        found.append(
            FieldError(
                field=".".join(_clean_loc(loc, kind)),
                location=where,
                message=_message(error),
                type=kind,
            )
        )
    return found


def validation_problem(errors: list[FieldError], *, detail: str | None = None) -> ProblemError:
    """A 422 naming every field at fault (the first :data:`MAX_LISTED_ERRORS`)."""
    count = len(errors)
    if detail is None:
        fields = ", ".join(sorted({e.field or e.location for e in errors})[:5])
        detail = f"{count} validation error{'s' if count != 1 else ''} in the request ({fields})"
        if count > MAX_LISTED_ERRORS:
            detail += f"; the first {MAX_LISTED_ERRORS} are listed"
    return ProblemError(422, detail, type_=VALIDATION, errors=errors[:MAX_LISTED_ERRORS])


# --- handlers -----------------------------------------------------------------------------


def problem_of(request: Request, error: ProblemError) -> Response:
    """The problem+json answer of a :class:`ProblemError` (the handler's and /score's fast path)."""
    return problem_response(
        request,
        error.status,
        error.detail,
        type_=error.type,
        title=error.title,
        errors=error.errors,
        headers=error.headers,
    )


async def _problem_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ProblemError):  # pragma: no cover - registered for this class
        raise exc
    return problem_of(request, exc)


async def _request_validation_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    problem = validation_problem(field_errors(exc.errors()))
    return await _problem_handler(request, problem)


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    detail = str(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.url.path}"
    elif exc.status_code == 405 and detail == "Method Not Allowed":
        detail = f"{request.url.path} does not accept {request.method}"
    return problem_response(request, exc.status_code, detail, headers=exc.headers)


def problem_for(exc: Exception) -> ProblemError:
    """The problem that answers one of the shared errors (by class: ``ERROR_TABLE``)."""
    kind = error_kind(exc)
    detail = str(exc)
    errors = None
    if isinstance(exc, TrainingError | InvalidRecordError):
        detail = exc.detail
        if exc.field is not None:
            tag = exc.reason if isinstance(exc, InvalidRecordError) else "training_error"
            errors = [FieldError(field=exc.field, message=exc.detail, type=tag)]
    elif isinstance(exc, ModelIntegrityError):
        detail = f"{exc}; the version is refused"
    headers = None
    if isinstance(exc, JobsBusyError):
        headers = {"Retry-After": str(exc.retry_after_seconds)}
    return ProblemError(kind.status, detail, type_=kind.type, errors=errors, headers=headers)


async def _shared_error_handler(request: Request, exc: Exception) -> Response:
    return await _problem_handler(request, problem_for(exc))


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    # Only reached for a failure outside the request middleware (which handles the rest).
    return internal_error_response(request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(ProblemError, _problem_handler)
    app.add_exception_handler(RequestValidationError, _request_validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    for shared_error in ERROR_TABLE:
        app.add_exception_handler(shared_error, _shared_error_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
