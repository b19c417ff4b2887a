"""The worker's metrics of alert episodes: open now, opened and closed, how long they lasted."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.context import epoch_seconds
from shared.episodes import CLOSED, OPENED, Event

PREFIX = "anomaly_worker"
# event time from an episode's first anomalous record to its last
DURATION_BUCKETS = (0.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)


def leading_sensor(event: Event) -> str:
    """The label of an episode's leading sensor: its name, else ``feature_<i>``, else ``none``."""
    if not event.leading:
        return "none"
    first = event.leading[0]
    return str(first.get("name") or f"feature_{first['feature']}")


class AlertMetrics:
    """Counters of published episode events, and the open episodes of the owned partitions."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            f"{PREFIX}_alert_episodes_open",
            "Alert episodes open now, over the worker's assigned partitions",
            registry=registry,
        )
        self.opened = Counter(
            f"{PREFIX}_alert_episodes_opened",
            "Alert episodes opened (events acknowledged by the broker), by leading sensor",
            ["sensor"],
            registry=registry,
        )
        self.closed = Counter(
            f"{PREFIX}_alert_episodes_closed",
            "Alert episodes closed (events acknowledged by the broker), by leading sensor and "
            "reason (normal: K normal records; silent: no record for T seconds)",
            ["sensor", "reason"],
            registry=registry,
        )
        self.messages = Counter(
            f"{PREFIX}_alert_messages_published",
            "Alert events acknowledged by the broker, by event",
            ["event"],
            registry=registry,
        )
        self.duration = Histogram(
            f"{PREFIX}_alert_episode_seconds",
            "Event time of closed alert episodes, from their first anomalous record to their last",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        for event in ("opened", "updated", "closed"):
            self.messages.labels(event)

    def observe(self, events: Iterable[Event]) -> None:
        """Count a published batch's events."""
        closed: list[Event] = []
        for event in events:
            self.messages.labels(event.kind).inc()
            if event.kind == OPENED:
                self.opened.labels(leading_sensor(event)).inc()
            elif event.kind == CLOSED:
                self.closed.labels(leading_sensor(event), event.reason or "normal").inc()
                closed.append(event)
        if closed:
            ends = epoch_seconds([t for e in closed for t in (e.episode.start, e.episode.end)])
            for i in range(len(closed)):
                self.duration.observe(max(0.0, float(ends[2 * i + 1] - ends[2 * i])))
