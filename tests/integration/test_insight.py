"""Explained verdicts, drift watch and shadow models, end to end.

A real broker, the worker in-process, and the api as ``python -m api`` over real HTTP, both
on one model directory: models are trained with ``POST /ingest``, the worker's drift and
shadow figures reach the api through the files it writes beside the models.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr  # type: ignore[import-untyped]  # scipy ships no types

from shared.context import epoch_seconds
from shared.registry import ModelRegistry
from simulator import (
    FEATURES,
    SCALES,
    FleetSimulator,
    SimRecord,
    SimulationConfig,
    training_history,
)
from tests.integration.api_helpers import Server
from tests.integration.insight_helpers import END, OIL, VEHICLES, call, publish, train
from tests.integration.worker_helpers import (
    Topics,
    asgi_get,
    collect_outputs,
    running_worker,
    wait_until,
    worker_settings,
)


async def get(server: Server, path: str) -> dict[str, Any]:
    response = await call(server, "GET", path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stream(
    count: int, *, anomaly_rate: float, run: int, spread_days: float = 0.0
) -> list[SimRecord]:
    """Live telemetry of the same fleet; ``spread_days`` spreads it like the training data."""
    interval = spread_days * 86400 / (count / VEHICLES) if spread_days else 60.0
    start = END - timedelta(days=spread_days) if spread_days else END
    config = SimulationConfig(
        vehicles=VEHICLES,
        anomaly_rate=anomaly_rate,
        seed=7,
        start=start,
        interval_seconds=interval,
        run=run,
    )
    return FleetSimulator(config).take(count)


def shadow_counts(a: np.ndarray, c: np.ndarray) -> dict[str, int]:
    """What a shadow report counts, from both models' scores of the same records."""
    return {
        "records": a.shape[0],
        "active_anomalies": int((a < 0).sum()),
        "candidate_anomalies": int((c < 0).sum()),
        "flips_to_anomaly": int(((c < 0) & (a >= 0)).sum()),
        "flips_to_normal": int(((a < 0) & (c >= 0)).sum()),
    }


def matrix(records: list[SimRecord]) -> np.ndarray:
    return np.array([r.features for r in records], dtype=np.float64)


async def test_attribution_ranks_the_injected_faulty_sensor_first(
    kafka_bootstrap: str, topics: Topics, api: Server
) -> None:
    """Anomalous verdicts carry a ranked attribution; the faulted sensor usually leads it."""
    version = await train(api, training_history(VEHICLES, 4000, seed=7, end=END), seed=1)
    model = ModelRegistry(api.model_dir).load(version).estimator
    records = stream(6000, anomaly_rate=0.05, run=11)
    scores = model.decision_function(matrix(records))
    metas = await publish(kafka_bootstrap, topics.telemetry, [r.to_record() for r in records])
    anomalous = {
        (m.partition, m.offset): r for m, r, s in zip(metas, records, scores, strict=True) if s < 0
    }
    assert anomalous

    async with running_worker(worker_settings(kafka_bootstrap, topics, api.model_dir)):
        outputs = await collect_outputs(kafka_bootstrap, topics, set(anomalous), timeout=90)
    assert set(outputs.verdicts) == set(anomalous)

    hits: Counter[str] = Counter()
    faulted: Counter[str] = Counter()
    for where, (verdict,) in outputs.verdicts.items():
        attribution = verdict["attribution"]
        assert 1 <= len(attribution) <= 3
        shares = [a["share"] for a in attribution]
        assert shares == sorted(shares, reverse=True) and sum(shares) <= 1.0001
        assert all(a["name"] == FEATURES[a["feature"]] for a in attribution)
        record = anomalous[where]
        if record.fault is None:
            continue
        kind, sensor = record.fault.split(":")
        faulted[kind] += 1
        top = attribution[0]
        if top["name"] == sensor:
            hits[kind] += 1
            if kind == "spike":  # far outside the training range, on the fault's side
                assert top["direction"] in ("above", "below")
    value_faults = faulted["spike"] + faulted["drift"]
    rate = (hits["spike"] + hits["drift"]) / value_faults
    print(
        f"\nattribution top-1 hit rate: spike {hits['spike']}/{faulted['spike']}, "
        f"drift {hits['drift']}/{faulted['drift']}, stuck {hits['stuck']}/{faulted['stuck']}"
    )
    assert value_faults >= 40
    assert rate >= 0.85

    # /score explains too: one reading of oil pressure far above its range
    healthy = next(r for r in records if r.fault is None)
    spiked = list(healthy.features)
    spiked[OIL] += 8 * SCALES[OIL]
    answer = (
        await call(api, "POST", "/score", json={**healthy.to_record(), "feature_vector": spiked})
    ).json()
    assert answer["is_anomaly"] is True
    assert answer["attribution"][0]["name"] == "oil_pressure"
    assert answer["attribution"][0]["direction"] == "above"


def worker_psi(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith("anomaly_worker_drift_psi{"):
            label = line.split('feature="', 1)[1].split('"', 1)[0]
            found[label] = float(line.rsplit(" ", 1)[1])
    return found


async def test_a_shifted_stream_raises_drift_past_the_threshold_and_a_steady_one_does_not(
    kafka_bootstrap: str, topics: Topics, api: Server
) -> None:
    """A steady stream keeps PSI under 0.25; an oil-pressure offset drifts that feature alone."""
    version = await train(api, training_history(VEHICLES, 4000, seed=7, end=END), seed=1)
    steady = stream(2000, anomaly_rate=0.0, run=21, spread_days=2.0)
    shifted = stream(2000, anomaly_rate=0.0, run=22, spread_days=2.0)
    # a fleet-wide oil pressure offset of one typical deviation
    shifted = [
        replace(r, features=tuple(v + SCALES[OIL] * (j == OIL) for j, v in enumerate(r.features)))
        for r in shifted
    ]
    settings = worker_settings(
        kafka_bootstrap,
        topics,
        api.model_dir,
        drift_window_records=2000,
        drift_min_records=1000,
    )
    async with running_worker(settings) as worker:
        await publish(kafka_bootstrap, topics.telemetry, [r.to_record() for r in steady])
        await wait_until(lambda: worker.state.records >= 2000, 60, "steady records scored")
        await worker.monitor.flush()
        calm = await get(api, f"/models/{version}/drift")
        calm_metrics = worker_psi((await asgi_get(worker, "/metrics")).text)

        await publish(kafka_bootstrap, topics.telemetry, [r.to_record() for r in shifted])
        await wait_until(lambda: worker.state.records >= 4000, 60, "shifted records scored")
        await worker.monitor.flush()
        moved = await get(api, f"/models/{version}/drift")
        moved_metrics = worker_psi((await asgi_get(worker, "/metrics")).text)

    print(f"\nsteady PSI: {calm_metrics}\nshifted PSI: {moved_metrics}")
    assert calm["ready"] and calm["records"] == 2000 and calm["workers"] == 1
    assert calm["drifted"] is False
    assert max(calm_metrics.values()) < 0.25
    assert set(calm_metrics) == {*FEATURES, "score"}
    assert moved["drifted"] is True
    oil = next(f for f in moved["features"] if f["name"] == "oil_pressure")
    assert oil["drifted"] and oil["psi"] > 0.25
    assert oil["psi"] == max(f["psi"] for f in moved["features"])
    assert moved_metrics["oil_pressure"] > 0.25
    assert all(v < 0.25 for k, v in moved_metrics.items() if k not in ("oil_pressure", "score"))


async def test_shadow_report_matches_an_offline_computation(
    kafka_bootstrap: str, topics: Topics, api: Server
) -> None:
    """The shadow report equals offline scoring; only active verdicts publish; promotion ends it."""
    active = await train(api, training_history(VEHICLES, 4000, seed=7, end=END), seed=1)
    candidate = await train(
        api, training_history(VEHICLES, 2000, seed=7, end=END), seed=2, activate=False
    )
    listing = await get(api, "/models")
    assert (listing["active"], listing["candidate"]) == (active, candidate)

    records = stream(3000, anomaly_rate=0.03, run=31)
    await publish(kafka_bootstrap, topics.telemetry, [r.to_record() for r in records])
    async with running_worker(worker_settings(kafka_bootstrap, topics, api.model_dir)) as worker:
        await wait_until(lambda: worker.state.records >= 3000, 90, "records scored")
        assert worker.state.shadow is not None and worker.state.shadow.version == candidate
        await worker.monitor.flush()
        report = await get(api, f"/models/{candidate}/shadow")
        outputs = await collect_outputs(kafka_bootstrap, topics, set(), timeout=5, settle=2)

        # promote: the candidate becomes active, the workers stop shadowing it
        promoted = await call(api, "POST", f"/models/{candidate}/activate")
        assert promoted.status_code == 200, promoted.text
        await wait_until(lambda: worker.state.model_version == candidate, 30, "promotion")
        await wait_until(lambda: worker.state.shadow is None, 30, "shadow stopped")
    assert (await get(api, "/models"))["candidate"] is None

    registry = ModelRegistry(api.model_dir)
    x = matrix(records)
    a = registry.load(active).estimator.decision_function(x)
    c = registry.load(candidate).estimator.decision_function(x)
    expected = shadow_counts(a, c)
    print(f"\nshadow report: {report}")
    assert {k: report[k] for k in expected} == expected
    assert report["active"] == active and report["candidate"] == candidate
    assert report["shadowing"] is True
    assert report["rank_correlation_sample"] == 3000
    assert report["rank_correlation"] == pytest.approx(spearmanr(a, c).statistic, abs=1e-6)
    flips = expected["flips_to_anomaly"] + expected["flips_to_normal"]
    assert report["agreement"] == pytest.approx(1 - flips / 3000, abs=1e-6)
    # the candidate's verdicts were never published
    versions = {body["model_version"] for (body, *_) in outputs.verdicts.values()}
    assert versions == {active}
    assert sum(len(v) for v in outputs.verdicts.values()) == expected["active_anomalies"]


@pytest.mark.parametrize("active_kind", ["context", "point"])
async def test_a_context_candidate_is_compared_in_each_records_history(
    kafka_bootstrap: str, topics: Topics, api: Server, active_kind: str
) -> None:
    """A context candidate (the default detector) judges each record in its vehicle's
    history, under a context model (a copy of its histories) as under a point model (its own,
    from the partitions' tails), so the report equals both models' offline scores: each
    partition's records in offset order."""
    context = {"detector": "context"}
    active = await train(
        api,
        training_history(VEHICLES, 4000, seed=7, end=END),
        seed=1,
        params={"detector": active_kind},
    )
    candidate = await train(
        api,
        training_history(VEHICLES, 2000, seed=8, end=END),
        seed=2,
        activate=False,
        params=context,
    )
    records = stream(3000, anomaly_rate=0.03, run=32)
    sent = await publish(kafka_bootstrap, topics.telemetry, [r.to_record() for r in records])
    async with running_worker(worker_settings(kafka_bootstrap, topics, api.model_dir)) as worker:
        await wait_until(lambda: worker.state.records >= 3000, 90, "records scored")
        assert worker.state.shadow is not None and worker.state.shadow.version == candidate
        assert worker.state.batch_failures == 0
        await worker.monitor.flush()
        report = await get(api, f"/models/{candidate}/shadow")

    registry = ModelRegistry(api.model_dir)
    scores = {}
    for version in (active, candidate):
        model = registry.load(version).estimator
        if version == active and active_kind == "point":
            scores[version] = model.decision_function(matrix(records))
            continue
        got = np.empty(len(records))
        for partition in sorted({m.partition for m in sent}):
            rows = sorted(
                (i for i, m in enumerate(sent) if m.partition == partition),
                key=lambda i: sent[i].offset,
            )
            bodies = [records[i].to_record() for i in rows]
            got[rows] = model.score_records(
                [b["vehicle_id"] for b in bodies],
                epoch_seconds([b["timestamp"] for b in bodies]),
                matrix([records[i] for i in rows]),
                offsets=np.asarray([sent[i].offset for i in rows], dtype=np.int64),
            )
        scores[version] = got
    a, c = scores[active], scores[candidate]
    expected = shadow_counts(a, c)
    print(f"\ncontext shadow report under a {active_kind} model: {report}")
    assert {k: report[k] for k in expected} == expected
    assert report["rank_correlation"] == pytest.approx(spearmanr(a, c).statistic, abs=1e-6)
