"""``bench.insight``'s batch core with context models: their states kept per partition, the
candidate's apart, and the end-to-end part refused (it measures point models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import insight


def test_the_batch_core_measures_context_models(tmp_path: Path) -> None:
    """Every variant runs and the report says which detector it measured."""
    out = tmp_path / "insight.json"
    args = ["--detector", "context", "--records", "1500", "--repeat", "1"]
    assert insight.main([*args, "--pipeline-records", "0", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["detector"] == "context"
    rates = {row["variant"]: row["records_per_s"] for row in report["results"]}
    assert set(rates) == {"plain", "attribution", "drift", "shadow", "all"}
    assert all(rate > 0 for rate in rates.values())
    # in their vehicles' context the model flags few of these normal readings
    assert 0.0 <= report["anomaly_rate"] < 0.02
    assert report["end_to_end"] is None


def test_the_end_to_end_part_is_refused_for_context_models(tmp_path: Path) -> None:
    """Its default of 100,000 records end to end is an error with context models."""
    with pytest.raises(SystemExit):
        insight.main(["--detector", "context", "--out", str(tmp_path / "x.json")])
