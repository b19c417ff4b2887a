"""`evaluate --file` without a broker: column flags, the split, offline scoring (cli/evaluate*)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from cli.config import build_context
from cli.evaluate_input import Item
from cli.evaluate_model import train_through_api
from cli.evaluate_split import fault_runs, split
from cli.main import build_parser, main
from cli.readers import Columns, read_table
from shared.context import ContextForest, epoch_seconds
from shared.registry import ModelRegistry
from simulator import FEATURES, FleetSimulator, SimulationConfig
from tests.unit.cli.conftest import StubApi

START = datetime(2025, 3, 1, 12, tzinfo=UTC)
SENSORS = list(FEATURES[:4])


def write_fleet(path: Path, count: int = 3000) -> list[dict[str, str]]:
    """A labelled CSV of a small simulated fleet: named sensor columns, label and kind columns."""
    config = SimulationConfig(vehicles=5, seed=4, start=START, anomaly_rate=0.03)
    rows = []
    for r in FleetSimulator(config).take(count):
        row = {"car": r.vehicle_id, "at": r.timestamp, "mode": "road"}
        row.update({name: str(v) for name, v in zip(SENSORS, r.features, strict=False)})
        row.update({"is_fault": str(r.label), "fault_kind": r.kind or ""})
        rows.append(row)
    rows.reverse()  # a file need not be in time order: evaluate sorts it
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


COLUMNS = [
    "--vehicle-column",
    "car",
    "--timestamp-column",
    "at",
    "--label-column",
    "is_fault",
    "--kind-column",
    "fault_kind",
]


def evaluate(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    status = main(["evaluate", *argv, "--json", "-q"])
    out, err = capsys.readouterr()
    assert status == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def test_offline_evaluation_scores_the_replay_as_the_context_model_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_cli_env: Path
) -> None:
    """--offline --train-fraction trains a ContextForest here and scores the rest in time order."""
    path = tmp_path / "fleet.csv"
    rows = write_fleet(path)
    result = evaluate(
        capsys, "--file", str(path), *COLUMNS, "--offline", "--train-fraction", "0.5",
        "--random-state", "3",
    )  # fmt: skip
    ordered = sorted(reversed(rows), key=lambda r: epoch_seconds([r["at"]])[0])
    cut = len(ordered) // 2
    train, replay = ordered[:cut], ordered[cut:]
    assert result["trained_on"] == sum(r["is_fault"] == "0" for r in train)
    assert result["training_labelled_left_out"] == sum(r["is_fault"] == "1" for r in train)
    assert result["records"] == result["replayed"] == len(replay)
    assert result["mode"] == "offline" and result["model_versions"] == ["local"]
    clean = [r for r in train if r["is_fault"] == "0"]
    model = ContextForest(random_state=3).fit(
        [r["car"] for r in clean],
        epoch_seconds([r["at"] for r in clean]),
        np.array([[float(r[c]) for c in SENSORS] for r in clean]),
    )
    scores = model.score_records(
        [r["car"] for r in replay],
        epoch_seconds([r["at"] for r in replay]),
        np.array([[float(r[c]) for c in SENSORS] for r in replay]),
    )
    flagged = scores < 0
    labels = np.array([r["is_fault"] == "1" for r in replay])
    assert result["confusion"] == {
        "tp": int((flagged & labels).sum()),
        "fp": int((flagged & ~labels).sum()),
        "fn": int((~flagged & labels).sum()),
        "tn": int((~flagged & ~labels).sum()),
    }
    kinds = {r["fault_kind"] for r in replay if r["fault_kind"]}
    by_kind = result["recall_by_kind"]
    assert isinstance(by_kind, dict) and set(by_kind) == kinds
    faults = result["faults"]
    assert isinstance(faults, dict) and faults["total"] >= len(kinds) and faults["caught"] >= 1
    assert result["false_alarm_rate"] == result["false_positive_rate"]


def test_offline_evaluation_with_a_registry_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_cli_env: Path
) -> None:
    """--offline --model VERSION loads the version (sha256 checked) and replays every record."""
    path = tmp_path / "fleet.csv"
    rows = write_fleet(path, 1500)
    clean = [r for r in rows if r["is_fault"] == "0"]
    model = ContextForest(random_state=1).fit(
        [r["car"] for r in clean],
        epoch_seconds([r["at"] for r in clean]),
        np.array([[float(r[c]) for c in SENSORS] for r in clean]),
    )
    registry = ModelRegistry(tmp_path / "models")
    version = registry.publish(model, n_features=4, record_count=len(clean), params={}).version
    argv = ["--file", str(path), *COLUMNS, "--offline", "--model-dir", str(tmp_path / "models")]
    result = evaluate(capsys, *argv, "--model", version)
    assert result["records"] == 1500 and result["trained_on"] == 0
    assert result["model_versions"] == [version]
    (tmp_path / "models" / version / "model.joblib").write_bytes(b"not the model")
    assert main(["evaluate", *argv, "--model", version]) == 1
    assert "fails its sha256 check" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "name"),
    [
        ("--vehicle-column", "vehicle"),
        ("--timestamp-column", "time"),
        ("--label-column", "anomaly"),
        ("--kind-column", "kind"),
        ("--features", "speed,boost"),
    ],
)
def test_a_missing_column_is_a_one_line_error_naming_it(
    flag: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_cli_env: Path
) -> None:
    """A column flag naming no column of the file: status 1, one line with the column and flag."""
    path = tmp_path / "fleet.csv"
    write_fleet(path, 50)
    defaults = dict(zip(COLUMNS[::2], COLUMNS[1::2], strict=True))
    defaults[flag] = name
    argv = [part for pair in defaults.items() for part in pair]
    assert main(["evaluate", "--file", str(path), *argv, "--offline"]) == 1
    err = capsys.readouterr().err
    missing = name.split(",")[-1]
    assert err.count("\n") == 1 and f"no column {missing!r} ({flag})" in err


def test_features_default_to_every_other_numeric_column(tmp_path: Path) -> None:
    """Without f0..fN or feature_vector, the features are the numeric columns left."""
    path = tmp_path / "fleet.csv"
    write_fleet(path, 20)
    columns = Columns("car", "at", "is_fault", "fault_kind", numeric_fallback=True)
    records, names = read_table(path, None, None, columns)
    assert names == SENSORS  # not the text column "mode", nor the label or kind
    assert len(records[0].record["feature_vector"]) == 4
    assert {r.fault for r in records if r.label} <= {"spike", "drift", "stuck", "dropout", "noise"}


def test_split_by_fraction_keeps_an_instant_whole() -> None:
    """--train-fraction trains on the records before the cut time; ties at the cut replay."""
    times = np.array([5.0, 1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0])
    plan = split(times, fraction=0.5)
    assert plan.train == [1, 2, 3] and plan.replay == [4, 5, 6, 7, 0]
    assert split(times, count=4).train == [1, 2, 3, 4]
    until = datetime.fromtimestamp(3.0, UTC)
    assert split(times, until=until).train == [1, 2, 3]
    assert split(times).train == [] and split(times).replay == [1, 2, 3, 4, 5, 6, 7, 0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"count": 8}, "no record to replay"),
        ({"until": datetime.fromtimestamp(0.5, UTC)}, "no record to train on"),
    ],
)
def test_a_split_that_leaves_a_part_empty_is_refused(
    options: dict[str, object], message: str
) -> None:
    """A split with nothing to train on or nothing to replay is a usage error."""
    from cli.errors import UsageError

    times = np.arange(1, 9, dtype=np.float64)
    with pytest.raises(UsageError, match=message):
        split(times, **options)  # type: ignore[arg-type]  # the options are its keywords


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train-fraction", "1"], "argument --train-fraction: must be above 0 and below 1"),
        (["--train-count", "5", "--model", "v1"], "not allowed with argument"),
        (["--train-until", "soon"], "is not an RFC 3339 time"),
    ],
)
def test_split_flags_are_checked(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad or conflicting split flags: status 2, one line."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["evaluate", "--file", "x.csv", *argv])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_split_flag_needs_a_file(capsys: pytest.CaptureFixture[str], clean_cli_env: Path) -> None:
    """--train-count on the simulated fleet is a one-line usage error."""
    assert main(["evaluate", "--train-count", "10", "--offline"]) == 2
    assert "--train-count splits a --file" in capsys.readouterr().err


def test_faults_are_runs_of_one_vehicle_and_kind() -> None:
    """Consecutive labelled rows of a vehicle with one kind are one fault, whatever interleaves."""
    vehicles = ["a", "b", "a", "b", "a", "a", "a"]
    labels = [1, 1, 1, 0, 1, 0, 1]
    kinds = ["stuck", "spike", "stuck", None, "noise", None, None]
    assert fault_runs(vehicles, labels, kinds) == [1, 2, 1, None, 3, None, 4]


def test_training_goes_through_ingest_with_the_chosen_params(stub_api: StubApi) -> None:
    """The training part is posted to /ingest, activated, with detector and false_alarm_rate."""
    stub_api.answers[("POST", "/ingest")] = (201, {"model_version": "20250301120000"})
    args = build_parser().parse_args(
        ["evaluate", "--file", "x.csv", "--train-count", "2", "--detector", "context",
         "--false-alarm-rate", "0.002", "-q"]
    )  # fmt: skip
    context = build_context(
        api=stub_api.url, api_key="stub-key", bootstrap=None, connect_timeout=1, verbose=False
    )
    record = {"vehicle_id": "V1", "timestamp": "2025-03-01T12:00:00Z", "feature_vector": [1.0]}
    version = train_through_api(args, context, [Item(record, 0, None)], ["speed"])
    assert version == "20250301120000"
    (request,) = stub_api.requests
    assert request.query == "activate=true"
    assert request.body["params"] == {"detector": "context", "false_alarm_rate": 0.002}
    assert request.body["feature_names"] == ["speed"] and request.body["records"] == [record]
