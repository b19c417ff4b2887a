"""The FastStream glue: the parsers hand over the raw records, traced or not."""

from __future__ import annotations

from typing import Any

from tests.unit.consumer.fakes import (
    TOPIC,
)


async def test_faststream_glue_keeps_records_raw() -> None:
    """The parser and decoder hand over the raw records, even with non-UTF-8 headers."""

    class Raw:
        topic, partition, offset, key, value, timestamp = TOPIC, 0, 3, None, b"\xff", 0

        def __init__(self) -> None:
            self.headers: Any = [("h", b"\xff\xfe"), ("n", None)]

    batch = (Raw(), Raw())
    from consumer.subscription import decode_raw_batch, parse_raw_batch

    message = await parse_raw_batch(batch)
    assert await decode_raw_batch(message) is batch


async def test_traced_parser_links_only_records_that_carry_a_traceparent() -> None:
    """The traced parser adds one batch header per traced record, keyed by its coordinates."""
    from consumer.subscription import parse_raw_batch, parse_traced_batch

    parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"

    class Raw:
        topic, partition, key, value, timestamp = TOPIC, 2, None, b"{}", 0

        def __init__(self, offset: int, headers: Any) -> None:
            self.offset = offset
            self.headers = headers

    batch = (Raw(5, [("traceparent", parent.encode())]), Raw(6, [("h", b"\xff")]), Raw(7, None))
    traced = await parse_traced_batch(batch)
    assert traced.batch_headers == [{"traceparent": parent, "correlation_id": f"{TOPIC}-2-5"}]
    assert traced.raw_message is batch
    assert traced.message_id == f"{TOPIC}-2-5-7"
    assert (await parse_raw_batch(batch)).batch_headers == []
