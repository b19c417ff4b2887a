"""What `evaluate` asks the broker about the worker's consumer group: members, commits."""

from __future__ import annotations

from typing import Any


async def group_members(admin: Any, group: str) -> int | None:
    """How many members the group has now (``None`` when the broker's answer is unexpected)."""
    try:
        answers = await admin.describe_consumer_groups([group])
        groups = [g for answer in answers for g in answer.to_object()["groups"]]
    except Exception:  # the check is a courtesy: never fail the evaluation on it
        return None
    return sum(len(g.get("members") or []) for g in groups if g.get("group") == group)


async def committed(admin: Any, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """The group's committed offsets (next offset to read) on ``topic``; -1 when none."""
    from aiokafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in partitions]
    offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    found = {}
    for tp in tps:
        meta = offsets.get(tp)
        found[tp.partition] = meta.offset if meta is not None and meta.offset is not None else -1
    return found
