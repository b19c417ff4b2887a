"""Dead letters sized before they are sent: the v2 record size, and the cut that fits."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from consumer.processor import Kind, Outgoing
from consumer.sizing import fit_all, fit_dead_letter, message_bytes, record_bytes, varint_size

TOPIC = "telemetry.raw"
HEADERS = (("error", b"too_large"), ("error_detail", b"d" * 200), ("source_offset", b"1003"))


def letter(value: bytes, key: bytes | None = b"VH-1") -> Outgoing:
    return Outgoing(Kind.DEAD_LETTER, "dlq", key, value, HEADERS, TOPIC, 0, 1003)


def built_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, False)
    builder.append(0, timestamp=1_700_000_000_000, key=key, value=value, headers=headers)
    return len(builder.build())


def test_varint_sizes_match_kafkas_zigzag_encoding() -> None:
    """1 byte up to 63, 2 up to 8191, 3 for a megabyte, as Kafka encodes lengths."""
    assert [varint_size(n) for n in (0, 63, 64, 8191, 8192, 1_048_400)] == [1, 1, 2, 2, 3, 3]


def test_record_bytes_is_an_upper_bound_close_to_the_real_batch() -> None:
    """The estimate never undercuts the batch aiokafka builds, and is off by a few bytes only."""
    for value in (b"", b"x" * 100, b"x" * 70_000, b"x" * 1_048_400):
        for key in (None, b"VH-1"):
            real = built_size(key, value, list(HEADERS))
            estimate = record_bytes(key, value, HEADERS)
            assert real <= estimate <= real + 24


def test_a_letter_that_fits_is_left_alone() -> None:
    """Below the limit nothing changes, and verdicts are never cut."""
    small = letter(b"x" * 100)
    assert fit_dead_letter(small, 1_048_588) is small
    verdict = Outgoing(Kind.VERDICT, "anomalies", b"VH", b"x" * 2_000, (), TOPIC, 0, 1)
    assert fit_dead_letter(verdict, 100) is verdict


def test_a_letter_past_the_limit_keeps_what_fits_and_says_so() -> None:
    """The issue's case: 1,048,400 bytes plus headers miss 1,048,588; the cut fits exactly."""
    big = letter(b"{" + b"x" * 1_048_399)
    assert message_bytes(big) > 1_048_588
    cut = fit_dead_letter(big, 1_048_588)
    assert message_bytes(cut) <= 1_048_588
    assert built_size(cut.key, cut.value, list(cut.headers)) <= 1_048_588
    assert (cut.value or b"") == (big.value or b"")[: len(cut.value or b"")]
    assert len(cut.value or b"") > 1_048_000
    headers = dict(cut.headers)
    assert headers["value_truncated"] == b"true"
    assert headers["original_size"] == b"1048400"


def test_headers_alone_past_the_limit_leave_no_value() -> None:
    """When even the headers miss the limit the value is empty (the broker decides then)."""
    cut = fit_dead_letter(letter(b"x" * 1_000), 100)
    assert cut.value == b""
    assert fit_dead_letter(cut, 50).value == b""


def test_fit_all_uses_each_topics_own_limit() -> None:
    """A topic without a known limit gets the default."""
    big = letter(b"x" * 5_000)
    other = Outgoing(Kind.DEAD_LETTER, "dlq2", None, b"x" * 5_000, (), TOPIC, 0, 1)
    fitted = fit_all([big, other], {"dlq": 1_000}, 1_048_588)
    assert len(fitted[0].value or b"") < 1_000
    assert fitted[1] is other
