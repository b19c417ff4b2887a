"""The bound on refused batches: N attempts, then last-resort letters, then a stopped partition."""

from __future__ import annotations

from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from consumer.processor import Kind, Outgoing
from consumer.publishing import PublishError
from consumer.refusals import RefusalGuard, last_resort_letter

TOPIC = "telemetry.raw"
FIRST = {(TOPIC, 0): 100, (TOPIC, 1): 7}


def verdict(offset: int, partition: int = 0) -> Outgoing:
    return Outgoing(Kind.VERDICT, "anomalies", b"VH", b"{}", (), TOPIC, partition, offset)


def refused(*messages: Outgoing) -> PublishError:
    error = PublishError("refused", messages)
    error.__cause__ = MessageSizeTooLargeError()
    return error


def test_last_resort_letter_is_headers_only_and_names_its_record() -> None:
    """No key, no value; the reason, the detail and the source in the headers."""
    letter = last_resort_letter(verdict(101), "dlq", "MessageSizeTooLargeError()")
    assert (letter.kind, letter.topic, letter.key, letter.value) == (
        Kind.DEAD_LETTER,
        "dlq",
        None,
        b"",
    )
    headers = dict(letter.headers)
    assert headers["error"] == b"publish_refused"
    assert headers["source_offset"] == b"101"
    assert headers["value_truncated"] == b"true"


def test_refusals_are_retried_n_times_then_answered_by_a_last_resort_letter() -> None:
    """Until N attempts nothing changes; then the refused record's message is replaced."""
    guard = RefusalGuard(3, "dlq")
    error = refused(verdict(101))
    assert guard.failed(FIRST, error) == []
    assert guard.failed(FIRST, error) == []
    assert guard.apply([verdict(100), verdict(101)]) == [verdict(100), verdict(101)]
    assert guard.failed(FIRST, error) == []
    replaced = guard.apply([verdict(100), verdict(101)])
    assert replaced[0] == verdict(100)
    assert replaced[1].kind is Kind.DEAD_LETTER


def test_a_refused_last_resort_stops_the_partition_at_the_batchs_first_offset() -> None:
    """N more refusals stop the record's partition (only it), where the batch starts there."""
    guard = RefusalGuard(2, "dlq")
    error = refused(verdict(101))
    for _ in range(3):
        assert guard.failed(FIRST, error) == []
    (stopped,) = guard.failed(FIRST, error)
    assert (stopped.topic, stopped.partition, stopped.offset) == (TOPIC, 0, 100)
    assert stopped.name == f"{TOPIC}-0"
    assert "MessageSizeTooLarge" in stopped.reason


def test_an_outage_is_not_counted() -> None:
    """Timeouts (no refusal named) reset the count: an outage is retried without a bound."""
    guard = RefusalGuard(2, "dlq")
    guard.failed(FIRST, refused(verdict(101)))
    guard.failed(FIRST, PublishError("down"))
    guard.failed(FIRST, KafkaTimeoutError())
    assert guard.failed(FIRST, refused(verdict(101))) == []
    assert guard.last_resort == {}


def test_another_batch_starts_its_own_count_and_success_clears_done_records() -> None:
    """Counts are per batch; a published batch forgets its last-resort records."""
    guard = RefusalGuard(2, "dlq")
    guard.failed(FIRST, refused(verdict(101)))
    guard.failed({(TOPIC, 0): 101}, refused(verdict(101)))
    assert guard.last_resort == {}
    guard.failed({(TOPIC, 0): 101}, refused(verdict(101)))
    assert set(guard.last_resort) == {(TOPIC, 0, 101)}
    guard.succeeded({(TOPIC, 0): 102})
    assert guard.last_resort == {}
