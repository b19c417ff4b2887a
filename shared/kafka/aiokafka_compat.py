"""Every aiokafka internal the project relies on, behind one door.

aiokafka keeps these out of its public API, so a release may move them. Each function here
is covered by ``tests/unit/test_compat.py``, which fails on the first release that breaks
it; the range in ``pyproject.toml`` is pinned to the minors those tests passed on.

* :func:`known_partitions`: the producer's cached cluster metadata (``producer.client.cluster``),
  so that a verdict's partition can be chosen without awaiting metadata;
* :func:`default_partition`: the default partitioner's choice for a key (murmur2 of the key,
  positive, modulo the partition count over the sorted partitions), memoisable by callers;
* :func:`fetch_all_metadata`: a fresh metadata request through a consumer's client
  (``consumer._client``), for the partitions of topics the consumer is not subscribed to;
* :func:`open_connection`: one authenticated connection (``aiokafka.conn.create_conn``), which
  raises the cause of a refused bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.partitioner import murmur2


def known_partitions(producer: Any, topic: str) -> set[int] | None:
    """The partitions of ``topic`` in the producer's cached metadata (``None``: not known yet)."""
    found = producer.client.cluster.partitions_for_topic(topic)
    return set(found) if found else None


def default_partition(key: bytes, partitions: Sequence[int]) -> int:
    """The partition aiokafka's ``DefaultPartitioner`` picks for ``key`` among ``partitions``."""
    ordered = sorted(partitions)
    return ordered[(int(murmur2(key)) & 0x7FFFFFFF) % len(ordered)]


async def fetch_all_metadata(consumer: Any) -> Any:
    """The cluster metadata, fetched anew through the consumer's client."""
    return await consumer._client.fetch_all_metadata()


async def open_connection(host: str, port: int, options: dict[str, Any], timeout_ms: int) -> Any:
    """One connection, authenticated as ``options`` say, as the client's bootstrap opens it.

    It raises the cause (``SaslAuthenticationFailed``, an ``ssl.SSLError``, ``OSError``) that
    the bootstrap itself only logs.
    """
    from aiokafka.conn import create_conn

    names = (
        "client_id",
        "ssl_context",
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_oauth_token_provider",
    )
    chosen = {name: options[name] for name in names if name in options}
    return await create_conn(host, port, request_timeout_ms=timeout_ms, **chosen)
