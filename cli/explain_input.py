"""What `explain` reads: verdicts and telemetry records as JSON text, each checked."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeGuard

from cli.errors import CliError

DIRECTIONS = ("above", "below", "within")
STDIN = "-"
NOT_A_VERDICT_HINT = (
    "explain reads the JSON verdicts `vehicle-anomaly tail --json` prints or POST /score answers"
)


def decode_json(lines: Iterable[str], name: str) -> Iterator[tuple[str, Any]]:
    """JSON values of a text, with where each begins (``line N``).

    JSON lines are decoded (and yielded) as each line arrives, so ``tail --json | explain``
    explains verdicts as they come. From the first line that is not a whole JSON value on its
    own (a pretty-printed object, a list), the rest is read to the end and decoded as one or
    more JSON values.
    """
    decoder = json.JSONDecoder()
    iterator = iter(lines)
    number = 0
    for line in iterator:
        number += 1
        text = line.strip()
        if not text:
            continue
        try:
            yield f"line {number}", json.loads(text)
            continue
        except json.JSONDecodeError as error:
            if text[0] not in "{[":
                raise CliError(
                    f"{name} line {number}: not JSON ({error.msg}); {NOT_A_VERDICT_HINT}"
                ) from None
        rest = line + "".join(iterator)
        first = number
        index = 0
        while True:
            while index < len(rest) and rest[index].isspace():
                index += 1
            if index >= len(rest):
                return
            at = first + rest.count("\n", 0, index)
            try:
                value, index = decoder.raw_decode(rest, index)
            except json.JSONDecodeError as error:
                if error.pos >= len(rest.rstrip()):
                    raise CliError(
                        f"{name} line {at}: not JSON (the value is cut short at the end)"
                    ) from None
                where = first + rest.count("\n", 0, error.pos)
                raise CliError(f"{name} line {where}: not JSON ({error.msg})") from None
            yield f"line {at}", value


def _flatten(values: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """A JSON list stands for its items."""
    for where, value in values:
        if isinstance(value, list):
            for index, item in enumerate(value, start=1):
                yield f"{where} item {index}", item
        else:
            yield where, value


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_verdict(value: Any, where: str) -> dict[str, Any]:
    """``value`` if it is a verdict with a well-formed attribution, else a one-line CliError."""
    if not isinstance(value, dict):
        raise CliError(f"{where}: not a verdict (a JSON object is expected); {NOT_A_VERDICT_HINT}")
    if "is_anomaly" not in value:
        if "feature_vector" in value:
            raise CliError(
                f"{where}: a telemetry record, not a verdict; "
                "score and explain it with `vehicle-anomaly explain --record FILE`"
            )
        raise CliError(f"{where}: not a verdict (no is_anomaly field); {NOT_A_VERDICT_HINT}")
    if not isinstance(value["is_anomaly"], bool):
        raise CliError(f"{where}: is_anomaly is {value['is_anomaly']!r}, not true or false")
    attribution = value.get("attribution")
    if attribution is None:
        return value
    if not isinstance(attribution, list):
        raise CliError(f"{where}: attribution must be a list, not {type(attribution).__name__}")
    for rank, entry in enumerate(attribution, start=1):
        problem = _attribution_problem(entry)
        if problem:
            raise CliError(f"{where}: attribution entry {rank}: {problem}")
    return value


def _attribution_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "a JSON object is expected"
    feature = entry.get("feature")
    if not isinstance(feature, int) or isinstance(feature, bool) or feature < 0:
        return f"feature is {feature!r}, not a feature index"
    share = entry.get("share")
    if not _is_number(share) or not 0 <= share <= 1:
        return f"share is {share!r}, not a number from 0 to 1"
    value = entry.get("value")
    if value is not None and not _is_number(value):
        return f"value is {value!r}, not a number"
    direction = entry.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        return f"direction is {direction!r}, not above, below or within"
    typical = entry.get("typical")
    if typical is not None and not (
        isinstance(typical, list) and len(typical) == 2 and all(_is_number(v) for v in typical)
    ):
        return f"typical is {typical!r}, not [low, high]"
    name = entry.get("name")
    if name is not None and not isinstance(name, str):
        return f"name is {name!r}, not text"
    return None


@contextlib.contextmanager
def opened(source: str) -> Iterator[tuple[IO[str], str]]:
    """The text of a file, or of stdin for ``-``, with the name errors use; stdin stays open."""
    if source == STDIN:
        yield sys.stdin, "<stdin>"
        return
    path = Path(source)
    if not path.exists():
        raise CliError(f"file not found: {source}")
    if not path.is_file():
        raise CliError(f"not a file: {source}")
    try:
        handle = path.open(encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot read {source}: {error.strerror or error}") from None
    with handle:
        yield handle, source


def read_verdicts(stream: Iterable[str], name: str) -> Iterator[dict[str, Any]]:
    """Checked verdicts of a JSON text (JSON lines, one object or a list of them)."""
    try:
        for where, value in _flatten(decode_json(stream, name)):
            if isinstance(value, dict) and value.get("unreadable") is True:
                continue  # `tail --json` marks a value it could not decode this way
            yield check_verdict(value, f"{name} {where}")
    except UnicodeDecodeError as error:
        raise CliError(f"{name}: not UTF-8 text ({error.reason})") from None


def read_records(stream: Iterable[str], name: str) -> list[dict[str, Any]]:
    """Telemetry records of a JSON text, checked as ``train --file`` checks them."""
    from cli.readers import _record

    records = []
    try:
        for where, value in _flatten(decode_json(stream, name)):
            if not isinstance(value, dict):
                raise CliError(f"{name} {where}: a JSON object (a telemetry record) is expected")
            if "is_anomaly" in value and "feature_vector" not in value:
                raise CliError(
                    f"{name} {where}: a verdict, not a telemetry record; explain it without "
                    "--record (vehicle-anomaly explain FILE)"
                )
            records.append(_record(Path(name), where, value, None).record)
    except UnicodeDecodeError as error:
        raise CliError(f"{name}: not UTF-8 text ({error.reason})") from None
    if not records:
        raise CliError(f"{name}: no telemetry record")
    return records
