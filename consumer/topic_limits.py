"""The output topics' real size limits (``max.message.bytes``), asked of the broker.

The dead letters are sized against them before they are sent (:mod:`consumer.sizing`).
When the broker cannot say (an ACL without ``DescribeConfigs``, no answer), a topic's limit
is Kafka's default, the safe guess for a topic nobody configured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("consumer.topic_limits")

# Kafka's default message.max.bytes (1 MiB plus the 12-byte log overhead).
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
LIMIT_CONFIG = "max.message.bytes"
LOOKUP_TIMEOUT_SECONDS = 15.0  # start-up goes on with the default rather than wait longer


@dataclass(slots=True)
class TopicLimits:
    """Per topic, the largest record batch the broker takes."""

    limits: dict[str, int] = field(default_factory=dict)
    default: int = DEFAULT_MAX_MESSAGE_BYTES

    def of(self, topic: str) -> int:
        return self.limits.get(topic, self.default)


def parse_limits(responses: Sequence[Any]) -> dict[str, int]:
    """``max.message.bytes`` per topic from aiokafka's ``DescribeConfigsResponse`` list.

    Each response's ``resources`` are ``(error_code, error_message, type, name, entries)``
    and each entry starts ``(config_name, config_value, ...)``; a resource in error is left out.
    """
    found: dict[str, int] = {}
    for response in responses:
        for resource in response.resources:
            error_code, _, _, name, entries = resource[:5]
            if error_code:
                continue
            for entry in entries:
                if entry[0] == LIMIT_CONFIG and entry[1] is not None:
                    found[name] = int(entry[1])
    return found


async def fetch_topic_limits(client_options: dict[str, Any], topics: Sequence[str]) -> TopicLimits:
    """The limits of ``topics`` (Kafka's default for any the broker does not describe)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_options)

    async def ask() -> Any:
        await admin.start()
        return await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {LIMIT_CONFIG: None}) for t in topics]
        )

    try:
        limits = parse_limits(await asyncio.wait_for(ask(), LOOKUP_TIMEOUT_SECONDS))
    except Exception as error:
        log.warning(
            "could not read the output topics' size limits; assuming Kafka's default",
            extra={"error": repr(error), "default_bytes": DEFAULT_MAX_MESSAGE_BYTES},
        )
        return TopicLimits()
    finally:
        await admin.close()
    log.info("output topics' size limits", extra={"max_message_bytes": limits})
    return TopicLimits(limits)
