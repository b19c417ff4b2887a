"""Attribution on verdicts, and the model monitor's drift window and shadow scoring."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from consumer.metrics import WorkerMetrics
from consumer.monitor import ModelMonitor
from consumer.processor import BatchProcessor
from consumer.state import WorkerState
from shared.detector import Detector
from shared.settings import Settings
from shared.training import reference_summary
from shared.training_schemas import ModelMeta
from shared.worker_figures import DRIFT, SHADOW, ObservationStore
from tests.unit.consumer.fakes import N_FEATURES, records, valid_value

SCORED_AT = "2024-01-15T10:00:01.000Z"
NAMES = ["speed", "rpm", "temp", "oil"][:N_FEATURES]


def detector(version: str = "20240115100000", seed: int = 0) -> Detector:
    """A model with the reference and names that ``shared.training`` stores."""
    from shared.drift import reference_bins
    from shared.forest import CompiledForest

    rng = np.random.default_rng(seed)
    data = rng.normal(size=(512, N_FEATURES))
    model = IsolationForest(n_estimators=50, random_state=seed).fit(data)
    reference: dict[str, object] = dict(reference_summary(data))
    reference["bins"] = reference_bins(
        data, CompiledForest.from_sklearn(model).decision_function(data)
    )
    meta = ModelMeta.model_validate(
        {
            "version": version,
            "created_at": datetime(2024, 1, 15, tzinfo=UTC),
            "n_features": N_FEATURES,
            "record_count": 512,
            "params": {},
            "sha256": "0" * 64,
            "reference": reference,
            "feature_names": NAMES,
        }
    )
    return Detector(meta, model)


def settings(tmp_path: Path, **extra: Any) -> Settings:
    """Settings for a monitor test, with no .env file."""
    return Settings(model_dir=tmp_path, _env_file=None, **extra)


def test_anomalous_verdicts_carry_a_ranked_attribution_and_normal_ones_none() -> None:
    """An anomalous verdict ranks the features that isolated it; a normal one has none."""
    model = detector()
    spiked = [0.1, 0.0, -0.2, 9.0][:N_FEATURES]
    values = [valid_value("VH-N", [0.0] * N_FEATURES), valid_value("VH-A", spiked)]
    processor = BatchProcessor(
        anomaly_topic="anomalies", dlq_topic="dlq", publish_all=True, attribution_top_k=2
    )
    outcome = processor.process(records(values), model, SCORED_AT)
    normal, anomalous = (json.loads(m.value or b"") for m in outcome.messages)
    assert normal["is_anomaly"] is False and "attribution" not in normal
    assert anomalous["is_anomaly"] is True
    assert outcome.explained == 1
    first, second = anomalous["attribution"]
    assert first["feature"] == N_FEATURES - 1 and first["name"] == NAMES[-1]
    assert first["direction"] == "above" and first["value"] == 9.0
    assert first["share"] >= second["share"] > 0


def test_top_k_zero_turns_attribution_off() -> None:
    """ATTRIBUTION_TOP_K=0: no verdict carries an attribution."""
    processor = BatchProcessor(anomaly_topic="a", dlq_topic="d", attribution_top_k=0)
    outcome = processor.process(
        records([valid_value("VH-A", [9.0] * N_FEATURES)]), detector(), SCORED_AT
    )
    (message,) = outcome.messages
    assert "attribution" not in json.loads(message.value or b"")
    assert outcome.explained == 0


async def test_drift_window_and_shadow_figures_reach_metrics_and_files(tmp_path: Path) -> None:
    """What a scored batch shows the monitor reaches the gauges and the observation files."""
    state, metrics = WorkerState(), WorkerMetrics()
    store = ObservationStore(tmp_path)
    monitor = ModelMonitor(
        state, metrics, settings(tmp_path, drift_min_records=100), store, "worker-1"
    )
    active, candidate = detector(), detector("20240116000000", seed=1)
    state.detector, state.shadow = active, candidate
    processor = BatchProcessor(anomaly_topic="a", dlq_topic="d")
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(300, N_FEATURES))
    rows[:, 0] += 2.0  # the first feature moved
    values = [valid_value(f"VH-{i}", row.tolist()) for i, row in enumerate(rows)]
    outcome = processor.process(records(values), active, SCORED_AT, shadow=candidate)
    np.testing.assert_array_equal(outcome.features, rows)  # the pure core returns what it scored
    monitor.observe(active, outcome.features, outcome.scores, outcome.shadow_scores)
    await monitor.flush()

    text = metrics.render().decode()
    assert "anomaly_worker_drift_window_records 300.0" in text
    psi = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("anomaly_worker_drift_psi{")
    }
    assert set(psi) == {*NAMES, "score"}
    assert psi["speed"] > 0.25 > max(psi[n] for n in NAMES[1:])
    assert "anomaly_worker_shadow_records 300.0" in text

    (drift,), _ = store.read(DRIFT, (active.version,), ttl=60)
    assert drift["records"] == 300 and drift["worker"] == "worker-1"
    (shadow,), _ = store.read(SHADOW, (candidate.version, active.version), ttl=60)
    a, c = active.score(rows), candidate.score(rows)
    assert shadow["records"] == 300
    assert shadow["flips_to_anomaly"] == int(((c < 0) & (a >= 0)).sum())
    assert shadow["flips_to_normal"] == int(((a < 0) & (c >= 0)).sum())

    # the candidate is promoted: the same version on both sides is not compared
    state.detector, state.shadow = candidate, candidate
    outcome = processor.process(records(values), candidate, SCORED_AT)
    monitor.observe(candidate, outcome.features, outcome.scores)
    assert monitor.shadow is None
    assert monitor.window is not None and monitor.window.records == 300  # a new window


async def test_a_model_without_a_reference_has_no_drift_window(tmp_path: Path) -> None:
    """A version without a drift reference gets no window, writes nothing, sets no gauge."""
    from tests.unit.consumer.fakes import make_detector

    state, metrics = WorkerState(), WorkerMetrics()
    monitor = ModelMonitor(state, metrics, settings(tmp_path), ObservationStore(tmp_path), "w")
    plain = make_detector()
    state.detector = plain
    monitor.observe(plain, np.zeros((3, N_FEATURES)), np.zeros(3))
    assert monitor.window is None
    await monitor.flush()
    assert not (tmp_path / ".observations").exists()
    assert "anomaly_worker_drift_psi{" not in metrics.render().decode()
