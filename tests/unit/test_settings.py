"""Settings: defaults of the contract, parsing, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigurationError
from shared.kafka import broker_options, client_options
from shared.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings read only what each test sets (no .env file, no inherited variables)."""
    monkeypatch.chdir(tmp_path)
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)


def test_contract_defaults() -> None:
    """Every default is the one the contract's table gives."""
    s = load_settings()
    assert s.kafka_bootstrap_servers == "localhost:9092"
    assert s.kafka_security_protocol.value == "PLAINTEXT"
    assert s.kafka_sasl_mechanism is None
    assert (s.telemetry_topic, s.anomaly_topic, s.dlq_topic) == (
        "telemetry.raw",
        "telemetry.anomalies",
        "telemetry.dlq",
    )
    assert s.consumer_group == "anomaly-scorer"
    assert s.publish_all_verdicts is False
    assert s.model_dir == Path("./var/models")
    assert s.model_poll_seconds == 5
    assert s.model_signing_key is None
    assert s.api_keys == ()
    assert s.auth_disabled is False
    assert (s.api_port, s.consumer_port) == (8000, 8001)
    assert s.otel_exporter_otlp_endpoint is None
    assert s.log_format == "json"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables are read from the environment, lists as comma-separated values."""
    monkeypatch.setenv("API_KEYS", " k1, k2 ,,")
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example,https://b.example")
    monkeypatch.setenv("PUBLISH_ALL_VERDICTS", "true")
    monkeypatch.setenv("MODEL_SIGNING_KEY", "s3cret")
    monkeypatch.setenv("IFOREST_MAX_SAMPLES", "128")
    s = load_settings()
    assert [k.get_secret_value() for k in s.api_keys] == ["k1", "k2"]
    assert s.cors_origins == ("https://a.example", "https://b.example")
    assert s.publish_all_verdicts is True
    assert s.signing_key == b"s3cret"
    assert s.iforest_max_samples == 128
    assert "s3cret" not in repr(s) and "k1" not in repr(s)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    """A .env file in the working directory is read (the environment still wins)."""
    (tmp_path / ".env").write_text("CONSUMER_GROUP=from-dotenv\n")
    assert load_settings().consumer_group == "from-dotenv"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KAFKA_SECURITY_PROTOCOL", "TLS", "KAFKA_SECURITY_PROTOCOL"),
        ("KAFKA_SASL_MECHANISM", "MD5", "KAFKA_SASL_MECHANISM"),
        ("API_PORT", "eighty", "API_PORT"),
        ("CONSUMER_PORT", "70000", "CONSUMER_PORT"),
        ("MODEL_POLL_SECONDS", "0", "MODEL_POLL_SECONDS"),
        ("PUBLISH_ALL_VERDICTS", "maybe", "PUBLISH_ALL_VERDICTS"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("BATCH_MAX_RECORDS", "0", "BATCH_MAX_RECORDS"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """A bad value raises ConfigurationError whose message names the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        load_settings()


def test_sasl_needs_a_mechanism_and_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """SASL without a mechanism, or PLAIN without credentials, is refused by name."""
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_MECHANISM must be set"):
        load_settings()
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    with pytest.raises(ConfigurationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        load_settings()


def test_msk_iam_needs_sasl_ssl_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """MSK IAM requires SASL_SSL, and a region to sign tokens."""
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "AWS_MSK_IAM")
    with pytest.raises(ConfigurationError, match="needs KAFKA_SECURITY_PROTOCOL=SASL_SSL"):
        load_settings()
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        client_options(load_settings())


def test_settings_are_frozen() -> None:
    """Settings cannot be changed after start."""
    s = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        s.consumer_group = "other"  # type: ignore[misc]  # the refused assignment is the test


def test_client_options_per_protocol() -> None:
    """Each security protocol gives the aiokafka options it needs, and no more."""
    plain = client_options(Settings())
    assert plain["security_protocol"] == "PLAINTEXT" and "ssl_context" not in plain
    tls = client_options(Settings(kafka_security_protocol="SSL"))
    assert tls["ssl_context"] is not None and "sasl_mechanism" not in tls
    scram = client_options(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert (
        scram["sasl_mechanism"],
        scram["sasl_plain_username"],
        scram["sasl_plain_password"],
    ) == ("SCRAM-SHA-512", "u", "p")
    iam = client_options(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="AWS_MSK_IAM",
            aws_region="eu-west-1",
        )
    )
    assert iam["sasl_mechanism"] == "OAUTHBEARER"
    assert iam["sasl_oauth_token_provider"].region == "eu-west-1"


def test_broker_options_build_faststream_security() -> None:
    """FastStream gets a security object matching the protocol, with the same credentials."""
    from faststream.security import SASLOAuthBearer, SASLScram256

    assert broker_options(Settings())["security"] is None
    scram = broker_options(
        Settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_sasl_username="u",
            kafka_sasl_password="p",
        )
    )
    assert isinstance(scram["security"], SASLScram256) and scram["security"].use_ssl is False
    iam = broker_options(
        Settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="AWS_MSK_IAM",
            aws_region="us-east-1",
        )
    )
    assert isinstance(iam["security"], SASLOAuthBearer) and iam["security"].use_ssl is True
    assert "sasl_oauth_token_provider" in iam


def test_worker_variables_keep_their_consumer_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's CONSUMER_* variables are read, with their defaults and bounds, by name."""
    s = load_settings()
    assert s.consumer_graceful_timeout_seconds == 15.0
    assert (s.consumer_publisher, s.consumer_linger_ms) == ("aiokafka", None)
    assert s.consumer_background_commit is True and s.consumer_telemetry is True
    assert s.consumer_session_timeout_ms == 10_000
    monkeypatch.setenv("CONSUMER_GRACEFUL_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("CONSUMER_TELEMETRY", "false")
    s = load_settings()
    assert s.consumer_graceful_timeout_seconds == 0.5 and s.consumer_telemetry is False
    monkeypatch.setenv("CONSUMER_SESSION_TIMEOUT_MS", "999")
    with pytest.raises(ConfigurationError, match="CONSUMER_SESSION_TIMEOUT_MS"):
        load_settings()
