"""``vehicle-anomaly explain``: which features made a verdict anomalous, as a bar chart.

An anomalous verdict carries ``attribution``, its features ranked by their share of the
record's isolation (see ``shared/attribution.py``). This draws one bar per feature, as long as
its share, with the feature's name (or ``feature N``), the share in percent, the record's
value and where that value lies against the training data's typical range (p05 to p95):

    VH-002 at 2024-01-15T10:05:00Z: anomalous, score -0.1500 (model 20240115100000, ...)
      oil_pressure  █████████████████████▎          71.0%  612    ↑ above typical 301.5 to 402.3
      feature 1     ███▋                            12.0%  2,100    within typical 900 to 2,900

Verdicts come from a file or stdin (JSON lines as ``tail --json`` prints them, one JSON
object, or a JSON list), from the api (``--record``: a telemetry record scored through
``POST /score``), or from the anomalies topic (``--from-topic``: the latest anomalous ones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeGuard

from cli import kafkaio, ui
from cli.config import Context
from cli.errors import CliError, UsageError

DIRECTIONS = ("above", "below", "within")
ARROWS = {"above": "↑", "below": "↓", "within": " "}
ASCII_ARROWS = {"above": "^", "below": "v", "within": " "}
EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
STYLES = {"above": "red", "below": "blue", "within": "yellow"}
STDIN = "-"
DEFAULT_WIDTH = 30
DEFAULT_SCAN = 10_000
NOT_A_VERDICT_HINT = (
    "explain reads the JSON verdicts `vehicle-anomaly tail --json` prints or POST /score answers"
)


# --- rendering (pure: verdict in, lines out) --------------------------------------------------


def bar(share: float, width: int, *, ascii_only: bool = False) -> str:
    """A bar of ``share`` (0..1) of ``width`` cells, padded with spaces to ``width``.

    With block characters a cell is split in eighths; a share above 0 always shows something.
    """
    share = min(max(share, 0.0), 1.0)
    cells = share * width
    if ascii_only:
        count = round(cells)
        if share > 0 and count == 0:
            count = 1
        return ("#" * count).ljust(width)
    full = int(cells)
    eighths = round((cells - full) * 8)
    if eighths == 8:
        full, eighths = full + 1, 0
    if share > 0 and full == 0 and eighths == 0:
        eighths = 1
    return ("█" * full + EIGHTHS[eighths]).ljust(width)


def number(value: float | None) -> str:
    """A reading, compact and without exponent for everyday magnitudes: 612, 2,100, 0.93."""
    if value is None:
        return "?"
    size = abs(value)
    if size >= 1e7 or (0 < size < 1e-3):
        return f"{value:.3g}"
    if size >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.1f}" if size >= 100 else f"{value:.2f}" if size >= 10 else f"{value:.3f}"
    text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def label(entry: dict[str, Any]) -> str:
    """The feature's name, or ``feature N`` when the model was trained without names."""
    name = entry.get("name")
    return name if isinstance(name, str) and name.strip() else f"feature {entry['feature']}"


def where_from(verdict: dict[str, Any]) -> str:
    source = verdict.get("source")
    if not isinstance(source, dict):
        return ""
    return f"{source.get('topic', '?')}[{source.get('partition', '?')}]@{source.get('offset', '?')}"


def headline(verdict: dict[str, Any]) -> str:
    """``VH-002 at 2024-...Z``: which record the verdict is about."""
    return f"{verdict.get('vehicle_id', '?')} at {verdict.get('timestamp', '?')}"


def _details(verdict: dict[str, Any]) -> str:
    score = verdict.get("anomaly_score")
    parts = [f"model {verdict.get('model_version', '?')}"]
    source = where_from(verdict)
    if source:
        parts.append(source)
    shown = f"{score:+.4f}" if isinstance(score, int | float) else "?"
    return f"score {shown} ({', '.join(parts)})"


def direction_text(entry: dict[str, Any], *, ascii_only: bool = False) -> str:
    """``↑ above typical 301.5 to 402.3``, ``  within typical 0 to 1``, ``↓ below``."""
    direction = entry.get("direction") or "within"
    arrow = (ASCII_ARROWS if ascii_only else ARROWS)[direction]
    typical = entry.get("typical")
    if isinstance(typical, list) and len(typical) == 2:
        return f"{arrow} {direction} typical {number(typical[0])} to {number(typical[1])}"
    if direction == "within":
        return f"{arrow} (the model keeps no typical range)"
    return f"{arrow} {direction} the typical range"


def render(
    verdict: dict[str, Any], *, width: int = DEFAULT_WIDTH, ascii_only: bool = False
) -> list[ui.Line]:
    """A verdict as styled lines: a headline, then one bar per attributed feature."""
    head = headline(verdict)
    if not verdict.get("is_anomaly"):
        return [
            [
                (f"{head}: ", "bold"),
                ("not anomalous", "green"),
                (f", {_details(verdict)}; a normal verdict has no attribution", None),
            ]
        ]
    lines: list[ui.Line] = [
        [(f"{head}: ", "bold"), ("anomalous", "bold red"), (f", {_details(verdict)}", None)]
    ]
    attribution = verdict.get("attribution")
    if not attribution:
        why = (
            "no feature stood out (an empty attribution)"
            if isinstance(attribution, list)
            else "the verdict carries no attribution (ATTRIBUTION_TOP_K=0, or it was scored "
            "before verdicts were explained)"
        )
        lines.append([(f"  {why}", "dim")])
        return lines
    labels = [label(entry) for entry in attribution]
    values = [number(entry.get("value")) for entry in attribution]
    label_width = max(len(text) for text in labels)
    value_width = max(len(text) for text in values)
    for entry, name, value in zip(attribution, labels, values, strict=True):
        share = float(entry["share"])
        direction = entry.get("direction") or "within"
        lines.append(
            [
                (f"  {name.ljust(label_width)}  ", None),
                (bar(share, width, ascii_only=ascii_only), STYLES.get(direction)),
                (f"  {share * 100:5.1f}%", "bold"),
                (f"  {value.ljust(value_width)}  ", None),
                (direction_text(entry, ascii_only=ascii_only), STYLES.get(direction)),
            ]
        )
    rest = 1.0 - sum(float(entry["share"]) for entry in attribution)
    if rest >= 0.001:
        lines.append([(f"  the other features: {rest * 100:.1f}%", "dim")])
    return lines


def rendered_text(verdict: dict[str, Any], **options: Any) -> str:
    """The plain text of :func:`render` (for tests and pipes)."""
    return "\n".join(ui.plain(line) for line in render(verdict, **options))


# --- reading verdicts and records ----------------------------------------------------------


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


# --- the latest verdicts on the anomalies topic ------------------------------------------


async def latest_from_topic(
    context: Context,
    topic: str,
    *,
    count: int,
    vehicle: str | None,
    scan: int,
    timeout: float,  # noqa: ASYNC109 (a bound on the whole read)
) -> tuple[list[dict[str, Any]], int]:
    """The latest ``count`` anomalous verdicts (of ``vehicle``), oldest first, and how many
    verdicts were read to find them.

    Reads each partition backwards from its end, in growing steps, at most ``scan`` verdicts
    per partition, until the ``count`` newest matches are newer than anything still unread.
    """
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    async with kafkaio.admin(context) as admin:
        partitions = (await kafkaio.partitions_of(admin, [topic], context))[topic]
    deadline = time.monotonic() + timeout
    async with kafkaio.consumer(context, auto_offset_reset="earliest") as consumer:
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        try:
            beginning = await consumer.beginning_offsets(assigned)
            end = await consumer.end_offsets(assigned)
        except KafkaError as error:
            raise CliError(f"reading {topic!r} failed: {kafkaio.kafka_reason(error)}") from None
        floor = {tp: max(beginning[tp], end[tp] - scan) for tp in assigned}
        lower = dict(end)  # [lower, end) of each partition has been read
        oldest: dict[Any, int] = {}  # the earliest timestamp read on each partition
        found: list[tuple[int, int, int, dict[str, Any]]] = []
        step = max(count * 4, 200)
        while True:
            ranges = {
                tp: (max(floor[tp], lower[tp] - step), lower[tp])
                for tp in assigned
                if lower[tp] > floor[tp]
            }
            if not ranges:
                break
            for message in await _read_ranges(consumer, ranges, deadline, topic, timeout):
                tp = TopicPartition(message.topic, message.partition)
                oldest[tp] = min(oldest.get(tp, message.timestamp), message.timestamp)
                verdict = _anomalous(message.value, vehicle)
                if verdict is not None:
                    found.append((message.timestamp, message.partition, message.offset, verdict))
            for tp, (low, _high) in ranges.items():
                lower[tp] = low
            if len(found) >= count:
                found.sort(key=lambda item: item[:3], reverse=True)
                # anything still unread on a partition is older than what was read there
                unread_bound = [oldest.get(tp, -1) for tp in assigned if lower[tp] > floor[tp]]
                if not unread_bound or found[count - 1][0] >= max(unread_bound):
                    break
            step *= 2
    found.sort(key=lambda item: item[:3], reverse=True)
    read = sum(end[tp] - lower[tp] for tp in assigned)
    return [verdict for *_, verdict in reversed(found[:count])], read


async def _read_ranges(
    consumer: Any,
    ranges: dict[Any, tuple[int, int]],
    deadline: float,
    topic: str,
    timeout: float,  # noqa: ASYNC109
) -> list[Any]:
    """The messages of each partition's [low, high) offsets."""
    from aiokafka.errors import KafkaError

    for tp, (low, _high) in ranges.items():
        consumer.seek(tp, low)
    pending = set(ranges)
    others = [tp for tp in consumer.assignment() if tp not in pending]
    if others:
        consumer.pause(*others)
    consumer.resume(*pending)
    messages: list[Any] = []
    try:
        while pending:
            if time.monotonic() > deadline:
                raise CliError(f"reading {topic!r} took longer than {timeout:g} s (see --timeout)")
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, batch in batches.items():
                high = ranges[tp][1]
                messages.extend(m for m in batch if m.offset < high)
            for tp in list(pending):
                if await consumer.position(tp) >= ranges[tp][1]:
                    pending.discard(tp)
                    consumer.pause(tp)
    except KafkaError as error:
        raise CliError(f"reading {topic!r} failed: {kafkaio.kafka_reason(error)}") from None
    return messages


def _anomalous(value: bytes | None, vehicle: str | None) -> dict[str, Any] | None:
    try:
        verdict = json.loads(value or b"")
    except (TypeError, ValueError):
        return None
    if not isinstance(verdict, dict) or verdict.get("is_anomaly") is not True:
        return None
    if vehicle is not None and verdict.get("vehicle_id") != vehicle:
        return None
    try:
        return check_verdict(verdict, "")
    except CliError:
        return None


# --- the command -------------------------------------------------------------------------


def _check_options(args: argparse.Namespace) -> str:
    """Which source the verdicts come from; a usage error for options that do not fit it."""
    if args.record is not None:
        source = "record"
    elif args.from_topic:
        source = "topic"
    else:
        source = "verdicts"
    topic_only = [
        ("--last", args.last is not None),
        ("--scan", args.scan is not None),
        ("--topic", args.topic is not None),
        ("--timeout", args.timeout is not None),
    ]
    if source != "topic":
        for option, given in topic_only:
            if given:
                raise UsageError(f"{option} goes with --from-topic")
    if source != "record" and args.model is not None:
        raise UsageError("--model goes with --record")
    if source == "record" and args.vehicle is not None:
        raise UsageError("--vehicle does not go with --record (the record names its vehicle)")
    if source == "verdicts" and args.verdicts is None and sys.stdin.isatty():
        raise UsageError(
            "give the verdicts: a FILE (- for stdin), --record FILE or --from-topic "
            "(see vehicle-anomaly explain --help)"
        )
    return source


def _verdicts(args: argparse.Namespace, context: Context, source: str) -> Iterator[dict[str, Any]]:
    if source == "topic":
        topic = args.topic or context.settings.anomaly_topic
        count = args.last or 1
        scan = args.scan or DEFAULT_SCAN
        with ui.spinner(f"reading the latest verdicts on {topic}", enabled=not args.quiet):
            found, read = asyncio.run(
                latest_from_topic(
                    context,
                    topic,
                    count=count,
                    vehicle=args.vehicle,
                    scan=scan,
                    timeout=args.timeout or 30.0,
                )
            )
        if not found:
            whose = f" of vehicle {args.vehicle}" if args.vehicle else ""
            among = f" among the latest {read:,} verdicts" if read else ""
            raise CliError(f"no anomalous verdict{whose}{among} on {topic!r}")
        yield from found
        return
    if source == "record":
        from cli.apiclient import ApiClient

        with opened(args.record) as (stream, name):
            records = read_records(stream, name)
        client = ApiClient(context)
        query = {"model_version": args.model} if args.model else None
        for record in records:
            answer = client.request("POST", "/score", record, query=query)
            yield check_verdict(answer, "the api's answer to POST /score")
        return
    shown = 0
    with opened(args.verdicts or STDIN) as (stream, name):
        for verdict in read_verdicts(stream, name):
            if args.vehicle is not None and verdict.get("vehicle_id") != args.vehicle:
                continue
            shown += 1
            yield verdict
    if not shown:
        whose = f" of vehicle {args.vehicle}" if args.vehicle else ""
        raise CliError(f"{name}: no verdict{whose}")


def run(args: argparse.Namespace, context: Context) -> int:
    source = _check_options(args)
    ascii_only = not ui.can_encode("█▏↑↓")
    first = True
    for verdict in _verdicts(args, context, source):
        if args.json:
            print(json.dumps(verdict.get("attribution"), separators=(",", ":")), flush=True)
            continue
        lines = render(verdict, width=args.width, ascii_only=ascii_only)
        ui.print_lines(lines if first else [[], *lines])
        first = False
    return 0
