"""``vehicle-anomaly simulate``: stream a simulated fleet to the raw topic at a steady rate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from cli import kafkaio, ui
from cli.config import Context
from cli.errors import CliError

# The parameters `simulate --train` and `train --simulated` use unless told otherwise: the
# context model's own (200 trees; the detection figures in docs/detection.md are measured
# with them), reproducible.
SIMULATED_TRAINING_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "random_state": 42,
}
HISTORY_DAYS = 2.0
PARAM_OPTIONS = ("n_estimators", "max_samples", "contamination", "max_features", "random_state")


def chosen_params(
    args: argparse.Namespace, defaults: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The IsolationForest parameters given on the command line, over ``defaults``."""
    params = dict(defaults or {})
    for name in PARAM_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    return params


def fleet_config(args: argparse.Namespace, start: datetime) -> Any:
    from simulator import ALL_KINDS, FaultKind, SimulationConfig

    kinds = tuple(FaultKind(k) for k in args.kinds) if args.kinds else ALL_KINDS
    return SimulationConfig(
        vehicles=args.vehicles,
        anomaly_rate=args.anomaly_rate,
        seed=args.seed,
        start=start,
        interval_seconds=args.interval,
        kinds=kinds,
    )


def train_on_history(
    context: Context,
    *,
    vehicles: int,
    count: int,
    seed: int,
    end: datetime,
    params: dict[str, Any],
    activate: bool = True,
    quiet: bool = False,
    timeout: float = 600.0,
    interval: float = 10.0,
) -> dict[str, Any]:
    """POST /ingest a clean history of the fleet, at the stream's ``interval``; the answer."""
    from cli.apiclient import ApiClient
    from simulator import FEATURES, training_history

    history = training_history(
        vehicles, count, seed=seed, end=end, days=HISTORY_DAYS, interval_seconds=interval
    )
    body = {
        "records": [r.to_record() for r in history],
        "params": params,
        "feature_names": list(FEATURES),  # explained verdicts name the sensors
    }
    client = ApiClient(context)
    with ui.spinner(f"training a model on {count:,} simulated records", enabled=not quiet):
        answer = client.request(
            "POST",
            "/ingest",
            body,
            query={"activate": "true" if activate else "false"},
            timeout=timeout,
        )
    if not isinstance(answer, dict) or "model_version" not in answer:
        raise CliError(
            f"the api answered POST /ingest with something unexpected: {str(answer)[:120]}"
        )
    return answer


def run(args: argparse.Namespace, context: Context) -> int:
    topic = args.topic or context.settings.telemetry_topic
    start = args.start or datetime.now(UTC)
    config = fleet_config(args, start)  # checks the fleet options before anything connects
    if args.train:
        # Fail on an unreachable broker before spending a training on it.
        asyncio.run(kafkaio.probe(context.bootstrap, context.connect_timeout))
        answer = train_on_history(
            context,
            vehicles=args.vehicles,
            count=args.train_records,
            seed=args.seed,
            end=start,
            params=chosen_params(args, SIMULATED_TRAINING_PARAMS),
            activate=not args.no_activate,
            quiet=args.quiet,
            interval=args.interval,
        )
        state = "active" if answer.get("active") else "not active"
        print(
            f"trained model {answer['model_version']} on {answer.get('record_count', args.train_records):,} "
            f"clean records of the fleet ({state}); the worker loads it within MODEL_POLL_SECONDS",
            flush=True,
        )
    summary = asyncio.run(_stream(args, context, config, topic))
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        _print_summary(summary)
    return 0


async def _stream(
    args: argparse.Namespace, context: Context, config: Any, topic: str
) -> dict[str, Any]:
    from aiokafka.errors import KafkaError

    from simulator import FleetSimulator

    simulator = FleetSimulator(config)
    limit = args.count
    duration = args.duration
    rate = args.rate
    stop = asyncio.Event()
    first_ts = last_ts = None
    sent = acked = 0
    async with kafkaio.producer(context) as producer:
        await kafkaio.ensure_topic_for_producer(producer, topic, context)
        pending: deque[asyncio.Future[Any]] = deque()
        with _signals(stop), _progress(args, limit, duration, rate) as progress:
            began = time.monotonic()
            try:
                while not stop.is_set():
                    elapsed = time.monotonic() - began
                    if duration is not None and elapsed >= duration:
                        break
                    due = int(elapsed * rate) + 1
                    if limit is not None:
                        due = min(due, limit)
                    while sent < due:
                        record = next(simulator)
                        first_ts = first_ts or record.timestamp
                        last_ts = record.timestamp
                        pending.append(
                            await producer.send(
                                topic,
                                value=json.dumps(
                                    record.to_record(), separators=(",", ":")
                                ).encode(),
                                key=record.vehicle_id.encode(),
                                headers=record.headers(),
                            )
                        )
                        sent += 1
                    while pending and pending[0].done():
                        pending.popleft().result()
                        acked += 1
                    progress(acked, sum(simulator.injected.values()), time.monotonic() - began)
                    if limit is not None and sent >= limit:
                        break
                    wait = (sent / rate) - (time.monotonic() - began)
                    if wait > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), min(wait, 0.25))
                await producer.flush()
                while pending:
                    await pending.popleft()
                    acked += 1
            except KafkaError as error:
                raise CliError(
                    f"publishing to {topic!r} failed after {acked} records: {kafkaio.kafka_reason(error)}"
                ) from None
            seconds = time.monotonic() - began
            progress(acked, sum(simulator.injected.values()), seconds)
    return {
        "topic": topic,
        "sent": acked,
        "seconds": round(seconds, 3),
        "rate": round(acked / seconds, 2) if seconds > 0 else None,
        "target_rate": rate,
        "injected": dict(sorted(simulator.injected.items())),
        "faults": dict(sorted(simulator.episodes.items())),
        "vehicles": config.vehicles,
        "seed": config.seed,
        "first_timestamp": first_ts,
        "last_timestamp": last_ts,
        "interrupted": stop.is_set(),
    }


def _print_summary(summary: dict[str, Any]) -> None:
    injected = summary["injected"]
    total = sum(injected.values())
    kinds = ", ".join(
        f"{kind} {count} ({summary['faults'].get(kind, 0)} fault{'s' if summary['faults'].get(kind, 0) != 1 else ''})"
        for kind, count in injected.items()
    )
    share = total / summary["sent"] if summary["sent"] else 0.0
    rate = f"{summary['rate']:,.1f}" if summary["rate"] is not None else "-"
    print(
        f"sent {summary['sent']:,} records to {summary['topic']} in {summary['seconds']:.1f} s "
        f"({rate} records/s; asked {summary['target_rate']:g})"
    )
    print(f"injected {total} faulty records ({share:.1%}){': ' + kinds if kinds else ''}")
    if summary["first_timestamp"]:
        print(
            f"fleet of {summary['vehicles']} vehicles (seed {summary['seed']}), simulated time "
            f"{summary['first_timestamp']} .. {summary['last_timestamp']}"
        )


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) ends the stream cleanly; a second Ctrl-C interrupts at once."""
    loop = asyncio.get_running_loop()
    installed = []

    def first(signum: int) -> None:
        stop.set()
        loop.remove_signal_handler(signum)  # the next one raises KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, first, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            pass
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


@contextlib.contextmanager
def _progress(
    args: argparse.Namespace, limit: int | None, duration: float | None, rate: float
) -> Iterator[Any]:
    """A callable ``update(sent, injected, seconds)`` drawing a progress bar on a terminal."""
    if args.quiet or not ui.is_tty():
        yield lambda *_: None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    total = limit if limit is not None else (duration * rate if duration else None)
    with Progress(
        SpinnerColumn(),
        TextColumn("simulating"),
        BarColumn(),
        TextColumn(
            "{task.fields[sent]:>9,} sent  {task.fields[injected]:>5,} injected  {task.fields[rate]:>9}/s"
        ),
        TimeElapsedColumn(),
        console=ui.stderr_console(),
        transient=True,
    ) as progress:
        task = progress.add_task("simulate", total=total, sent=0, injected=0, rate="-")

        def update(sent: int, injected: int, seconds: float) -> None:
            progress.update(
                task, completed=sent, sent=sent, injected=injected, rate=ui.fmt_rate(sent, seconds)
            )

        yield update
