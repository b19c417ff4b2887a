"""The output topics' limits, parsed from the broker's DescribeConfigs answer."""

from __future__ import annotations

from types import SimpleNamespace

from consumer.topic_limits import DEFAULT_MAX_MESSAGE_BYTES, TopicLimits, parse_limits


def test_limits_are_read_per_topic_and_errors_left_out() -> None:
    """A described topic gives its value; one in error (absent, denied) is left to the default."""
    response = SimpleNamespace(
        resources=[
            (0, None, 2, "dlq", [("max.message.bytes", "120000", False, 1, False, [])]),
            (3, "unknown topic", 2, "missing", []),
        ]
    )
    limits = TopicLimits(parse_limits([response]))
    assert limits.of("dlq") == 120_000
    assert limits.of("missing") == DEFAULT_MAX_MESSAGE_BYTES
    assert DEFAULT_MAX_MESSAGE_BYTES == 1_048_576 + 12
