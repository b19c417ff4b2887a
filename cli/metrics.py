"""Precision, recall and the confusion matrix of a labelled evaluation (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Confusion:
    """Counts of (label, prediction) pairs, and the recall of each injected kind."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    kind_total: Counter[str] = field(default_factory=Counter)
    kind_caught: Counter[str] = field(default_factory=Counter)
    # fault episodes (a drift or stuck sensor spans several records): id -> (kind, caught)
    episodes: dict[object, tuple[str, bool]] = field(default_factory=dict)

    def add(
        self, label: int, predicted: bool, kind: str | None = None, episode: object = None
    ) -> None:
        if label:
            if predicted:
                self.tp += 1
            else:
                self.fn += 1
            if kind:
                self.kind_total[kind] += 1
                self.kind_caught[kind] += int(predicted)
            if episode is not None:  # a fault whose records name no kind is counted apart
                name, caught = self.episodes.get(episode, (kind or "labelled", False))
                self.episodes[episode] = (name, caught or predicted)
        elif predicted:
            self.fp += 1
        else:
            self.tn += 1

    @classmethod
    def of(cls, rows: Iterable[tuple[int, bool, str | None, object]]) -> Confusion:
        """From ``(label, predicted, kind, episode)`` rows."""
        confusion = cls()
        for label, predicted, kind, episode in rows:
            confusion.add(label, predicted, kind, episode)
        return confusion

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 0 when nothing was predicted anomalous."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 0 when there is no anomaly."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_positive_rate(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    def kind_recall(self) -> dict[str, float]:
        return {k: self.kind_caught[k] / n for k, n in sorted(self.kind_total.items()) if n}

    def faults_caught(self) -> dict[str, dict[str, int]]:
        """Per kind: how many fault episodes had at least one record flagged."""
        found: dict[str, dict[str, int]] = {}
        for kind, caught in self.episodes.values():
            entry = found.setdefault(kind, {"caught": 0, "injected": 0})
            entry["injected"] += 1
            entry["caught"] += int(caught)
        return dict(sorted(found.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.total,
            "anomalies": self.tp + self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "false_positive_rate": round(self.false_positive_rate, 4),
            "confusion": {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn},
            "recall_by_kind": {
                k: {
                    "caught": self.kind_caught[k],
                    "injected": n,
                    "recall": round(self.kind_caught[k] / n, 4),
                }
                for k, n in sorted(self.kind_total.items())
            },
            "faults_caught": self.faults_caught(),
            "faults": {
                "caught": sum(int(c) for _, c in self.episodes.values()),
                "total": len(self.episodes),
            },
        }
