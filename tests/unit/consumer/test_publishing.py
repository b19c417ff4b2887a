"""The aiokafka sink's record batches: verdicts grouped per partition, in order, confirmed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner

from consumer.processor import Kind, Outgoing
from consumer.publishing import AiokafkaSink, PublishError, publish_confirmed
from tests.unit.consumer.fakes import TOPIC, FakeSink

PARTITIONS = [0, 1, 2]


class Builder:
    """Stands in for aiokafka's BatchBuilder: refuses once ``room`` bytes are used."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.records: list[tuple[bytes | None, bytes | None, list[Any]]] = []
        self.closed = False

    def append(
        self, *, key: bytes | None, value: bytes | None, timestamp: Any, headers: list[Any]
    ) -> object | None:
        assert isinstance(headers, list)  # the C builder refuses tuples
        size = len(value or b"")
        if self.closed or size > self.room:
            self.closed = True
            return None
        self.room -= size
        self.records.append((key, value, headers))
        return object()


class Producer:
    """The calls the sink makes, in order: ``("batch", topic, partition, keys)`` or ``("send", ...)``."""

    def __init__(self, *, room: int = 1_000, known: bool = True, fail: bool = False) -> None:
        self.room = room
        self.known = known
        self.fail = fail
        self.calls: list[tuple[str, str, int | None, list[bytes | None]]] = []
        producer = self

        class Cluster:
            def partitions_for_topic(self, topic: str) -> set[int] | None:
                return set(PARTITIONS) if producer.known else None

        self.client = type("Client", (), {"cluster": Cluster()})()

    def _settled(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(KafkaTimeoutError())
        else:
            future.set_result("ack")
        return future

    def create_batch(self) -> Builder:
        return Builder(self.room)

    async def send_batch(self, batch: Builder, topic: str, *, partition: int) -> Any:
        self.calls.append(("batch", topic, partition, [key for key, _, _ in batch.records]))
        return self._settled()

    async def send(self, topic: str, **kwargs: Any) -> Any:
        self.calls.append(("send", topic, kwargs["partition"], [kwargs["key"]]))
        return self._settled()


def verdict(key: bytes, size: int = 10, topic: str = "anomalies") -> Outgoing:
    return Outgoing(Kind.VERDICT, topic, key, b"v" * size, (("h", b"1"),), TOPIC, 0, 0)


def dead_letter(topic: str = "dlq") -> Outgoing:
    return Outgoing(Kind.DEAD_LETTER, topic, b"k", b"x", (), TOPIC, 0, 0, None)


def partition_of(key: bytes) -> int:
    return int(DefaultPartitioner()(key, PARTITIONS, PARTITIONS))


async def test_verdicts_go_as_one_record_batch_per_partition_in_order() -> None:
    """Each partition's verdicts are appended in input order; dead letters go one by one."""
    producer = Producer()
    keys = [f"VH-{i % 9}".encode() for i in range(40)]
    messages = [verdict(key) for key in keys]
    messages.insert(5, dead_letter())
    await publish_confirmed(AiokafkaSink(producer), messages)
    batches = [call for call in producer.calls if call[0] == "batch"]
    assert {call[2] for call in batches} == {partition_of(key) for key in keys}
    for _, topic, partition, batch_keys in batches:
        assert topic == "anomalies"
        assert batch_keys == [key for key in keys if partition_of(key) == partition]
    assert [call for call in producer.calls if call[0] == "send"] == [
        ("send", "dlq", partition_of(b"k"), [b"k"])
    ]


async def test_a_full_record_batch_is_sent_before_the_next_one_and_a_huge_verdict_alone() -> None:
    """Order per partition holds across full batches and a verdict that fits no batch."""
    producer = Producer(room=30)
    sizes = [10, 10, 10, 10, 100, 10]  # all to one key, so one partition
    await publish_confirmed(
        AiokafkaSink(producer),
        [verdict(b"VH-1", size) for size in sizes],
    )
    kinds = [(kind, len(keys)) for kind, _, _, keys in producer.calls]
    assert kinds == [("batch", 3), ("batch", 1), ("send", 1), ("batch", 1)]


async def test_without_metadata_verdicts_go_one_by_one() -> None:
    """Before the producer knows the topic's partitions, each verdict is sent on its own."""
    producer = Producer(known=False)
    await publish_confirmed(AiokafkaSink(producer), [verdict(b"VH-1"), verdict(b"VH-2")])
    assert [call[0] for call in producer.calls] == ["send", "send"]


async def test_a_dead_letter_to_a_verdict_topic_keeps_every_message_in_place() -> None:
    """If both kinds share a topic, nothing is grouped: their common order is kept."""
    producer = Producer()
    messages = [verdict(b"VH-1"), dead_letter("anomalies"), verdict(b"VH-1")]
    await publish_confirmed(AiokafkaSink(producer), messages)
    assert [call[0] for call in producer.calls] == ["send", "send", "send"]


async def test_a_refused_record_batch_fails_the_publish() -> None:
    """One refused record batch refuses all its verdicts, and so the whole batch."""
    producer = Producer(fail=True)
    with pytest.raises(PublishError):
        await publish_confirmed(AiokafkaSink(producer), [verdict(b"VH-1")])


async def test_grouping_can_be_turned_off() -> None:
    """``group_verdicts=False`` sends every verdict on its own."""
    producer = Producer()
    sink = AiokafkaSink(producer, group_verdicts=False)
    await publish_confirmed(sink, [verdict(b"VH-1"), verdict(b"VH-1")])
    assert [call[0] for call in producer.calls] == ["send", "send"]


async def test_faststream_sink_sends_every_message_on_its_own_in_order() -> None:
    """FastStreamSink.send_all is one broker.publish per message, headers as text."""
    from consumer.publishing import FastStreamSink

    class Broker:
        def __init__(self) -> None:
            self.published: list[tuple[str, bytes | None, dict[str, str]]] = []

        async def publish(self, value: Any, topic: str, **kwargs: Any) -> Any:
            self.published.append((topic, kwargs["key"], kwargs["headers"]))
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            future.set_result("ack")
            return future

    broker = Broker()
    messages = [verdict(b"VH-1"), dead_letter(), verdict(b"VH-2")]
    await publish_confirmed(FastStreamSink(broker), messages)  # type: ignore[arg-type]
    assert broker.published == [
        ("anomalies", b"VH-1", {"h": "1"}),
        ("dlq", b"k", {}),
        ("anomalies", b"VH-2", {"h": "1"}),
    ]


def test_only_an_untruncated_dead_letter_refused_as_too_large_shrinks() -> None:
    """shrunk() is the one truncation rule: dead letters, size refusals, once."""

    from consumer.publishing import shrunk

    too_large = MessageSizeTooLargeError()
    smaller = shrunk(dead_letter(), too_large)
    assert smaller is not None and smaller.value == b""
    assert dict(smaller.headers)["original_size"] == b"1"
    assert shrunk(smaller, too_large) is None
    assert shrunk(verdict(b"VH-1"), too_large) is None
    assert shrunk(dead_letter(), KafkaTimeoutError()) is None


async def test_too_large_dead_letter_is_resent_without_its_value() -> None:
    """A dead letter the broker refuses as too large goes again without value, marked."""

    def refuse(message: Outgoing) -> Exception | None:
        big = message.kind is Kind.DEAD_LETTER and len(message.value or b"") > 10
        return MessageSizeTooLargeError() if big else None

    sink = FakeSink(fail_on=refuse)
    letter = Outgoing(
        Kind.DEAD_LETTER, "dlq", b"k", b"x" * 100, (("error", b"too_large"),), TOPIC, 0, 1
    )
    await publish_confirmed(sink, [letter])
    assert [m.value for m in sink.sent] == [b"x" * 100, b""]
    headers = dict(sink.sent[1].headers)
    assert headers["value_truncated"] == b"true"
    assert headers["original_size"] == b"100"


async def test_client_side_size_refusal_of_a_dead_letter_is_truncated() -> None:
    """aiokafka's own size check on send() is handled the same way."""

    def refuse(message: Outgoing) -> Exception | None:
        return MessageSizeTooLargeError() if len(message.value or b"") > 10 else None

    sink = FakeSink(raise_on_send=refuse)
    letter = Outgoing(Kind.DEAD_LETTER, "dlq", None, b"x" * 100, (), TOPIC, 0, 1)
    await publish_confirmed(sink, [letter])
    assert [m.value for m in sink.sent] == [b""]


async def test_too_large_verdict_is_a_batch_failure() -> None:
    """Only dead letters are truncated; any other refusal fails the batch."""
    sink = FakeSink(fail_on=lambda m: MessageSizeTooLargeError())
    verdict = Outgoing(Kind.VERDICT, "anomalies", b"VH", b"{}", (), TOPIC, 0, 1)
    with pytest.raises(PublishError):
        await publish_confirmed(sink, [verdict])


async def test_memoised_partitions_match_aiokafkas_default_partitioner() -> None:
    """Keyed verdicts land where aiokafka's default partitioner would put them."""
    from aiokafka.partitioner import DefaultPartitioner

    from consumer.publishing import AiokafkaSink

    class Cluster:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return {0, 1, 2, 3, 4}

    class Producer:
        client = type("Client", (), {"cluster": Cluster()})()

        def __init__(self) -> None:
            self.partitions: list[int | None] = []

        async def send(self, topic: str, **kwargs: Any) -> Any:
            self.partitions.append(kwargs["partition"])
            return asyncio.get_running_loop().create_future()

    producer = Producer()
    sink = AiokafkaSink(producer)
    keys = [f"VH-{i}".encode() for i in range(200)] * 2
    for key in keys:
        await sink.send(Outgoing(Kind.VERDICT, "anomalies", key, b"{}", (), TOPIC, 0, 0))
    await sink.send(Outgoing(Kind.DEAD_LETTER, "dlq", None, b"x", (), TOPIC, 0, 0))
    expected = [DefaultPartitioner()(key, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]) for key in keys]
    assert producer.partitions == [*expected, None]


class RenewingSink(FakeSink):
    """A fake sink whose producer a refusal breaks until it is renewed."""

    def __init__(self, fail_on: Any) -> None:
        super().__init__(fail_on=fail_on)
        self.renewals = 0

    async def renew(self) -> bool:
        self.renewals += 1
        return True


async def test_a_refusal_renews_the_producer_and_resends_what_its_sequence_broke() -> None:
    """The refused letter goes valueless, the out-of-sequence ones again, once renewed."""
    from aiokafka.errors import OutOfOrderSequenceNumber

    def refuse(message: Outgoing) -> Exception | None:
        if sink.renewals:
            return None
        failure: Exception = (
            MessageSizeTooLargeError()
            if message.value == b"x" * 100
            else OutOfOrderSequenceNumber()
        )
        return failure if message.source_offset > 0 else None

    sink = RenewingSink(refuse)
    letters = [
        Outgoing(Kind.DEAD_LETTER, "dlq", None, value, (), TOPIC, 0, offset)
        for offset, value in ((0, b"a"), (1, b"x" * 100), (2, b"b"), (3, b"c"))
    ]
    await publish_confirmed(sink, letters)
    assert sink.renewals == 1
    assert [(m.source_offset, m.value) for m in sink.sent[4:]] == [(1, b""), (2, b"b"), (3, b"c")]


async def test_a_refused_verdict_is_named_by_the_error() -> None:
    """PublishError.refused names what the broker refused (the guard counts those)."""
    sink = RenewingSink(lambda m: MessageSizeTooLargeError() if m.source_offset == 2 else None)
    verdicts = [Outgoing(Kind.VERDICT, "anomalies", b"VH", b"{}", (), TOPIC, 0, o) for o in (1, 2)]
    with pytest.raises(PublishError) as raised:
        await publish_confirmed(sink, verdicts)
    assert [m.source_offset for m in raised.value.refused] == [2]
    assert sink.renewals == 1


async def test_an_outage_names_no_refusal_and_renews_nothing() -> None:
    """A timeout is not a refusal: nothing is renewed, nothing is named."""
    sink = RenewingSink(lambda m: KafkaTimeoutError())
    with pytest.raises(PublishError) as raised:
        await publish_confirmed(sink, [Outgoing(Kind.VERDICT, "a", b"VH", b"{}", (), TOPIC, 0, 1)])
    assert raised.value.refused == ()
    assert sink.renewals == 0
