"""The command line itself: parsing, one-line errors, key resolution, table rows (no services)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from cli import config
from cli.errors import CliError
from cli.kafkaio import probe
from cli.main import build_parser, main
from cli.tail import header, row


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "VEHICLE_ANOMALY_API_KEY",
        "VEHICLE_ANOMALY_API",
        "API_KEYS",
        "VEHICLE_ANOMALY_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["simulate", "--rate", "0"], "argument --rate: must be a positive number"),
        (["simulate", "--anomaly-rate", "1.5"], "argument --anomaly-rate"),
        (["simulate", "--count", "5", "--duration", "3"], "not allowed with argument"),
        (["simulate", "--kinds", "spike,wobble"], "choose among spike, drift, stuck"),
        (["simulate", "--start", "yesterday"], "is not an RFC 3339 time"),
        (["train"], "one of the arguments --file --simulated is required"),
        (["train", "--simulated", "10", "--contamination", "0.9"], "argument --contamination"),
        (["tail", "--limit", "0"], "argument --limit: must be at least 1"),
        (["evaluate", "--count", "x"], "argument --count"),
        (["models"], "models needs an action"),
        (["models", "activate"], "the following arguments are required: VERSION"),
        ([], "choose a command"),
    ],
)
def test_bad_arguments_are_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's errors come out as one line on stderr, with status 2."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("vehicle-anomaly")


def test_global_options_are_accepted_after_the_command() -> None:
    """--bootstrap and --api work before or after the command name."""
    parser = build_parser()
    before = parser.parse_args(["--bootstrap", "h:1", "tail"])
    after = parser.parse_args(["tail", "--bootstrap", "h:1", "--api", "http://x"])
    assert before.bootstrap == after.bootstrap == "h:1"
    assert after.api == "http://x" and before.api is None


def test_every_command_has_help_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    """--help of every command shows an examples section."""
    for command in (
        ["simulate"],
        ["train"],
        ["tail"],
        ["evaluate"],
        ["explain"],
        ["shadow"],
        ["models"],
    ):
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_key_order_flag_env_api_keys_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--api-key, then VEHICLE_ANOMALY_API_KEY, then API_KEYS, then var/dev-api-key."""
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "dev-api-key").write_text("from-file\n")
    monkeypatch.setattr(config, "CHECKOUT", tmp_path / "not-a-checkout")
    assert config.resolve_api_key(None, ()).key == "from-file"
    assert config.resolve_api_key(None, ("k1", "k2")).key == "k1"
    monkeypatch.setenv("VEHICLE_ANOMALY_API_KEY", "from-env")
    assert config.resolve_api_key(None, ("k1",)).key == "from-env"
    assert config.resolve_api_key("flag", ("k1",)).key == "flag"
    monkeypatch.delenv("VEHICLE_ANOMALY_API_KEY")
    monkeypatch.setenv("VEHICLE_ANOMALY_KEY_FILE", str(tmp_path / "missing"))
    assert config.resolve_api_key(None, ()).key is None


def test_context_reads_kafka_settings_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Topics come from the services' variables; --bootstrap wins over the environment."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("ANOMALY_TOPIC", "my.anomalies")
    context = config.build_context(
        api=None, api_key=None, bootstrap="flag:1", connect_timeout=2, verbose=False
    )
    assert context.bootstrap == "flag:1"
    assert context.settings.anomaly_topic == "my.anomalies"
    assert context.api_url == config.DEFAULT_API
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "NOPE")
    with pytest.raises(CliError, match="KAFKA_SECURITY_PROTOCOL"):
        config.build_context(
            api=None, api_key=None, bootstrap=None, connect_timeout=2, verbose=False
        )


def test_probe_reports_a_refused_broker_quickly() -> None:
    """An address nobody listens on is reported as 'cannot reach Kafka at ...: connection refused'."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(CliError) as caught:
            asyncio.run(probe(f"127.0.0.1:{port}", 2.0))
    assert caught.value.message == f"cannot reach Kafka at 127.0.0.1:{port}: connection refused"


def test_probe_needs_a_port() -> None:
    """A bootstrap address without a port is a usage error."""
    with pytest.raises(CliError, match="needs a port"):
        asyncio.run(probe("localhost", 1.0))


def test_tail_row_lines_up_with_the_header() -> None:
    """A verdict becomes one aligned line: time, vehicle, score, anomaly, model, source."""
    verdict = {
        "vehicle_id": "VH-002",
        "timestamp": "2024-01-15T10:05:00.000Z",
        "anomaly_score": -0.15,
        "is_anomaly": True,
        "model_version": "20240115100000",
        "scored_at": "2024-01-15T10:05:00.120Z",
        "source": {"topic": "telemetry.raw", "partition": 3, "offset": 1842},
    }
    line = row(verdict, 0, 7)
    assert line.split() == [
        "2024-01-15T10:05:00.000Z",
        "VH-002",
        "-0.1500",
        "yes",
        "20240115100000",
        "telemetry.raw[3]@1842",
    ]
    assert header().index("MODEL") == line.index("20240115100000")


def test_tail_alerts_row_lines_up_with_the_header() -> None:
    """An alert event becomes one aligned line: time, vehicle, event, records, grades, id."""
    from cli import tail_alerts
    from shared.alert_schema import ALERT_EXAMPLE

    line = tail_alerts.row({**ALERT_EXAMPLE, "event": "closed", "reason": "silent"})
    assert line.split()[:6] == ["2024-01-15T10:05:20Z", "VH-002", "silent", "3", "0.14", "-0.0820"]
    assert "coolant_temp 81%" in line
    assert tail_alerts.header().index("EPISODE") == line.index("telemetry.raw-3-1842")
    assert build_parser().parse_args(["tail", "--alerts"]).alerts is True
