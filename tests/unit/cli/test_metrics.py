"""Precision, recall, F1 and fault-level counts of an evaluation (cli/metrics.py)."""

from __future__ import annotations

import pytest

from cli.metrics import Confusion


def test_counts_and_ratios() -> None:
    """TP/FP/FN/TN give the textbook precision, recall, F1 and false-positive rate."""
    rows = (
        [(1, True, "spike", 1)] * 6
        + [(1, False, "stuck", 2)] * 4
        + [(0, True, None, None)] * 2
        + [(0, False, None, None)] * 88
    )
    c = Confusion.of(rows)
    assert (c.tp, c.fn, c.fp, c.tn, c.total) == (6, 4, 2, 88, 100)
    assert c.precision == pytest.approx(0.75)
    assert c.recall == pytest.approx(0.6)
    assert c.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert c.false_positive_rate == pytest.approx(2 / 90)
    assert c.kind_recall() == {"spike": 1.0, "stuck": 0.0}


def test_empty_cases_are_zero_not_errors() -> None:
    """No predictions, no anomalies: every ratio is 0 rather than a division error."""
    c = Confusion.of([(0, False, None, None)] * 5)
    assert (c.precision, c.recall, c.f1, c.false_positive_rate) == (0.0, 0.0, 0.0, 0.0)


def test_a_fault_is_caught_when_any_of_its_records_is_flagged() -> None:
    """Episode 1 has one flagged record of three: caught; episode 2 has none: missed."""
    c = Confusion.of(
        [
            (1, False, "drift", 1),
            (1, True, "drift", 1),
            (1, False, "drift", 1),
            (1, False, "drift", 2),
            (1, False, "drift", 2),
        ]
    )
    assert c.faults_caught() == {"drift": {"caught": 1, "injected": 2}}
    summary = c.as_dict()
    assert summary["faults_caught"]["drift"] == {"caught": 1, "injected": 2}
    assert summary["recall_by_kind"]["drift"]["caught"] == 1
    assert summary["confusion"] == {"tp": 1, "fp": 0, "fn": 4, "tn": 0}
