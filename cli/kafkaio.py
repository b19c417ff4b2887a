"""Kafka clients for the command-line tool, with bounded connects and one-line errors.

The connection options (SASL, TLS, MSK IAM) come from :func:`shared.kafka.client_options`, so
the tool connects wherever the services do. Before a client starts, every bootstrap address
is probed with a plain TCP connect bounded by ``--connect-timeout``: an unreachable broker is
reported in seconds, with the reason, instead of after aiokafka's long retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

from cli.config import Context
from cli.errors import CliError, UsageError


def quiet_kafka_logs(verbose: bool) -> None:
    """aiokafka logs connection failures itself; the tool reports them once, its own way."""
    level = logging.INFO if verbose else logging.CRITICAL
    for name in ("aiokafka", "asyncio"):
        logging.getLogger(name).setLevel(level)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    else:
        logging.getLogger().addHandler(logging.NullHandler())


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    found = []
    for part in bootstrap.split(","):
        part = part.strip()
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit():
            raise UsageError(f"the Kafka address {part!r} needs a port, e.g. localhost:9092")
        found.append((host.strip("[]") or "localhost", int(port)))
    if not found:
        raise UsageError("no Kafka bootstrap address given")
    return found


def _reason(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror or error})"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


async def probe(bootstrap: str, timeout: float) -> None:  # noqa: ASYNC109 (a connect bound)
    """Succeed when one bootstrap address accepts a TCP connection within ``timeout``."""
    reasons = []
    for host, port in _addresses(bootstrap):
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as error:
            reason = _reason(error)
            if reason == "timed out":
                reason = f"no answer within {timeout:g} s"
            reasons.append(reason)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise CliError(f"cannot reach Kafka at {bootstrap}: {'; '.join(dict.fromkeys(reasons))}")


def options(context: Context) -> dict[str, Any]:
    """aiokafka keyword arguments from the settings (SASL, TLS, MSK IAM)."""
    from shared.errors import ConfigurationError
    from shared.kafka import client_options

    try:
        found = client_options(context.settings)
    except ConfigurationError as error:
        raise UsageError(str(error)) from None
    found["client_id"] = f"{found.get('client_id', 'vehicle-anomaly')}-cli"
    return found


async def _start(client: Any, context: Context, what: str) -> None:
    from aiokafka.errors import KafkaError

    timeout = max(context.connect_timeout, 1.0) * 2
    try:
        await asyncio.wait_for(client.start(), timeout)
    except TimeoutError:
        await _close(client)
        raise CliError(
            f"cannot reach Kafka at {context.bootstrap}: the {what} did not connect within {timeout:g} s"
        ) from None
    except KafkaError as error:
        await _close(client)
        if "Unable to bootstrap" in str(error):
            from shared.kafka.diagnosis import connection_problem

            # aiokafka only logs why (a wrong password, a CA that does not vouch for the broker)
            problem = await connection_problem(context.settings)
            if problem:
                raise CliError(f"cannot use Kafka at {context.bootstrap}: {problem}") from None
            raise CliError(
                f"cannot reach Kafka at {context.bootstrap}: a connection opened but no Kafka "
                "broker answered (wrong port, or KAFKA_SECURITY_PROTOCOL/SASL settings that do not "
                "match the broker)"
            ) from None
        raise CliError(f"cannot use Kafka at {context.bootstrap}: {kafka_reason(error)}") from None
    except OSError as error:
        await _close(client)
        raise CliError(f"cannot reach Kafka at {context.bootstrap}: {_reason(error)}") from None


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await client.stop() if hasattr(client, "stop") else await client.close()


def kafka_reason(error: BaseException) -> str:
    """aiokafka's error as a short reason (an authentication or ACL refusal says so)."""
    from shared.kafka.diagnosis import refusal_kind

    if refusal_kind(error) is not None:
        from shared.kafka.diagnosis import describe

        return describe(error)
    text = " ".join(str(error).split())
    name = type(error).__name__
    if not text or text == name:
        return name
    if not text.startswith(name):
        text = f"{name}: {text}"
    return text if len(text) < 200 else text[:197] + "..."


@contextlib.asynccontextmanager
async def producer(context: Context, **extra: Any) -> AsyncIterator[Any]:
    """A started ``AIOKafkaProducer`` (acks=all), stopped (flushed) on exit."""
    from aiokafka import AIOKafkaProducer

    await probe(context.bootstrap, context.connect_timeout)
    client = AIOKafkaProducer(
        **options(context),
        acks="all",
        linger_ms=extra.pop("linger_ms", 10),
        request_timeout_ms=int(max(context.connect_timeout * 3, 15) * 1000),
        **extra,
    )
    await _start(client, context, "producer")
    try:
        yield client
    finally:
        await _close(client)


@contextlib.asynccontextmanager
async def consumer(context: Context, **extra: Any) -> AsyncIterator[Any]:
    """A started ``AIOKafkaConsumer`` with no group (nothing joined, nothing committed)."""
    from aiokafka import AIOKafkaConsumer

    await probe(context.bootstrap, context.connect_timeout)
    client = AIOKafkaConsumer(
        **options(context),
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=int(max(context.connect_timeout * 3, 15) * 1000),
        **extra,
    )
    await _start(client, context, "consumer")
    try:
        yield client
    finally:
        await _close(client)


@contextlib.asynccontextmanager
async def admin(context: Context) -> AsyncIterator[Any]:
    """A started admin client (read-only use here: group offsets)."""
    from aiokafka.admin import AIOKafkaAdminClient

    await probe(context.bootstrap, context.connect_timeout)
    client = AIOKafkaAdminClient(
        **options(context), request_timeout_ms=int(max(context.connect_timeout * 3, 15) * 1000)
    )
    await _start(client, context, "admin client")
    try:
        yield client
    finally:
        await _close(client)


async def partitions_of(
    admin_client: Any, topics: list[str], context: Context
) -> dict[str, list[int]]:
    """The partitions of each topic, or a clear error naming a missing one (nothing is created)."""
    from aiokafka.errors import KafkaError

    limit = max(context.connect_timeout * 3, 10)
    try:
        existing = set(await asyncio.wait_for(admin_client.list_topics(), limit))
        missing = [t for t in topics if t not in existing]
        if missing:
            raise CliError(
                f"topic {missing[0]!r} does not exist on Kafka at {context.bootstrap} "
                "(`make run` creates the topics; or set the topic option or its environment variable)"
            )
        described = await asyncio.wait_for(admin_client.describe_topics(list(topics)), limit)
    except (TimeoutError, KafkaError) as error:
        reason = "timed out" if isinstance(error, TimeoutError) else kafka_reason(error)
        raise CliError(
            f"cannot read the topics' metadata at {context.bootstrap}: {reason}"
        ) from None
    found = {t["topic"]: sorted(p["partition"] for p in t["partitions"]) for t in described}
    for topic in topics:
        if not found.get(topic):
            raise CliError(f"topic {topic!r} has no partitions on Kafka at {context.bootstrap}")
    return found


async def ensure_topic_for_producer(client: Any, topic: str, context: Context) -> list[int]:
    """Wait for the topic's metadata (a broker may auto-create it), or fail clearly."""
    from aiokafka.errors import KafkaError

    try:
        partitions = await asyncio.wait_for(
            client.partitions_for(topic), max(context.connect_timeout * 3, 10)
        )
    except TimeoutError:
        raise CliError(
            f"topic {topic!r} does not exist on Kafka at {context.bootstrap} and was not created "
            "(`make run` creates the topics)"
        ) from None
    except KafkaError as error:
        raise CliError(f"cannot produce to {topic!r}: {kafka_reason(error)}") from None
    return sorted(partitions)
