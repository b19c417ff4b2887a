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
import json
import sys
from collections.abc import Iterator
from typing import Any

from cli import ui
from cli.config import Context
from cli.errors import CliError, UsageError
from cli.explain_input import (
    DIRECTIONS,
    NOT_A_VERDICT_HINT,
    STDIN,
    check_verdict,
    decode_json,
    opened,
    read_records,
    read_verdicts,
)
from cli.explain_render import (
    ARROWS,
    ASCII_ARROWS,
    DEFAULT_WIDTH,
    EIGHTHS,
    STYLES,
    bar,
    direction_text,
    headline,
    label,
    number,
    render,
    rendered_text,
    where_from,
)
from cli.explain_topic import latest_from_topic

__all__ = [
    "ARROWS",
    "ASCII_ARROWS",
    "DEFAULT_SCAN",
    "DEFAULT_WIDTH",
    "DIRECTIONS",
    "EIGHTHS",
    "NOT_A_VERDICT_HINT",
    "STDIN",
    "STYLES",
    "bar",
    "check_verdict",
    "decode_json",
    "direction_text",
    "headline",
    "label",
    "latest_from_topic",
    "number",
    "opened",
    "read_records",
    "read_verdicts",
    "render",
    "rendered_text",
    "run",
    "where_from",
]

DEFAULT_SCAN = 10_000


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
