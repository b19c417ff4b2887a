"""``vehicle-anomaly tail``: follow the anomalies topic (``--alerts``: the alerts topic), as a
table or JSON lines.

No consumer group: the partitions are assigned directly and nothing is committed, so any
number of tails can run beside the services without a rebalance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

from cli import kafkaio, tail_alerts
from cli.config import Context
from cli.errors import CliError
from cli.simulate import _signals

COLUMNS = (
    ("TIME", 24),
    ("VEHICLE", 10),
    ("SCORE", 8),
    ("ANOMALY", 7),
    ("MODEL", 16),
    ("SOURCE", 0),
)


def header() -> str:
    return "  ".join(
        name.rjust(width) if name == "SCORE" else name.ljust(width) for name, width in COLUMNS
    ).rstrip()


def row(verdict: dict[str, Any], raw_partition: int, raw_offset: int) -> str:
    """One verdict as a table line (the source is the raw record's partition/offset)."""
    source = verdict.get("source") or {}
    where = (
        f"{source.get('topic', '?')}[{source.get('partition', '?')}]@{source.get('offset', '?')}"
        if source
        else f"(anomalies[{raw_partition}]@{raw_offset})"
    )
    score = verdict.get("anomaly_score")
    cells = [
        str(verdict.get("timestamp", "?")),
        str(verdict.get("vehicle_id", "?")),
        f"{score:+.4f}" if isinstance(score, int | float) else "?",
        "yes" if verdict.get("is_anomaly") else "no",
        str(verdict.get("model_version", "?")),
        where,
    ]
    return "  ".join(
        cell.rjust(width) if name == "SCORE" else cell.ljust(width)
        for (name, width), cell in zip(COLUMNS, cells, strict=True)
    ).rstrip()


def run(args: argparse.Namespace, context: Context) -> int:
    alerts = bool(getattr(args, "alerts", False))
    default = context.settings.alert_topic if alerts else context.settings.anomaly_topic
    topic = args.topic or default
    shown, complete, interrupted = asyncio.run(_follow(args, context, topic))
    if args.limit is not None and not complete and not interrupted:
        what = "alert events" if alerts else "verdicts"
        raise CliError(
            f"only {shown} of {args.limit} {what} arrived on {topic!r} within {args.timeout:g} s"
        )
    return 0


async def _follow(args: argparse.Namespace, context: Context, topic: str) -> tuple[int, bool, bool]:
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    stop = asyncio.Event()
    alerts = bool(getattr(args, "alerts", False))
    shown = 0
    out = sys.stdout
    async with kafkaio.admin(context) as admin:
        partitions = (await kafkaio.partitions_of(admin, [topic], context))[topic]
    async with kafkaio.consumer(context, auto_offset_reset="earliest") as consumer:
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        if args.from_beginning:
            await consumer.seek_to_beginning(*assigned)
        else:
            await consumer.seek_to_end(*assigned)
        if not args.json:
            print(tail_alerts.header() if alerts else header(), file=out, flush=True)
        deadline = time.monotonic() + args.timeout if args.timeout else None
        with _signals(stop):
            while not stop.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                wait_ms = int(min(0.5, left) * 1000) if left is not None else 500
                try:
                    batches = await consumer.getmany(timeout_ms=max(wait_ms, 1))
                except KafkaError as error:
                    raise CliError(
                        f"reading {topic!r} failed: {kafkaio.kafka_reason(error)}"
                    ) from None
                # within a batch, in the records' own time order (partitions interleave)
                messages = sorted(
                    (m for batch in batches.values() for m in batch),
                    key=lambda m: _record_time(m, "at" if alerts else "timestamp"),
                )
                for message in messages:
                    _show(message, args.json, out, alerts)
                    shown += 1
                    if args.limit is not None and shown >= args.limit:
                        return shown, True, False
                if messages:
                    with contextlib.suppress(BrokenPipeError):
                        out.flush()
    return shown, False, stop.is_set()


def _record_time(message: Any, field: str = "timestamp") -> tuple[str, int, int]:
    try:
        stamp = str(json.loads(message.value).get(field, ""))
    except (TypeError, ValueError, AttributeError):
        stamp = ""
    return stamp, message.partition, message.offset


def _show(message: Any, as_json: bool, out: Any, alerts: bool = False) -> None:
    try:
        verdict = json.loads(message.value)
        if not isinstance(verdict, dict):
            raise ValueError
    except (TypeError, ValueError):
        if as_json:
            print(
                json.dumps(
                    {"unreadable": True, "partition": message.partition, "offset": message.offset}
                ),
                file=out,
            )
        else:
            print(
                f"(unreadable value at partition {message.partition} offset {message.offset})",
                file=out,
            )
        return
    if as_json:
        print(json.dumps(verdict, separators=(",", ":")), file=out)
    elif alerts:
        print(tail_alerts.row(verdict), file=out)
    else:
        print(row(verdict, message.partition, message.offset), file=out)
