"""``vehicle-anomaly evaluate``: replay a labelled set through the running pipeline.

1. Pin the current end of the verdict and dead-letter topics (only newer records matter).
2. Wait (up to a minute) for the worker's consumer group to have members.
3. Produce the labelled set to the raw topic (labels in ``x-label``/``x-injected`` headers) and
   note where each record landed (partition, offset).
4. Read verdicts and dead letters, matching them to our records by their source reference,
   until the worker's group has committed past every record: the worker commits a record only
   after its verdict (or dead letter) is acknowledged, so by then every verdict is on the topic.
   A record with no verdict was scored normal (the worker publishes anomalies only by default).
5. Compare with the labels: precision, recall, F1, the confusion matrix, recall per kind.

With a split flag (see :mod:`cli.evaluate_split`), a file's leading part trains a model
first through ``POST /ingest`` (its labelled records left out), and the rest is replayed in
time order; ``--model VERSION`` names an existing version instead. ``--offline`` needs no
broker: the model is loaded or trained here, and the records scored here exactly as the
worker scores them (see :mod:`cli.evaluate_model`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from cli import evaluate_episodes, evaluate_model, kafkaio, ui
from cli.config import Context
from cli.errors import CliError
from cli.evaluate_group import committed, group_members
from cli.evaluate_input import Item, plan_of
from cli.evaluate_report import figures, print_result
from cli.simulate import _signals

MEMBER_WAIT_SECONDS = 60.0
COMMIT_POLL_SECONDS = 0.5


def run(args: argparse.Namespace, context: Context) -> int:
    settings = context.settings
    topics = {
        "raw": args.topic or settings.telemetry_topic,
        "anomalies": args.anomaly_topic or settings.anomaly_topic,
        "dlq": args.dlq_topic or settings.dlq_topic,
        "alerts": settings.alert_topic,
    }
    group = args.group or settings.consumer_group
    began = time.monotonic()
    plan = plan_of(args)
    train_items, replay = plan.train, plan.replay
    split = {
        "split": plan.how,
        "trained_on": len(train_items),
        "training_labelled_left_out": plan.left_out,
        "replayed": len(replay),
    }
    if args.offline:
        model = evaluate_model.offline_model(args, context, train_items)
        scores = evaluate_model.score(model, replay)
        verdicts = {
            i: {
                "is_anomaly": bool(s < 0),
                "anomaly_score": float(s),
                "model_version": model.version,
            }
            for i, s in enumerate(scores)
        }
        seconds = time.monotonic() - began
        where = {"mode": "offline", "model": model.source, "seconds": round(seconds, 2)}
        result = figures(replay, verdicts, {}, where)
        events = evaluate_episodes.offline_events(model.estimator, replay, scores, settings)
        if events is not None:
            result["episodes"] = evaluate_episodes.report(replay, events, int((scores < 0).sum()))
    else:
        version = None
        if train_items:
            # Fail on an unreachable broker before spending a training on it.
            asyncio.run(kafkaio.probe(context.bootstrap, context.connect_timeout))
            version = evaluate_model.train_through_api(
                args, context, train_items, plan.feature_names
            )
            # the worker looks for a new active version every MODEL_POLL_SECONDS
            with ui.spinner("waiting for the worker to load it", enabled=not args.quiet):
                time.sleep(float(settings.model_poll_seconds) + 1.0)
        elif args.model:
            evaluate_model.check_active(context, args.model)
            version = args.model
        result = asyncio.run(_evaluate(args, context, replay, topics, group))
        others = [v for v in result["model_versions"] if version and v != version]
        if others:
            result["warnings"] = [
                f"verdicts from other versions than {version}: {', '.join(others)} "
                "(the worker had not loaded it yet)"
            ]
    result.update(split)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print_result(result)
    return 0


async def _evaluate(
    args: argparse.Namespace,
    context: Context,
    items: list[Item],
    topics: dict[str, str],
    group: str,
) -> dict[str, Any]:
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaError

    began = time.monotonic()
    deadline = began + args.timeout
    stop = asyncio.Event()
    async with (
        kafkaio.admin(context) as admin,
        kafkaio.consumer(context, auto_offset_reset="earliest") as consumer,
        kafkaio.producer(context, linger_ms=20) as producer,
    ):
        signals = contextlib.ExitStack()
        signals.enter_context(_signals(stop))
        try:
            read = [topics["anomalies"], topics["dlq"]]
            found = await kafkaio.partitions_of(admin, read, context)
            with contextlib.suppress(CliError):  # no alerts topic: no episode figures
                found.update(await kafkaio.partitions_of(admin, [topics["alerts"]], context))
                read.append(topics["alerts"])
            watched = [TopicPartition(t, p) for t in read for p in found[t]]
            consumer.assign(watched)
            await consumer.seek_to_end(*watched)
            for tp in watched:  # resolve the positions now, before anything is produced
                await consumer.position(tp)

            with _phase(args, "waiting for the worker's group", None) as show:
                wait_until = min(deadline, time.monotonic() + MEMBER_WAIT_SECONDS)
                while (members := await group_members(admin, group)) == 0:
                    if stop.is_set():
                        raise CliError("interrupted before anything was produced", 130)
                    if time.monotonic() > wait_until:
                        raise CliError(
                            f"the worker's consumer group {group!r} has no members: start the worker "
                            "(python -m consumer, or make run) and make sure a model is active "
                            "(vehicle-anomaly models list)"
                        )
                    show(0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                del members

            await kafkaio.ensure_topic_for_producer(producer, topics["raw"], context)
            where: dict[tuple[int, int], int] = {}
            with _phase(args, f"producing to {topics['raw']}", len(items)) as show:
                futures = []
                for index, item in enumerate(items):
                    futures.append(
                        await producer.send(
                            topics["raw"],
                            value=json.dumps(item.record, separators=(",", ":")).encode(),
                            key=str(item.record.get("vehicle_id", "")).encode(),
                            headers=item.headers(),
                        )
                    )
                    if index % 500 == 0:
                        show(index)
                for index, meta in enumerate(await asyncio.gather(*futures)):
                    where[(meta.partition, meta.offset)] = index
                show(len(items))
            produced_at = time.monotonic()
            last: dict[int, int] = {}
            for partition, offset in where:
                last[partition] = max(last.get(partition, -1), offset)

            verdicts: dict[int, dict[str, Any]] = {}
            dead: dict[int, str] = {}
            alerts: list[dict[str, Any]] = []

            def take(messages: list[Any]) -> None:
                for message in messages:
                    if message.topic == topics["alerts"]:
                        event = evaluate_episodes.ours(message.value, topics["raw"], where)
                        if event is not None:
                            alerts.append(event)
                    elif message.topic == topics["anomalies"]:
                        try:
                            verdict = json.loads(message.value)
                            source = verdict["source"]
                            key = (int(source["partition"]), int(source["offset"]))
                            if source["topic"] != topics["raw"]:
                                continue
                        except (TypeError, ValueError, KeyError):
                            continue
                        if key in where:
                            verdicts[where[key]] = verdict
                    else:
                        headers = {
                            k: bytes(v).decode("utf-8", "replace") for k, v in message.headers or ()
                        }
                        try:
                            key = (int(headers["source_partition"]), int(headers["source_offset"]))
                        except (KeyError, ValueError):
                            continue
                        if headers.get("source_topic") == topics["raw"] and key in where:
                            dead[where[key]] = headers.get("error", "unknown")

            scored = 0
            next_check = 0.0
            with _phase(args, "waiting for verdicts", len(items)) as show:
                while True:
                    if stop.is_set():
                        raise CliError(
                            f"interrupted after {scored:,} of {len(items):,} records were scored",
                            130,
                        )
                    batches = await consumer.getmany(timeout_ms=300)
                    take([m for batch in batches.values() for m in batch])
                    now = time.monotonic()
                    if now < next_check:
                        continue
                    next_check = now + COMMIT_POLL_SECONDS
                    offsets = await committed(admin, group, topics["raw"], sorted(last))
                    scored = sum(1 for (p, o) in where if o < offsets.get(p, -1))
                    show(scored)
                    if all(offsets.get(p, -1) > o for p, o in last.items()):
                        break
                    if now > deadline:
                        raise CliError(
                            f"the worker (group {group!r}) scored {scored:,} of {len(items):,} records "
                            f"within {args.timeout:g} s: is it running with an active model? "
                            "(raise --timeout for a slow worker)"
                        )
                # Every verdict is on the topic now: read up to the current ends.
                ends = await consumer.end_offsets(watched)
                while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                    if time.monotonic() > deadline + 30:
                        raise CliError("timed out reading the last verdicts")
                    batches = await consumer.getmany(timeout_ms=300)
                    take([m for batch in batches.values() for m in batch])
        except KafkaError as error:
            raise CliError(
                f"Kafka failed during the evaluation: {kafkaio.kafka_reason(error)}"
            ) from None
        finally:
            signals.close()
    how = {
        "mode": "pipeline",
        "topic": topics["raw"],
        "group": group,
        "seconds": round(time.monotonic() - began, 2),
        "scoring_seconds": round(time.monotonic() - produced_at, 2),
    }
    if len(dead) == len(items):
        reasons = Counter(dead.values()).most_common(1)[0][0]
        raise CliError(
            f"all {len(items):,} records were dead-lettered ({reasons}) on {topics['dlq']!r}: "
            "does the active model expect this many features?"
        )
    result = figures(items, verdicts, dead, how)
    if topics["alerts"] in read:
        flagged = sum(1 for v in verdicts.values() if v.get("is_anomaly"))
        result["episodes"] = evaluate_episodes.report(items, alerts, flagged)
    return result


@contextlib.contextmanager
def _phase(args: argparse.Namespace, label: str, total: int | None) -> Iterator[Any]:
    if args.quiet or not ui.is_tty():
        yield lambda *_: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ui.stderr_console(),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)
