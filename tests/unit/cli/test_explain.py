"""``vehicle-anomaly explain``: the bar chart, the input it reads, its options and its errors."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli import explain, kafkaio
from cli.config import Context, KeyChoice
from cli.errors import CliError
from cli.explain import (
    bar,
    check_verdict,
    decode_json,
    direction_text,
    latest_from_topic,
    number,
    read_verdicts,
    render,
    rendered_text,
)
from cli.main import main
from tests.unit.cli.conftest import KEY, StubApi

VERDICT: dict[str, Any] = {
    "vehicle_id": "VH-002",
    "timestamp": "2024-01-15T10:05:00Z",
    "anomaly_score": -0.15,
    "is_anomaly": True,
    "model_version": "20240115100000",
    "scored_at": "2024-01-15T10:05:00.120Z",
    "source": {"topic": "telemetry.raw", "partition": 3, "offset": 1842},
    "attribution": [
        {
            "feature": 4,
            "name": "oil_pressure",
            "share": 0.71,
            "value": 612.0,
            "direction": "above",
            "typical": [301.5, 402.3],
        },
        {
            "feature": 1,
            "share": 0.12,
            "value": 2100.0,
            "direction": "within",
            "typical": [900.0, 2900.0],
        },
        {"feature": 6, "share": 0.05, "value": None, "direction": "below", "typical": None},
    ],
}
NORMAL: dict[str, Any] = {
    "vehicle_id": "VH-003",
    "timestamp": "2024-01-15T10:05:10Z",
    "anomaly_score": 0.0312,
    "is_anomaly": False,
    "model_version": "20240115100000",
    "scored_at": "2024-01-15T10:05:10.050Z",
}


def bars_of(text: str) -> list[str]:
    """The bar cells (block characters) of each feature line."""
    return [
        "".join(c for c in line if c in "█▏▎▍▌▋▊▉#")
        for line in text.splitlines()[1:]
        if not line.startswith("  the other features")
    ]


# --- the bars ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("share", "width", "expected"),
    [
        (0.5, 20, "█" * 10),
        (1.0, 10, "█" * 10),
        (0.71, 30, "█" * 21 + "▎"),  # 21.3 cells: 21 whole, 0.3 is two eighths
        (0.12, 30, "███▋"),  # 3.6 cells
        (0.999, 10, "█" * 10),  # 9.99 cells round up to a whole one
        (0.001, 30, "▏"),  # a share above 0 always shows
        (0.0, 10, ""),
    ],
)
def test_bar_length_is_proportional_to_the_share(share: float, width: int, expected: str) -> None:
    """A bar fills share x width cells in eighths, padded to the width; any share above 0 shows."""
    drawn = bar(share, width)
    assert drawn == expected.ljust(width)
    assert len(drawn) == width


def test_ascii_bars_round_to_whole_cells() -> None:
    """ASCII bars use whole # cells, keep at least one for a small share, and pad to the width."""
    assert bar(0.5, 10, ascii_only=True) == "#####     "
    assert bar(0.04, 10, ascii_only=True) == "#         "
    assert bar(0.0, 4, ascii_only=True) == "    "


def test_bars_in_a_chart_keep_the_shares_ratio() -> None:
    """The longest bar is the largest share; lengths follow the shares at a fixed scale."""
    text = rendered_text(VERDICT, width=100, ascii_only=True)
    assert [len(b) for b in bars_of(text)] == [71, 12, 5]


# --- labels, values, directions -----------------------------------------------------------------


def test_anomalous_verdict_chart() -> None:
    """Headline, then one line per feature: label, bar, percent, value, direction and range."""
    lines = rendered_text(VERDICT).splitlines()
    assert lines[0] == (
        "VH-002 at 2024-01-15T10:05:00Z: anomalous, score -0.1500 "
        "(model 20240115100000, telemetry.raw[3]@1842)"
    )
    oil, rpm, fuel, rest = lines[1:]
    assert oil.split()[0] == "oil_pressure" and rpm.split()[:2] == ["feature", "1"]
    assert "71.0%" in oil and "12.0%" in rpm and "5.0%" in fuel
    assert oil.endswith("612    ↑ above typical 301.5 to 402.3")
    assert rpm.endswith("2,100    within typical 900 to 2,900")
    assert fuel.endswith("?      ↓ below the typical range")  # no value, no range kept
    assert rest == "  the other features: 12.0%"
    # the columns line up: bars start, and percentages end, at the same place
    assert len({line.index("█") for line in (oil, rpm)}) == 1
    assert len({line.index("%") for line in (oil, rpm, fuel)}) == 1


def test_feature_names_fall_back_to_the_index() -> None:
    """A feature without a name is labelled by its index, "feature 4"."""
    verdict = {**VERDICT, "attribution": [{**VERDICT["attribution"][0], "name": None}]}
    line = rendered_text(verdict).splitlines()[1]
    assert line.startswith("  feature 4  ")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"direction": "above", "typical": [1.0, 2.0]}, "↑ above typical 1 to 2"),
        ({"direction": "below", "typical": [-5.5, 3.25]}, "↓ below typical -5.5 to 3.25"),
        ({"direction": "within", "typical": [0.1, 0.9]}, "  within typical 0.1 to 0.9"),
        ({"direction": "within", "typical": None}, "  (the model keeps no typical range)"),
        ({"typical": None}, "  (the model keeps no typical range)"),
        ({"direction": "above"}, "↑ above the typical range"),
    ],
)
def test_direction_text(entry: dict[str, Any], expected: str) -> None:
    """Each direction gets its arrow and the typical range, or says the model keeps none."""
    assert direction_text(entry) == expected


def test_ascii_arrows() -> None:
    """With ascii_only the arrows are ^ for above and v for below."""
    assert direction_text({"direction": "above", "typical": [1, 2]}, ascii_only=True).startswith(
        "^ above"
    )
    assert direction_text({"direction": "below"}, ascii_only=True).startswith("v below")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (612.0, "612"),
        (2100.0, "2,100"),
        (301.5, "301.5"),
        (12.3456, "12.35"),
        (0.9, "0.9"),
        (0.0, "0"),
        (-0.0001, "-0.0001"),
        (-3.5, "-3.5"),
        (None, "?"),
        (123456789.0, "1.23e+08"),
    ],
)
def test_numbers_are_compact(value: float | None, text: str) -> None:
    """Numbers print short: thousands grouped, 4 significant digits, ? for none, e for huge."""
    assert number(value) == text


def test_a_normal_verdict_says_so_in_one_line() -> None:
    """A normal verdict renders as one line saying it is not anomalous and has no attribution."""
    text = rendered_text(NORMAL)
    assert text == (
        "VH-003 at 2024-01-15T10:05:10Z: not anomalous, score +0.0312 (model 20240115100000); "
        "a normal verdict has no attribution"
    )


def test_an_anomalous_verdict_without_attribution() -> None:
    """Scored before verdicts were explained (or ATTRIBUTION_TOP_K=0): said, not drawn."""
    old = {k: v for k, v in VERDICT.items() if k != "attribution"}
    lines = rendered_text(old).splitlines()
    assert len(lines) == 2 and "carries no attribution" in lines[1]
    empty = rendered_text({**VERDICT, "attribution": []}).splitlines()
    assert "no feature stood out" in empty[1]


def test_styles_colour_the_bars_by_direction() -> None:
    """On a terminal the bars are coloured: red above, blue below (plain text when piped)."""
    line = render(VERDICT)[1]
    styles = {style for _text, style in line}
    assert "red" in styles
    assert render(VERDICT)[3][1][1] == "blue"


# --- reading JSON --------------------------------------------------------------------------------


def test_decode_json_lines_objects_and_lists() -> None:
    """JSON lines, indented objects, lists and values sharing a line decode, each with its line."""
    text = '{"a": 1}\n\n{"b": 2}\n{\n  "c": 3\n}\n[{"d": 4}, {"e": 5}]\n{"f": 6} {"g": 7}\n'
    found = list(decode_json(io.StringIO(text), "x"))
    assert found == [
        ("line 1", {"a": 1}),
        ("line 3", {"b": 2}),
        ("line 4", {"c": 3}),
        ("line 7", [{"d": 4}, {"e": 5}]),
        ("line 8", {"f": 6}),
        ("line 8", {"g": 7}),
    ]


def test_json_lines_are_yielded_as_they_arrive() -> None:
    """A verdict is explained before the next line is read (tail --json | explain)."""
    read: list[str] = []

    def lines() -> Any:
        for line in ('{"a": 1}\n', '{"b": 2}\n'):
            read.append(line)
            yield line

    decoded = decode_json(lines(), "x")
    assert next(decoded) == ("line 1", {"a": 1}) and len(read) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("TIME  VEHICLE  SCORE\n", "x line 1: not JSON (Expecting value); explain reads"),
        ('{"a": 1}\n{"b": \n', "x line 2: not JSON (the value is cut short at the end)"),
        ('{"a": 1}\n{\n  "b": 2,\n  "c": ]\n}\n', "x line 4: not JSON (Expecting value)"),
        ('{"a": 1,\n', "x line 1: not JSON (the value is cut short"),
        ('{"a": 1}\n\n[\n {"b": 2},\n {"c": x}\n]\n', "x line 5: not JSON (Expecting value)"),
    ],
)
def test_decode_json_errors_name_the_line(text: str, message: str) -> None:
    """Text that is not JSON, or a value cut short, is a CliError naming the line it starts on."""
    with pytest.raises(CliError) as caught:
        list(decode_json(io.StringIO(text), "x"))
    assert caught.value.message.startswith(message), caught.value.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1], "not a verdict (a JSON object is expected)"),
        ({"vehicle_id": "V"}, "not a verdict (no is_anomaly field)"),
        (
            {"vehicle_id": "V", "timestamp": "t", "feature_vector": [1.0]},
            "a telemetry record, not a verdict; score and explain it with "
            "`vehicle-anomaly explain --record FILE`",
        ),
        ({"is_anomaly": "yes"}, "is_anomaly is 'yes', not true or false"),
        ({"is_anomaly": True, "attribution": {}}, "attribution must be a list"),
        (
            {"is_anomaly": True, "attribution": [{"feature": 1, "share": 1.5}]},
            "attribution entry 1: share is 1.5, not a number from 0 to 1",
        ),
        (
            {"is_anomaly": True, "attribution": [{"feature": "x", "share": 0.5}]},
            "attribution entry 1: feature is 'x', not a feature index",
        ),
        (
            {"is_anomaly": True, "attribution": [{"feature": 1, "share": 0.5, "direction": "up"}]},
            "direction is 'up', not above, below or within",
        ),
        (
            {"is_anomaly": True, "attribution": [{"feature": 1, "share": 0.5, "typical": [1]}]},
            "typical is [1], not [low, high]",
        ),
        (
            {"is_anomaly": True, "attribution": [{"feature": 1, "share": 0.5, "value": "x"}]},
            "value is 'x', not a number",
        ),
    ],
)
def test_check_verdict_refuses_what_is_not_a_verdict(value: Any, message: str) -> None:
    """A record, a non-object or a bad attribution entry is refused, naming the field."""
    with pytest.raises(CliError) as caught:
        check_verdict(value, "f line 1")
    assert caught.value.message.startswith("f line 1: ") and message in caught.value.message


def test_read_verdicts_skips_unreadable_markers_and_flattens_lists() -> None:
    """read_verdicts drops tail's unreadable markers and yields a list's verdicts one by one."""
    text = (
        json.dumps({"unreadable": True, "partition": 0, "offset": 3})
        + "\n"
        + json.dumps([VERDICT, NORMAL])
        + "\n"
    )
    found = list(read_verdicts(io.StringIO(text), "x"))
    assert [v["vehicle_id"] for v in found] == ["VH-002", "VH-003"]


# --- the command: files and stdin ------------------------------------------------------------


def explain_cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 0
) -> tuple[str, str]:
    status = main(["explain", *argv])
    out, err = capsys.readouterr()
    assert status == code, (status, out, err)
    return out, err


def test_a_file_of_json_lines(clean_cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A JSON-lines file prints a block per verdict: a chart for an anomaly, a line if normal."""
    path = clean_cli_env / "verdicts.jsonl"
    path.write_text(json.dumps(VERDICT) + "\n" + json.dumps(NORMAL) + "\n")
    out, err = explain_cli([str(path)], capsys)
    assert err == ""
    blocks = out.split("\n\n")
    assert len(blocks) == 2
    assert blocks[0].splitlines()[1].split()[0] == "oil_pressure"
    assert "not anomalous" in blocks[1] and "no attribution" in blocks[1]


def test_stdin_with_a_dash_or_by_default(
    clean_cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verdicts come from stdin with - or, when stdin is not a terminal, with no argument."""
    pretty = json.dumps(VERDICT, indent=2)
    monkeypatch.setattr("sys.stdin", io.StringIO(pretty))
    out, _ = explain_cli(["-"], capsys)
    assert out.splitlines()[1].split()[0] == "oil_pressure"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(VERDICT) + "\n"))
    out_default, _ = explain_cli([], capsys)  # stdin is not a terminal: it is read
    assert out_default == out


def test_json_prints_the_attribution_as_received(
    clean_cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints each verdict's attribution unchanged, null for a normal verdict."""
    path = clean_cli_env / "verdicts.jsonl"
    path.write_text(json.dumps(VERDICT) + "\n" + json.dumps(NORMAL) + "\n")
    out, _ = explain_cli([str(path), "--json"], capsys)
    first, second = out.splitlines()
    assert json.loads(first) == VERDICT["attribution"]
    assert json.loads(second) is None


def test_vehicle_filter(clean_cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--vehicle keeps that vehicle's verdicts; finding none is a one-line error, status 1."""
    path = clean_cli_env / "verdicts.jsonl"
    path.write_text(json.dumps(VERDICT) + "\n" + json.dumps(NORMAL) + "\n")
    out, _ = explain_cli([str(path), "--vehicle", "VH-003"], capsys)
    assert out.startswith("VH-003") and "VH-002" not in out
    _, err = explain_cli([str(path), "--vehicle", "VH-999"], capsys, code=1)
    assert err == f"vehicle-anomaly: {path}: no verdict of vehicle VH-999\n"


def test_width_sets_the_scale(clean_cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--width sets the number of cells a share of 1 fills."""
    path = clean_cli_env / "v.json"
    path.write_text(json.dumps(VERDICT))
    out, _ = explain_cli([str(path), "--width", "10"], capsys)
    assert bars_of(out)[0] == "███████▏"  # 7.1 cells


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found: "),
        ("", ": no verdict"),
        ("TIME  VEHICLE\n", "line 1: not JSON"),
        ('{"vehicle_id": "V", "timestamp": "t", "feature_vector": [1]}', "explain --record"),
        ('{"is_anomaly": true, "attribution": [{"feature": 0, "share": 7}]}', "share is 7"),
    ],
    ids=["missing", "empty", "table", "record", "bad-share"],
)
def test_invalid_input_is_a_one_line_error(
    content: str | None,
    message: str,
    clean_cli_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing, empty, tabular, record or malformed file is one stderr line, status 1."""
    path = clean_cli_env / "input.json"
    if content is not None:
        path.write_text(content)
    _, err = explain_cli([str(path)], capsys, code=1)
    assert err.count("\n") == 1 and err.startswith("vehicle-anomaly: ") and message in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a.json", "--record", "r.json"], "argument --record: not allowed with argument FILE"),
        (["--record", "r.json", "--from-topic"], "not allowed with argument --record"),
        (["--from-topic", "--last", "0"], "argument --last: must be at least 1"),
        (["--width", "x"], "argument --width"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], message: str, clean_cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Conflicting or invalid arguments are refused by the parser with one line and status 2."""
    with pytest.raises(SystemExit) as exited:
        main(["explain", *argv])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a.json", "--last", "3"], "--last goes with --from-topic"),
        (["a.json", "--topic", "t"], "--topic goes with --from-topic"),
        (["a.json", "--model", "20240101000000"], "--model goes with --record"),
        (["--record", "r.json", "--vehicle", "V"], "--vehicle does not go with --record"),
    ],
)
def test_options_that_do_not_fit_the_source_exit_2(
    argv: list[str], message: str, clean_cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An option that does not fit the source (--last without --from-topic...) exits 2."""
    _, err = explain_cli(argv, capsys, code=2)
    assert err == f"vehicle-anomaly: {message}\n" or message in err


def test_nothing_to_read_on_a_terminal(
    clean_cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no source and stdin a terminal, explain exits 2 listing the sources it can read."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    _, err = explain_cli([], capsys, code=2)
    assert "give the verdicts: a FILE (- for stdin), --record FILE or --from-topic" in err


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """explain --help exits 0 and shows examples of --from-topic and --record."""
    with pytest.raises(SystemExit) as exited:
        main(["explain", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--from-topic" in out and "--record" in out


# --- --record: scored through the api ------------------------------------------------------------

RECORD = {
    "vehicle_id": "VH-002",
    "timestamp": "2024-01-15T10:05:00Z",
    "feature_vector": [50.0, 2100.0, 90.0, 85.0, 612.0, 13.9, 12.0, 0.2],
}


def test_record_is_scored_through_the_api_and_explained(
    stub_api: StubApi, capsys: pytest.CaptureFixture[str]
) -> None:
    """--record POSTs the record to /score with the key and --model, then charts the verdict."""
    answer = {k: v for k, v in VERDICT.items() if k != "source"}
    stub_api.answers[("POST", "/score")] = (200, answer)
    path = Path("record.json")
    path.write_text(json.dumps(RECORD))
    out, _ = explain_cli(
        ["--record", str(path), "--model", "20240115100000", *stub_api.argv()], capsys
    )
    (request,) = stub_api.requests
    assert (request.method, request.path, request.query) == (
        "POST",
        "/score",
        "model_version=20240115100000",
    )
    assert request.body == RECORD and request.key == KEY
    lines = out.splitlines()
    assert lines[0].endswith("score -0.1500 (model 20240115100000)")
    assert lines[1].split()[0] == "oil_pressure"


def test_record_scored_normal(stub_api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    """--record scores each line of a JSON-lines file and prints one line per normal verdict."""
    stub_api.answers[("POST", "/score")] = (200, NORMAL)
    Path("r.jsonl").write_text(json.dumps(RECORD) + "\n" + json.dumps(RECORD) + "\n")
    out, _ = explain_cli(["--record", "r.jsonl", *stub_api.argv()], capsys)
    assert out.count("not anomalous") == 2 and len(stub_api.requests) == 2


def test_record_errors(stub_api: StubApi, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad record is refused before any request; the api's refusal is one line."""
    Path("bad.json").write_text('{"vehicle_id": "V", "feature_vector": [1]}')
    _, err = explain_cli(["--record", "bad.json", *stub_api.argv()], capsys, code=1)
    assert err == "vehicle-anomaly: bad.json line 1: timestamp is missing\n"
    Path("verdict.json").write_text(json.dumps(NORMAL))
    _, err = explain_cli(["--record", "verdict.json", *stub_api.argv()], capsys, code=1)
    assert "a verdict, not a telemetry record" in err
    assert stub_api.requests == []
    stub_api.answers[("POST", "/score")] = (
        404,
        {"title": "Not Found", "detail": "no model has been trained yet"},
    )
    Path("record.json").write_text(json.dumps(RECORD))
    _, err = explain_cli(["--record", "record.json", *stub_api.argv()], capsys, code=1)
    assert err == (
        "vehicle-anomaly: the api refused the request (404): no model has been trained yet\n"
    )


def test_record_against_an_unreachable_api(
    clean_cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--record against a closed port is a one-line error saying the api cannot be reached."""
    Path("record.json").write_text(json.dumps(RECORD))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        _, err = explain_cli(["--record", "record.json", "--api", url], capsys, code=1)
    assert err.startswith(f"vehicle-anomaly: cannot reach the api at {url}: connection refused")


# --- --from-topic -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes


class FakeConsumer:
    """Partitions as lists of (timestamp, value), starting at ``first`` offsets."""

    def __init__(self, topic: str, logs: dict[int, list[tuple[int, bytes]]], first: dict[int, int]):
        self.topic = topic
        self.logs = logs
        self.first = first
        self.positions: dict[Any, int] = {}
        self.paused: set[Any] = set()
        self.fetched = 0

    def assign(self, partitions: list[Any]) -> None:
        self.assigned = list(partitions)

    def assignment(self) -> set[Any]:
        return set(self.assigned)

    async def beginning_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return {tp: self.first.get(tp.partition, 0) for tp in partitions}

    async def end_offsets(self, partitions: list[Any]) -> dict[Any, int]:
        return {
            tp: self.first.get(tp.partition, 0) + len(self.logs[tp.partition]) for tp in partitions
        }

    def seek(self, tp: Any, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, *partitions: Any) -> None:
        self.paused.update(partitions)

    def resume(self, *partitions: Any) -> None:
        self.paused.difference_update(partitions)

    async def position(self, tp: Any) -> int:
        return self.positions[tp]

    async def getmany(self, *partitions: Any, timeout_ms: int = 0) -> dict[Any, list[Message]]:
        found = {}
        for tp in partitions:
            if tp in self.paused:
                continue
            base = self.first.get(tp.partition, 0)
            start = self.positions[tp]
            chunk = self.logs[tp.partition][start - base : start - base + 50]
            if chunk:
                found[tp] = [
                    Message(self.topic, tp.partition, start + i, ts, value)
                    for i, (ts, value) in enumerate(chunk)
                ]
                self.positions[tp] = start + len(chunk)
                self.fetched += len(chunk)
        return found


def topic_log(
    count: int, partitions: int = 3
) -> tuple[dict[int, list[tuple[int, bytes]]], list[dict[str, Any]]]:
    """Verdicts spread over partitions, time increasing; every 7th anomalous."""
    logs: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    every = []
    for i in range(count):
        partition = (i * 5 + i // 3) % partitions
        verdict = {
            **(VERDICT if i % 7 == 0 else NORMAL),
            "vehicle_id": f"VH-{i % 5:03d}",
            "timestamp": f"t{i:06d}",
        }
        logs[partition].append((1_000 + i, json.dumps(verdict).encode()))
        every.append(verdict)
    return logs, every


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> Any:
    holder: dict[str, FakeConsumer] = {}

    @contextlib.asynccontextmanager
    async def admin(context: Any) -> AsyncIterator[None]:
        yield None

    async def partitions_of(admin: Any, topics: list[str], context: Any) -> dict[str, list[int]]:
        return {topics[0]: sorted(holder["consumer"].logs)}

    @contextlib.asynccontextmanager
    async def consumer(context: Any, **extra: Any) -> AsyncIterator[FakeConsumer]:
        yield holder["consumer"]

    monkeypatch.setattr(kafkaio, "admin", admin)
    monkeypatch.setattr(kafkaio, "partitions_of", partitions_of)
    monkeypatch.setattr(kafkaio, "consumer", consumer)
    monkeypatch.setattr("aiokafka.TopicPartition", TP)
    return holder


CONTEXT = Context(
    api_url="http://127.0.0.1:1",
    key=KeyChoice(None, "none"),
    settings=None,
    connect_timeout=1,
    verbose=False,
)


def latest(**options: Any) -> tuple[list[dict[str, Any]], int]:
    settings = {"count": 1, "vehicle": None, "scan": 10_000, "timeout": 10.0, **options}
    return asyncio.run(latest_from_topic(CONTEXT, "anomalies", **settings))


@pytest.mark.parametrize(
    ("count", "vehicle"), [(1, None), (4, None), (3, "VH-002"), (40, None), (2, "VH-004")]
)
def test_latest_anomalous_verdicts_across_partitions(
    fake_kafka: Any, count: int, vehicle: str | None
) -> None:
    """The newest anomalous verdicts (of the vehicle), oldest first, as a full scan finds them."""
    logs, every = topic_log(5000)
    fake_kafka["consumer"] = FakeConsumer("anomalies", logs, {})
    found, read = latest(count=count, vehicle=vehicle)
    matching = [v for v in every if v["is_anomaly"] and vehicle in (None, v["vehicle_id"])]
    assert found == matching[-count:]
    assert read < 5000 and fake_kafka["consumer"].fetched == read  # not the whole topic


def test_latest_stops_at_the_scan_bound_and_the_first_offset(fake_kafka: Any) -> None:
    """Without a match the scan stops at --scan per partition, or at each first offset."""
    logs, _ = topic_log(3000)
    fake_kafka["consumer"] = FakeConsumer("anomalies", logs, {0: 500, 1: 0, 2: 7})
    found, read = latest(count=1, vehicle="VH-404", scan=300)
    assert found == [] and read == 900
    found, read = latest(count=1, vehicle="VH-404", scan=100_000)
    assert found == [] and read == 3000


def test_latest_prefers_the_busy_partition(fake_kafka: Any) -> None:
    """A quiet partition's old anomalies do not hide the newest ones of a busy one."""
    old = [(10 + i, json.dumps({**VERDICT, "timestamp": f"old{i}"}).encode()) for i in range(5)]
    new = [
        (5_000 + i, json.dumps({**VERDICT, "timestamp": f"new{i}"}).encode()) for i in range(900)
    ]
    fake_kafka["consumer"] = FakeConsumer("anomalies", {0: old, 1: new}, {})
    found, _ = latest(count=3)
    assert [v["timestamp"] for v in found] == ["new897", "new898", "new899"]


def test_from_topic_through_the_command(
    fake_kafka: Any, clean_cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--from-topic --last 2 --vehicle prints its two newest anomalies; none is a one-line error."""
    logs, every = topic_log(400)
    fake_kafka["consumer"] = FakeConsumer("anomalies", logs, {})
    out, _ = explain_cli(["--from-topic", "--last", "2", "--vehicle", "VH-000"], capsys)
    wanted = [v for v in every if v["is_anomaly"] and v["vehicle_id"] == "VH-000"][-2:]
    assert [line.split()[0] for line in out.splitlines() if " at " in line] == ["VH-000"] * 2
    assert all(v["timestamp"] in out for v in wanted)
    _, err = explain_cli(["--from-topic", "--vehicle", "VH-404"], capsys, code=1)
    assert err == (
        "vehicle-anomaly: no anomalous verdict of vehicle VH-404 among the latest 400 verdicts "
        "on 'telemetry.anomalies'\n"
    )


def test_from_topic_with_an_unreachable_broker(
    clean_cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--from-topic against a closed port is a one-line error saying Kafka cannot be reached."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        _, err = explain_cli(["--from-topic", "--bootstrap", f"127.0.0.1:{port}"], capsys, code=1)
    assert err == f"vehicle-anomaly: cannot reach Kafka at 127.0.0.1:{port}: connection refused\n"


def test_module_constants_agree() -> None:
    """The arrow tables and the list of directions name the same directions."""
    assert set(explain.ARROWS) == set(explain.ASCII_ARROWS) == set(explain.DIRECTIONS)
