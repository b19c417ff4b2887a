"""Repeated warnings and errors are rate-limited: the first, a count, then the summary."""

from __future__ import annotations

import logging

from shared.observability import RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def setup(window: float = 10.0) -> tuple[logging.Logger, Collect, Clock]:
    clock = Clock()
    handler = Collect()
    handler.addFilter(RepeatFilter(window, clock=clock))
    logger = logging.getLogger(f"test.repeats.{id(handler)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, handler, clock


def test_a_flood_writes_its_first_line_and_counts_the_rest() -> None:
    """1,000 lines of one template (any arguments) in a window: one written."""
    logger, handler, clock = setup()
    for node in range(1_000):
        clock.now += 0.001
        logger.warning("Marking the coordinator dead (node %s)", node)
    assert [r.getMessage() for r in handler.records] == ["Marking the coordinator dead (node 0)"]


def test_the_next_window_carries_how_many_were_held_back() -> None:
    """After the window the kind is written again, with ``repeated``."""
    logger, handler, clock = setup()
    for _ in range(5):
        logger.error("batch not published")
    clock.now = 11
    logger.error("batch not published")
    assert len(handler.records) == 2
    assert handler.records[1].repeated == 4  # type: ignore[attr-defined]


def test_a_recovery_line_always_passes_and_a_stopped_flood_is_summarised() -> None:
    """A different line is written at once; the held-back count follows in a summary."""
    logger, handler, clock = setup()
    for _ in range(50):
        logger.error("broker unreachable")
    logger.warning("broker reachable again")
    clock.now = 20
    logger.warning("something else")
    messages = [r.getMessage() for r in handler.records]
    assert messages[:2] == ["broker unreachable", "broker reachable again"]
    assert "broker unreachable (and 49 more like it)" in messages
    assert messages[-1] == "something else"


def test_info_and_a_zero_window_are_never_limited() -> None:
    """Below WARNING, or with the filter off, every line is written."""
    logger, handler, _ = setup()
    for _ in range(10):
        logger.info("consuming")
    assert len(handler.records) == 10
    off_logger, off, _ = setup(window=0)
    for _ in range(10):
        off_logger.error("again")
    assert len(off.records) == 10
