"""The private symbols of our dependencies, one test each: they fail on the release that breaks them.

Each compat module (``shared/kafka/aiokafka_compat.py``, ``shared/sklearn_compat.py``, and
the worker's FastStream and fast_depends ones) is the only importer of those internals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from aiokafka.partitioner import DefaultPartitioner
from sklearn.ensemble import IsolationForest

from shared import sklearn_compat
from shared.kafka import aiokafka_compat


@pytest.fixture(scope="module")
def forest() -> IsolationForest:
    """A small fitted forest with feature subsampling, so every private attribute is set."""
    rng = np.random.default_rng(3)
    return IsolationForest(n_estimators=5, max_samples=64, max_features=0.5, random_state=1).fit(
        rng.normal(size=(200, 4))
    )


def test_average_path_length_is_c_of_n() -> None:
    """``c(n)`` matches the closed form 2 H(n-1) - 2 (n-1)/n, and c(1) = 0, c(2) = 1."""
    n = 256
    expected = 2.0 * (math.log(n - 1) + np.euler_gamma) - 2.0 * (n - 1) / n
    got = sklearn_compat.average_path_length([1, 2, n])
    assert got[0] == 0.0 and got[1] == 1.0
    assert got[2] == pytest.approx(expected)


def test_per_tree_path_arrays_have_one_value_per_node(forest: IsolationForest) -> None:
    """The per-tree depth and c(n_node_samples) arrays exist and have one entry per node."""
    depths = sklearn_compat.decision_path_lengths(forest)
    averages = sklearn_compat.average_path_length_per_tree(forest)
    assert len(depths) == len(averages) == len(forest.estimators_)
    for tree, d, a in zip(forest.estimators_, depths, averages, strict=True):
        assert len(d) == len(a) == tree.tree_.node_count
        assert d[0] == 1  # scikit-learn counts the root as depth 1


def test_max_samples_and_features_are_what_was_fitted(forest: IsolationForest) -> None:
    """The fitted sample and feature counts per tree are readable as integers."""
    assert sklearn_compat.max_samples(forest) == 64
    assert sklearn_compat.max_features(forest) == 2


def test_default_partition_equals_aiokafka_partitioner() -> None:
    """Our partition choice equals aiokafka's DefaultPartitioner for many keys and counts."""
    partitioner = DefaultPartitioner()
    for count in (1, 3, 7, 12):
        partitions = list(range(count))
        for i in range(200):
            key = f"VH-{i:04d}".encode()
            assert aiokafka_compat.default_partition(key, partitions) == partitioner(
                key, partitions, partitions
            )


def test_known_partitions_reads_the_producer_cluster_metadata() -> None:
    """An unstarted producer's cluster metadata answers: no partitions known yet."""
    from aiokafka import AIOKafkaProducer

    async def check() -> None:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
        try:
            assert aiokafka_compat.known_partitions(producer, "telemetry.raw") is None
            assert callable(producer.client.cluster.partitions_for_topic)
        finally:
            await producer.stop()

    import asyncio

    asyncio.run(check())


def test_consumer_client_can_fetch_all_metadata() -> None:
    """A consumer's client has the coroutine ``fetch_all_metadata`` that the topic reader uses."""
    import asyncio
    import inspect

    from aiokafka import AIOKafkaConsumer

    async def check() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
        try:
            assert inspect.iscoroutinefunction(consumer._client.fetch_all_metadata)
        finally:
            await consumer.stop()

    asyncio.run(check())


def test_create_conn_takes_the_connection_options_open_connection_passes() -> None:
    """``aiokafka.conn.create_conn`` is a coroutine taking every option ``open_connection`` passes."""
    import inspect

    from aiokafka.conn import create_conn

    parameters = inspect.signature(create_conn).parameters
    assert inspect.iscoroutinefunction(create_conn)
    for name in (
        "client_id",
        "request_timeout_ms",
        "ssl_context",
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "sasl_oauth_token_provider",
    ):
        assert name in parameters, name
