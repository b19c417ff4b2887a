"""``vehicle-anomaly explain`` and ``shadow``, run as subprocesses against a real api and broker.

The api runs as ``python -m api`` over real HTTP; the worker runs in-process on the same model
directory, so its verdicts (with their attributions) reach a real anomalies topic and its
shadow figures reach the api. The CLI runs in a thread, so the worker keeps working meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from simulator import (
    FEATURES,
    SCALES,
    FleetSimulator,
    SimRecord,
    SimulationConfig,
    training_history,
)
from tests.integration.api_helpers import API_KEY, Server
from tests.integration.cli_helpers import CLI, assert_ok, clean_env
from tests.integration.insight_helpers import END, OIL, VEHICLES, publish, train
from tests.integration.worker_helpers import (
    Topics,
    collect_outputs,
    running_worker,
    wait_until,
    worker_settings,
)

SPIKED_VEHICLE = "VH-SPIKED"


def live(count: int, run: int) -> list[SimRecord]:
    """Clean live telemetry of the fleet the models were trained on."""
    config = SimulationConfig(vehicles=VEHICLES, anomaly_rate=0.0, seed=7, start=END, run=run)
    return FleetSimulator(config).take(count)


def spiked_record(healthy: SimRecord, history: list[SimRecord]) -> dict[str, Any]:
    """A healthy reading with oil pressure five typical deviations above any seen in training."""
    features = list(healthy.features)
    features[OIL] = max(r.features[OIL] for r in history) + 5 * SCALES[OIL]
    return {
        "vehicle_id": SPIKED_VEHICLE,
        "timestamp": (END + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "feature_vector": features,
    }


class Cli:
    """The command with the environment of this api and these topics (no key file, no .env)."""

    def __init__(self, server: Server, bootstrap: str, topics: Topics, workdir: Path) -> None:
        self.workdir = workdir
        self.env = clean_env(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            TELEMETRY_TOPIC=topics.telemetry,
            ANOMALY_TOPIC=topics.anomalies,
            DLQ_TOPIC=topics.dlq,
            VEHICLE_ANOMALY_API=server.base_url,
            VEHICLE_ANOMALY_API_KEY=API_KEY,
            VEHICLE_ANOMALY_KEY_FILE=str(workdir / "no-key-file"),
        )

    def _run(self, args: tuple[str, ...], stdin: str | None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), *args],
            env=self.env,
            cwd=self.workdir,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    async def __call__(
        self, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run in a thread: the in-process worker goes on while the command runs."""
        return await asyncio.to_thread(self._run, args, stdin)


def assert_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert text in result.stderr, result.stderr


def feature_lines(out: str) -> list[str]:
    """The bar lines of the first verdict shown."""
    block = out.split("\n\n")[0].splitlines()
    return [line for line in block[1:] if not line.startswith("  the other features")]


async def test_explain_names_the_faulty_sensor_first(
    kafka_bootstrap: str, topics: Topics, api: Server, tmp_path: Path
) -> None:
    """A record with oil pressure far off, scored by the worker: explain puts oil_pressure first,
    read from the anomalies topic, from `tail --json` on stdin, and scored through the api."""
    history = training_history(VEHICLES, 4000, seed=7, end=END)
    # whole-sample trees, as `train --simulated` uses: they isolate one-sensor faults well
    version = await train(api, history, seed=1, params={"n_estimators": 200, "max_samples": 1.0})
    cli = Cli(api, kafka_bootstrap, topics, tmp_path)
    healthy = live(200, run=41)
    spiked = spiked_record(healthy[0], history)

    async with running_worker(worker_settings(kafka_bootstrap, topics, api.model_dir)):
        metas = await publish(
            kafka_bootstrap, topics.telemetry, [r.to_record() for r in healthy[1:]] + [spiked]
        )
        where = (metas[-1].partition, metas[-1].offset)
        outputs = await collect_outputs(kafka_bootstrap, topics, {where}, timeout=90)
        assert where in outputs.verdicts, "the spiked record got no anomalous verdict"

        shown = await cli("explain", "--from-topic", "--vehicle", SPIKED_VEHICLE)
    out = assert_ok(shown)
    print(f"\n{out}")
    headline, *_ = out.splitlines()
    assert headline.startswith(f"{SPIKED_VEHICLE} at ") and ": anomalous, score -" in headline
    assert f"model {version}" in headline and f"{topics.telemetry}[{where[0]}]@{where[1]}" in out
    lines = feature_lines(out)
    assert lines[0].split()[0] == "oil_pressure", out
    assert "↑ above typical" in lines[0] and "█" in lines[0]
    assert all(line.split()[0] in FEATURES for line in lines)

    # the raw attribution, as the worker published it
    raw = json.loads(
        assert_ok(await cli("explain", "--from-topic", "--vehicle", SPIKED_VEHICLE, "--json"))
    )
    (verdict,) = outputs.verdicts[where]
    assert raw == verdict["attribution"]
    assert raw[0]["name"] == "oil_pressure" and raw[0]["direction"] == "above"

    # the latest few anomalous verdicts of the whole topic
    anomalous = sum(len(v) for v in outputs.verdicts.values())
    last = assert_ok(await cli("explain", "--from-topic", "--last", "3"))
    blocks = last.split("\n\n")
    assert min(anomalous, 3) <= len(blocks) <= 3
    assert all(": anomalous, score -" in block.splitlines()[0] for block in blocks)

    # tail --json | explain -
    tailed = assert_ok(await cli("tail", "--from-beginning", "--timeout", "8", "--json"))
    assert len(tailed.splitlines()) >= anomalous
    piped = assert_ok(await cli("explain", "-", "--vehicle", SPIKED_VEHICLE, stdin=tailed))
    assert piped == out

    # --record: scored through POST /score, explained the same way
    record_file = tmp_path / "record.json"
    record_file.write_text(json.dumps(spiked))
    scored = assert_ok(await cli("explain", "--record", str(record_file)))
    assert scored.splitlines()[0].endswith(f"(model {version})")
    assert feature_lines(scored)[0].split()[0] == "oil_pressure"
    # a record the worker found normal (the same model scores it through the api)
    unflagged = next(
        r
        for meta, r in zip(metas[:-1], healthy[1:], strict=True)
        if (meta.partition, meta.offset) not in outputs.verdicts
    )
    normal = assert_ok(
        await cli("explain", "--record", "-", stdin=json.dumps(unflagged.to_record()))
    )
    assert "not anomalous" in normal and "a normal verdict has no attribution" in normal

    # a vehicle with no anomaly, and input that is not a verdict: one line, status 1
    assert_error(
        await cli("explain", "--from-topic", "--vehicle", "VH-NOBODY", "--scan", "50"),
        1,
        "no anomalous verdict of vehicle VH-NOBODY among the latest",
    )
    assert_error(
        await cli("explain", "-", stdin=json.dumps(spiked)),
        1,
        "a telemetry record, not a verdict",
    )


async def test_shadow_reports_a_candidate_and_promotes_it(
    kafka_bootstrap: str, topics: Topics, api: Server, tmp_path: Path
) -> None:
    """A candidate trained with activate=false: shadow says nothing is compared yet, then, with
    the worker scoring records in shadow, shows the report with the right count; --promote."""
    active = await train(api, training_history(VEHICLES, 4000, seed=7, end=END), seed=1)
    candidate = await train(
        api, training_history(VEHICLES, 2000, seed=7, end=END), seed=2, activate=False
    )
    cli = Cli(api, kafka_bootstrap, topics, tmp_path)

    listing = assert_ok(await cli("models", "list"))
    print(f"\n{listing}")
    # by whole words: a version can be a prefix of another (20240115100000, 20240115100000-2)
    (candidate_line,) = [line for line in listing.splitlines() if candidate in line.split()]
    (active_line,) = [line for line in listing.splitlines() if active in line.split()]
    assert candidate_line.split()[:2] == [candidate, "candidate"]
    assert active_line.split()[:3] == ["*", active, "active"]

    waiting = assert_ok(await cli("shadow"))
    assert waiting.splitlines()[0] == f"candidate {candidate} (scored in shadow now)"
    assert f"compared with {active}" in waiting and "no records compared yet" in waiting

    records = live(600, run=51)
    await publish(kafka_bootstrap, topics.telemetry, [r.to_record() for r in records])
    async with running_worker(worker_settings(kafka_bootstrap, topics, api.model_dir)) as worker:
        await wait_until(lambda: worker.state.records >= 600, 90, "records scored")
        await worker.monitor.flush()
        table = assert_ok(await cli("shadow"))
        report = json.loads(
            assert_ok(await cli("shadow", candidate, "--against", active, "--json"))
        )

        promoted = assert_ok(await cli("shadow", "--promote", "--yes"))
        await wait_until(lambda: worker.state.model_version == candidate, 30, "promotion")

    assert report["records"] == 600 and report["candidate"] == candidate
    assert report["active"] == active and report["workers"] == 1 and report["stale"] is False
    print(f"\n{table}\n{promoted}")
    assert "ACTIVE" in table and "CANDIDATE" in table
    cells = {
        parts[0]: parts[1:]
        for parts in (re.split(r"\s{2,}", line.strip()) for line in table.splitlines())
    }
    assert cells["records compared"][0] == "600"
    assert cells["anomalies"] == [
        f"{report['active_anomalies']:,}",
        f"{report['candidate_anomalies']:,}",
    ]
    assert cells["flips to anomaly"][0] == str(report["flips_to_anomaly"])
    assert cells["flips to normal"][0] == str(report["flips_to_normal"])
    assert cells["agreement"][0] == f"{report['agreement'] * 100:.3f}%"
    assert cells["rank correlation"][0] == f"{report['rank_correlation']:.4f}"
    assert cells["workers"][0] == "1" and cells["stale"][0] == "no"
    assert promoted.rstrip().endswith(f"model {candidate} is now active (replacing {active})")

    # the candidate is active now: there is none left
    assert_error(await cli("shadow"), 1, "no shadow candidate")
    assert json.loads(assert_ok(await cli("models", "list", "--json")))["candidate"] is None

    # models shadow / unshadow choose and clear a candidate
    assert_ok(await cli("models", "shadow", active))
    assert json.loads(assert_ok(await cli("models", "list", "--json")))["candidate"] == active
    assert_error(await cli("models", "unshadow", candidate), 1, "(409)")
    assert assert_ok(await cli("models", "unshadow", active)) == (
        f"model {active} is no longer scored in shadow\n"
    )
    assert json.loads(assert_ok(await cli("models", "list", "--json")))["candidate"] is None
