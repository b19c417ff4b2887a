"""Reading a JSON request body into a contract model, with problem+json for every failure.

The routes take their body through these dependencies instead of FastAPI's own body
parameters so that a large ``/ingest`` batch is decoded and validated off the event loop (in
a child process past a megabyte, :mod:`api.body_process`), the record count is checked before the records are
validated, and every failure has a precise answer:

* a ``Content-Type`` that is not JSON: 415 (no ``Content-Type`` at all is read as JSON);
* an empty body: 422, ``field`` ``""``;
* bytes that are not JSON (or not UTF-8, nested absurdly deep, or with an integer of
  thousands of digits): 400, with the position where the decoder gives one;
* JSON that breaks the schema (``NaN`` and ``Infinity`` included): 422 naming each field.
"""

from __future__ import annotations

import email.message
import functools
import json
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
from fastapi import Request
from pydantic import BaseModel, ValidationError

from api.budget import Share, WorkBudget
from api.errors import (
    MALFORMED_JSON,
    TOO_MANY_RECORDS,
    UNSUPPORTED_MEDIA_TYPE,
    ProblemError,
    field_errors,
    validation_problem,
)
from api.schemas import FieldError
from api.topic_request import TopicTrainingRequest
from api.training_batch import TrainingBatch, batch_of
from shared.schemas import ScoreRequest
from shared.training_schemas import TrainingRequest

M = TypeVar("M", bound=BaseModel)

# Bodies larger than this are decoded and validated in a worker thread.
THREAD_THRESHOLD_BYTES = 64 * 1024
# /ingest bodies larger than this are decoded and validated in a child process: json.loads
# holds the interpreter's lock throughout, about 20 ms per MB.
PROCESS_THRESHOLD_BYTES = 1024 * 1024


def check_content_type(request: Request) -> None:
    """A 415 problem unless the body is declared JSON (no ``Content-Type`` is read as JSON)."""
    check_content_type_value(request.headers.get("content-type"))


def check_content_type_value(value: str | None) -> None:
    """:func:`check_content_type` of a ``Content-Type`` header's value (``None``: none sent)."""
    if not value or (_is_json(value) if len(value) <= 256 else _is_json.__wrapped__(value)):
        return
    raise ProblemError(
        415,
        f"the body must be JSON (Content-Type: application/json), not {value[:100]!r}",
        type_=UNSUPPORTED_MEDIA_TYPE,
    )


@functools.lru_cache(maxsize=64)
def _is_json(value: str) -> bool:
    """Whether a ``Content-Type`` names JSON (cached: a client sends the same one every time,
    and parsing it with the email package cost more than parsing the record)."""
    message = email.message.Message()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


# what msgspec decodes, it decodes to the values json.loads gives (both keep the last of
# duplicate keys), at a fraction of json.loads' cost (it is handed text: it does not check
# the UTF-8 of bytes)
_DECODER = msgspec.json.Decoder()


def _malformed(message: str, **where: int) -> ProblemError:
    error = FieldError(field="", location="body", message=message, type="json_invalid", **where)
    suffix = f" at line {where['line']} column {where['column']}" if "line" in where else ""
    return ProblemError(
        400, f"the body is not valid JSON: {message}{suffix}", type_=MALFORMED_JSON, errors=[error]
    )


def decode_json(raw: bytes) -> Any:
    """The body's JSON value: msgspec's decoder, and for what it refuses Python's, which says
    why (or reads ``NaN``/``Infinity`` and numbers out of range, which validation then
    refuses), so that the answers are the same either way."""
    if not raw.strip():
        missing = FieldError(field="", message="a JSON body is required", type="missing")
        raise validation_problem([missing])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        where = error.start
        raise _malformed(f"invalid UTF-8 byte at position {where}", position=where) from None
    try:
        return _DECODER.decode(text)
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _malformed(
            error.msg, line=error.lineno, column=error.colno, position=error.pos
        ) from None
    except RecursionError:
        raise _malformed("the JSON is nested too deeply") from None
    except ValueError as error:
        # Python's int-from-string limit (sys.get_int_max_str_digits), raised inside the
        # decoder for a JSON integer of thousands of digits: bad input, not our failure.
        raise _malformed(f"a number is too long ({error})") from None


def validate(model: type[M], value: Any) -> M:
    """``model`` from decoded JSON, or a 422 problem naming every field at fault."""
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise validation_problem(field_errors(error.errors(include_input=False))) from None


def _batch_values(records: list[Any]) -> int:
    """Records x features of a decoded batch, from its first record (mixed widths are refused
    later; the first one's width is what every record must have)."""
    first = records[0] if records else None
    vector = first.get("feature_vector") if isinstance(first, dict) else None
    return len(records) * max(1, len(vector) if isinstance(vector, list) else 1)


def decode_batch(raw: bytes, max_records: int) -> tuple[Any, int | None]:
    """An ``/ingest`` body decoded and its records counted (413 past ``max_records``), with the
    values (records x features) its share of the training budget is; ``None`` when there
    are no records to count (validation will say why)."""
    value = decode_json(raw)
    records = value.get("records") if isinstance(value, dict) else None
    if not isinstance(records, list):
        return value, None
    if len(records) > max_records:
        raise ProblemError(
            413,
            f"the batch has {len(records)} records; the limit is {max_records} per request "
            "(INGEST_MAX_RECORDS): split it into smaller batches",
            type_=TOO_MANY_RECORDS,
        )
    return value, _batch_values(records)


def validate_batch(value: Any) -> TrainingBatch:
    """A decoded ``/ingest`` body validated (422 naming each field) and turned into arrays."""
    return batch_of(validate(TrainingRequest, value))


def parse_training_request(
    raw: bytes,
    max_records: int,
    values: WorkBudget | None = None,
    shares: list[Share] | None = None,
) -> TrainingBatch:
    """Decode, count, take the batch's share of ``values``, then validate an ``/ingest`` body
    (blocking: may run in a thread). The share is appended to ``shares`` for the caller to
    release once the training is over. :class:`api.body_process.BodyProcesses` does the same
    in two steps, in a child process."""
    value, needed = decode_batch(raw, max_records)
    if values is not None and shares is not None and needed is not None:
        shares.append(values.take(needed))
    return validate_batch(value)


async def training_request_body(request: Request) -> AsyncIterator[TrainingBatch]:
    """Dependency: the ``/ingest`` body as arrays, with its shares of the work budgets held
    until the training is over.

    The body's bytes take a share of ``INGEST_MAX_BYTES_IN_FLIGHT`` before they are read; the
    decoded batch a share of ``TRAINING_MAX_VALUES_IN_FLIGHT`` (records x features) before
    it is validated, kept until the answer. A body over ``PROCESS_THRESHOLD_BYTES`` is
    decoded in one of the api's child processes (as many as the training slots), a smaller
    large one in a worker thread that takes a training slot, so at most that many are
    expanded at once.
    """
    check_content_type(request)
    services = request.app.state.services
    settings = request.app.state.settings
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isdigit() else settings.ingest_max_body_bytes
    shares = [services.body_bytes.take(min(size, settings.ingest_max_body_bytes))]
    try:
        raw = await request.body()
        limit = settings.ingest_max_records
        if len(raw) > PROCESS_THRESHOLD_BYTES:
            body = await services.body_processes.parse(raw, limit, services.training_values, shares)
        elif len(raw) > THREAD_THRESHOLD_BYTES:
            body = await anyio.to_thread.run_sync(
                parse_training_request,
                raw,
                limit,
                services.training_values,
                shares,
                limiter=services.training_limiter,
            )
        else:
            body = parse_training_request(raw, limit, services.training_values, shares)
        shares[0].release()  # the bytes are decoded: only the batch is held now
        del raw
        yield body
    finally:
        for share in shares:
            share.release()


def parse_score_request(raw: bytes) -> ScoreRequest:
    """Decode and validate a ``/score`` body, its history included (blocking: may run in a
    thread)."""
    body = validate(ScoreRequest, decode_json(raw))
    body.check_history()
    return body


async def score_request_body(request: Request) -> ScoreRequest:
    """Dependency: the ``/score`` body (a telemetry record with an optional history)."""
    check_content_type(request)
    raw = await request.body()
    if len(raw) > THREAD_THRESHOLD_BYTES:
        return await anyio.to_thread.run_sync(parse_score_request, raw)
    return parse_score_request(raw)


async def topic_training_body(request: Request) -> TopicTrainingRequest:
    """Dependency: the ``/ingest/from-topic`` body (problem+json for every failure)."""
    check_content_type(request)
    raw = await request.body()
    return validate(TopicTrainingRequest, decode_json(raw))
