"""``vehicle-anomaly shadow`` and ``models list|shadow|unshadow``, against a stub api."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from cli.main import main
from cli.shadow import render
from tests.unit.cli.conftest import StubApi

CANDIDATE = "20240116090000"
ACTIVE = "20240115100000"
REPORT: dict[str, Any] = {
    "candidate": CANDIDATE,
    "active": ACTIVE,
    "shadowing": True,
    "records": 48210,
    "active_anomalies": 1012,
    "candidate_anomalies": 964,
    "active_anomaly_rate": 0.020992,
    "candidate_anomaly_rate": 0.019996,
    "flips_to_anomaly": 61,
    "flips_to_normal": 109,
    "agreement": 0.996474,
    "rank_correlation": 0.981532,
    "rank_correlation_sample": 10000,
    "workers": 1,
    "stale": False,
    "observed_at": "2024-01-16T09:30:00Z",
}
EMPTY: dict[str, Any] = {
    **REPORT,
    "records": 0,
    "active_anomalies": 0,
    "candidate_anomalies": 0,
    "active_anomaly_rate": None,
    "candidate_anomaly_rate": None,
    "flips_to_anomaly": 0,
    "flips_to_normal": 0,
    "agreement": None,
    "rank_correlation": None,
    "rank_correlation_sample": 0,
    "workers": 0,
    "observed_at": None,
}


def model(version: str, *, active: bool = False, candidate: bool = False) -> dict[str, Any]:
    return {
        "version": version,
        "created_at": f"{version[:4]}-{version[4:6]}-{version[6:8]}T00:00:00Z",
        "n_features": 8,
        "record_count": 10000,
        "params": {"n_estimators": 200},
        "sha256": "0" * 64,
        "active": active,
        "candidate": candidate,
    }


LISTING = {
    "active": ACTIVE,
    "candidate": CANDIDATE,
    "models": [model(CANDIDATE, candidate=True), model(ACTIVE, active=True)],
}


def row(text: str, label: str) -> list[str]:
    """The cells of the line that starts with ``label`` (split on runs of spaces)."""
    (line,) = [line for line in text.splitlines() if line.startswith(label)]
    return line[len(label) :].split()


# --- the table ---------------------------------------------------------------------------------


def test_report_table() -> None:
    """The report is a table, active then candidate, its formatted figures lined up."""
    text = render(REPORT)
    lines = text.splitlines()
    assert lines[0] == f"candidate {CANDIDATE} (scored in shadow now)"
    assert lines[1] == f"compared with {ACTIVE}"
    assert row(text, "version") == [ACTIVE, CANDIDATE]
    assert row(text, "anomalies") == ["1,012", "964"]
    assert row(text, "anomaly rate") == ["2.099%", "2.000%"]
    assert row(text, "records compared")[0] == "48,210"
    assert row(text, "flips to anomaly")[:4] == ["61", "normal", "for", "the"]
    assert row(text, "flips to normal")[:4] == ["109", "anomalous", "for", "the"]
    assert row(text, "agreement")[0] == "99.647%"
    correlation = row(text, "rank correlation")
    assert correlation[0] == "0.9815" and "10,000" in correlation
    assert row(text, "workers")[0] == "1"
    assert row(text, "stale")[0] == "no"
    assert row(text, "observed at") == ["2024-01-16T09:30:00Z"]
    # the two models' columns line up under their headers
    header = next(line for line in lines if "ACTIVE" in line)
    rate = next(line for line in lines if line.startswith("anomaly rate"))
    assert header.index("CANDIDATE") + len("CANDIDATE") == len(rate)


def test_no_records_compared_yet() -> None:
    """An empty report says so instead of a table, and asks if the workers run when stale."""
    text = render(EMPTY)
    assert "no records compared yet" in text
    assert "ACTIVE" not in text and "agreement" not in text
    assert "are the workers running?" in render({**EMPTY, "stale": True})


def test_stale_and_not_shadowing() -> None:
    """A candidate no longer shadowed says its figures are old; stale shows yes, agreement -."""
    text = render({**REPORT, "stale": True, "shadowing": False, "agreement": None})
    assert text.splitlines()[0].endswith(
        "(not scored in shadow now: the figures are from when it was)"
    )
    assert row(text, "stale")[:2] == ["yes", "no"]  # "yes  no worker wrote recently..."
    assert row(text, "agreement")[0] == "-"


def test_nothing_to_compare_with() -> None:
    """Without an active model the report says so and how to shadow a version."""
    text = render({**EMPTY, "active": None, "shadowing": False})
    assert "there is no active model to compare with" in text
    assert "models shadow VERSION" in text.splitlines()[0]


# --- the command ---------------------------------------------------------------------------------


def shadow_cli(
    stub: StubApi, argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 0
) -> tuple[str, str]:
    status = main(["shadow", *argv, *stub.argv()])
    out, err = capsys.readouterr()
    assert status == code, (status, out, err)
    return out, err


def test_default_version_is_the_registrys_candidate(
    stub_api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no version, shadow asks /models for the candidate and prints that candidate's report."""
    stub_api.answers[("GET", "/models")] = (200, LISTING)
    stub_api.answers[("GET", f"/models/{CANDIDATE}/shadow")] = (200, REPORT)
    out, err = shadow_cli(stub_api, [], capsys)
    assert stub_api.calls() == [("GET", "/models"), ("GET", f"/models/{CANDIDATE}/shadow")]
    assert out == render(REPORT) + "\n" and err == ""


def test_explicit_version_against_and_json(
    stub_api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """An explicit version and --against send against= and --json prints the report as received."""
    stub_api.answers[("GET", f"/models/{CANDIDATE}/shadow")] = (200, REPORT)
    out, _ = shadow_cli(stub_api, [CANDIDATE, "--against", ACTIVE, "--json"], capsys)
    (request,) = stub_api.requests
    assert request.query == f"against={ACTIVE}"
    assert json.loads(out) == REPORT


def test_no_candidate_is_a_clear_one_line_error(
    stub_api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a shadow candidate, shadow is one line saying how to train one, status 1."""
    stub_api.answers[("GET", "/models")] = (200, {**LISTING, "candidate": None})
    _, err = shadow_cli(stub_api, [], capsys, code=1)
    assert err.count("\n") == 1
    assert err.startswith("vehicle-anomaly: no shadow candidate: train one with")


def test_unknown_version(stub_api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    """The api's 404 for an unknown version is one line quoting its detail, status 1."""
    stub_api.answers[("GET", "/models/19990101000000/shadow")] = (
        404,
        {"title": "Not Found", "detail": "model version '19990101000000' not found"},
    )
    _, err = shadow_cli(stub_api, ["19990101000000"], capsys, code=1)
    assert err == (
        "vehicle-anomaly: the api refused the request (404): "
        "model version '19990101000000' not found\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["../x"], "'../x' is not a model version name"),
        ([CANDIDATE, "--against", "a b"], "'a b' is not a model version name"),
        (["--yes"], "--yes goes with --promote"),
        (["--promote"], "--promote asks for a confirmation on a terminal; elsewhere add --yes"),
    ],
)
def test_usage_errors_exit_2_before_any_request(
    argv: list[str],
    message: str,
    stub_api: StubApi,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad version, --yes alone or --promote off a terminal exits 2 before any request."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    stub_api.answers[("GET", "/models")] = (200, LISTING)
    _, err = shadow_cli(stub_api, argv, capsys, code=2)
    assert err.startswith(f"vehicle-anomaly: {message}") and err.count("\n") == 1
    assert stub_api.requests == []


def test_promote_with_yes(stub_api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    """--promote --yes prints the report, activates the candidate, names the one it replaced."""
    stub_api.answers[("GET", f"/models/{CANDIDATE}/shadow")] = (200, REPORT)
    stub_api.answers[("POST", f"/models/{CANDIDATE}/activate")] = (
        200,
        model(CANDIDATE, active=True),
    )
    out, _ = shadow_cli(stub_api, [CANDIDATE, "--promote", "--yes"], capsys)
    assert stub_api.calls()[-1] == ("POST", f"/models/{CANDIDATE}/activate")
    assert out.startswith(render(REPORT))
    assert out.rstrip().endswith(f"model {CANDIDATE} is now active (replacing {ACTIVE})")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("answer", "promoted"), [("y\n", True), ("yes\n", True), ("\n", False), ("", False)]
)
def test_promote_asks_on_a_terminal(
    answer: str,
    promoted: bool,
    stub_api: StubApi,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a terminal --promote asks y/N and activates only on y or yes, else exits 1."""
    monkeypatch.setattr("sys.stdin", Terminal(answer))
    stub_api.answers[("GET", f"/models/{CANDIDATE}/shadow")] = (200, REPORT)
    stub_api.answers[("POST", f"/models/{CANDIDATE}/activate")] = (
        200,
        model(CANDIDATE, active=True),
    )
    _, err = shadow_cli(stub_api, [CANDIDATE, "--promote"], capsys, code=0 if promoted else 1)
    assert f"promote {CANDIDATE} to the active model (replacing {ACTIVE})? [y/N]" in err
    activated = ("POST", f"/models/{CANDIDATE}/activate") in stub_api.calls()
    assert activated is promoted
    if not promoted:
        assert err.rstrip().endswith(
            f"vehicle-anomaly: not promoted: {CANDIDATE} stays a candidate"
        )


def test_promote_json_prints_the_report_then_the_answer(
    stub_api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """--promote --yes --json prints the report, then the activation answer, as JSON lines."""
    stub_api.answers[("GET", f"/models/{CANDIDATE}/shadow")] = (200, REPORT)
    stub_api.answers[("POST", f"/models/{CANDIDATE}/activate")] = (
        200,
        model(CANDIDATE, active=True),
    )
    out, _ = shadow_cli(stub_api, [CANDIDATE, "--promote", "--yes", "--json"], capsys)
    report, answer = (json.loads(line) for line in out.splitlines())
    assert report == REPORT and answer["active"] is True


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """shadow --help exits 0 and shows examples of --promote and --against."""
    with pytest.raises(SystemExit) as exited:
        main(["shadow", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--promote" in out and "--against" in out


# --- models list / shadow / unshadow -------------------------------------------------------------


def test_models_list_marks_the_candidate(
    stub_api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """models list has a ROLE column: candidate, and a starred active model."""
    stub_api.answers[("GET", "/models")] = (200, LISTING)
    assert main(["models", "list", *stub_api.argv()]) == 0
    header, candidate, active = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["VERSION", "ROLE", "CREATED"]
    assert candidate.split()[:2] == [CANDIDATE, "candidate"]
    assert active.startswith("*") and active.split()[:3] == ["*", ACTIVE, "active"]
    assert header.index("ROLE") == candidate.index("candidate") == active.index("active")


def test_models_list_of_an_older_api_without_candidates(
    stub_api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """models list still works against an api whose listing has no candidate fields."""
    entry = model(ACTIVE, active=True)
    del entry["candidate"]
    older = {"active": ACTIVE, "models": [entry]}
    stub_api.answers[("GET", "/models")] = (200, older)
    assert main(["models", "list", *stub_api.argv()]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["*", ACTIVE, "active"]


def test_models_shadow_and_unshadow(stub_api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    """models shadow POSTs and unshadow DELETEs the version's shadow route, each in one line."""
    stub_api.answers[("POST", f"/models/{CANDIDATE}/shadow")] = (200, model(CANDIDATE))
    stub_api.answers[("DELETE", f"/models/{CANDIDATE}/shadow")] = (204, None)
    assert main(["models", "shadow", CANDIDATE, *stub_api.argv()]) == 0
    assert capsys.readouterr().out.startswith(f"model {CANDIDATE} is now the shadow candidate")
    assert main(["models", "unshadow", CANDIDATE, *stub_api.argv()]) == 0
    assert capsys.readouterr().out == f"model {CANDIDATE} is no longer scored in shadow\n"
    assert stub_api.calls() == [
        ("POST", f"/models/{CANDIDATE}/shadow"),
        ("DELETE", f"/models/{CANDIDATE}/shadow"),
    ]


def test_models_unshadow_of_a_version_that_is_not_the_candidate(
    stub_api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """Unshadowing a version that is not the candidate prints the api's 409 detail, status 1."""
    stub_api.answers[("DELETE", f"/models/{ACTIVE}/shadow")] = (
        409,
        {"title": "Conflict", "detail": f"model version {ACTIVE!r} is not the shadow candidate"},
    )
    assert main(["models", "unshadow", ACTIVE, *stub_api.argv()]) == 1
    assert capsys.readouterr().err == (
        f"vehicle-anomaly: the api refused the request (409): model version '{ACTIVE}' is not "
        "the shadow candidate\n"
    )


def test_models_needs_an_action_naming_the_new_ones(capsys: pytest.CaptureFixture[str]) -> None:
    """models without an action exits 2 and the usage names shadow VERSION and unshadow VERSION."""
    with pytest.raises(SystemExit) as exited:
        main(["models"])
    assert exited.value.code == 2
    assert "shadow VERSION or unshadow VERSION" in capsys.readouterr().err
