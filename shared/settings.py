"""One frozen settings object, read from the environment (and an optional ``.env`` file).

Every variable of the contract is a field here; ``.env.example`` lists them all. A bad value
stops the service with a message that names the variable (see :func:`load_settings`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import ConfigurationError


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    AWS_MSK_IAM = "AWS_MSK_IAM"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


CsvList = Annotated[tuple[str, ...], NoDecode]
CsvSecrets = Annotated[tuple[SecretStr, ...], NoDecode]


class Settings(BaseSettings):
    """Every setting of both services. Field names are the environment variables, upper-cased."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    # Kafka
    kafka_bootstrap_servers: str = Field("localhost:9092", min_length=1)
    kafka_security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_client_id: str = "vehicle-anomaly"
    aws_region: str | None = None
    telemetry_topic: str = Field("telemetry.raw", min_length=1)
    anomaly_topic: str = Field("telemetry.anomalies", min_length=1)
    dlq_topic: str = Field("telemetry.dlq", min_length=1)
    consumer_group: str = Field("anomaly-scorer", min_length=1)
    publish_all_verdicts: bool = False
    batch_max_records: int = Field(500, ge=1, le=100_000)
    batch_timeout_ms: int = Field(50, ge=1, le=60_000)
    max_record_bytes: int = Field(65_536, ge=256)

    # Model registry
    model_dir: Path = Path("./var/models")
    model_poll_seconds: float = Field(5.0, gt=0, le=3600)
    model_signing_key: SecretStr | None = None
    model_retention: int = Field(20, ge=1)

    # Training defaults (a request may override them)
    iforest_n_estimators: int = Field(100, ge=1, le=5000)
    iforest_max_samples: int | float | Literal["auto"] = "auto"
    iforest_contamination: float | Literal["auto"] = "auto"
    iforest_random_state: int | None = None
    min_training_records: int = Field(1, ge=1)

    # Explained verdicts, drift watch, shadow models
    attribution_top_k: int = Field(3, ge=0, le=256)  # 0: verdicts carry no attribution
    drift_window_records: int = Field(10_000, ge=100)
    drift_min_records: int = Field(1_000, ge=1)
    drift_psi_threshold: float = Field(0.25, gt=0)
    shadow_sample_records: int = Field(10_000, ge=10, le=1_000_000)
    observations_interval_seconds: float = Field(10.0, gt=0, le=3600)
    observations_ttl_seconds: float = Field(120.0, gt=0)

    # HTTP
    api_host: str = "0.0.0.0"  # noqa: S104  (the api is meant to be reached from outside its container)
    api_port: int = Field(8000, ge=1, le=65535)
    consumer_port: int = Field(8001, ge=1, le=65535)
    api_keys: CsvSecrets = ()
    auth_disabled: bool = False
    cors_origins: CsvList = ()
    rate_limit_per_second: float = Field(50.0, gt=0)
    rate_limit_burst: int = Field(100, ge=1)
    ingest_max_records: int = Field(100_000, ge=1)
    ingest_max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)

    # Training from the topic (POST /ingest/from-topic): the api's background jobs.
    # INGEST_TOPIC_MAX_RECORDS bounds the records one job reads (a larger `last` is a 422);
    # INGEST_TOPIC_JOB_TIMEOUT_SECONDS bounds reading the topics plus waiting for a training
    # slot (a fit that started runs to its end); INGEST_TOPIC_MAX_JOBS caps the jobs running
    # at once on one api replica (more are refused with 429).
    ingest_topic_max_records: int = Field(1_000_000, ge=1, le=100_000_000)
    ingest_topic_job_timeout_seconds: float = Field(900.0, gt=0, le=86_400)
    ingest_topic_max_jobs: int = Field(1, ge=1, le=64)

    # The worker's own knobs (CONSUMER_*): shutdown, readiness and the publishing client.
    # How long SIGTERM waits for the batch in hand before abandoning it (uncommitted).
    consumer_graceful_timeout_seconds: float = Field(15.0, ge=0, le=600)
    # Readiness turns false when a batch runs this long, or records wait this long unprocessed.
    consumer_stall_seconds: float = Field(60.0, gt=0, le=3600)
    # The client that publishes verdicts and dead letters: a plain aiokafka producer (faster,
    # see bench/pipeline.py) or FastStream's broker.publish.
    consumer_publisher: Literal["aiokafka", "faststream"] = "aiokafka"
    # The producer's linger; unset: 0 with the aiokafka publisher, which enqueues a batch's
    # outputs all at once before it waits for them, so that any linger only delays their
    # acknowledgement (and the next batch); 5 with FastStream's, which yields between two
    # messages, so that without a linger each would leave in a request of its own.
    consumer_linger_ms: int | None = Field(None, ge=0, le=1000)
    # Commit in the background: a batch's offsets go to one committer task once its outputs
    # are acknowledged, and the next batch starts without waiting for the commit (false:
    # wait for each commit before taking the next batch).
    consumer_background_commit: bool = True
    # Freeze the objects alive when consumption starts (gc.freeze) so that Python's full
    # collections skip them: with the libraries loaded they take ~0.1 s, a latency spike.
    consumer_gc_freeze: bool = True
    # Upper bound of the back-off after a batch that could not be published (it is retried).
    consumer_retry_backoff_max_seconds: float = Field(5.0, gt=0, le=300)
    # How long a rebalance waits for the batch in hand to finish and commit.
    consumer_rebalance_wait_seconds: float = Field(10.0, ge=0, le=300)
    # The group session: a worker that dies without leaving is replaced after this long.
    consumer_session_timeout_ms: int = Field(10_000, ge=1_000, le=300_000)
    # FastStream's Prometheus and OpenTelemetry middlewares (tracing also needs an exporter:
    # OTEL_EXPORTER_OTLP_ENDPOINT). The worker's own metrics are always on.
    consumer_telemetry: bool = True
    # How often the consumer-lag gauges are refreshed when no batch arrives.
    consumer_lag_poll_seconds: float = Field(5.0, gt=0, le=300)

    # Observability
    otel_exporter_otlp_endpoint: str | None = None
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    _split = field_validator("api_keys", "cors_origins", mode="before")(_split_csv)

    @field_validator("iforest_max_samples", mode="before")
    @classmethod
    def _max_samples(cls, value: Any) -> Any:
        if isinstance(value, str) and value != "auto":
            return float(value) if "." in value else int(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.kafka_security_protocol in (
            SecurityProtocol.SASL_PLAINTEXT,
            SecurityProtocol.SASL_SSL,
        ):
            if self.kafka_sasl_mechanism is None:
                raise ValueError(
                    "KAFKA_SASL_MECHANISM must be set when KAFKA_SECURITY_PROTOCOL is "
                    f"{self.kafka_security_protocol.value}"
                )
            needs_password = self.kafka_sasl_mechanism is not SaslMechanism.AWS_MSK_IAM
            if needs_password and not (self.kafka_sasl_username and self.kafka_sasl_password):
                raise ValueError(
                    "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set for "
                    f"KAFKA_SASL_MECHANISM={self.kafka_sasl_mechanism.value}"
                )
        if self.kafka_sasl_mechanism is SaslMechanism.AWS_MSK_IAM and (
            self.kafka_security_protocol is not SecurityProtocol.SASL_SSL
        ):
            raise ValueError(
                "KAFKA_SASL_MECHANISM=AWS_MSK_IAM needs KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        return self

    @property
    def signing_key(self) -> bytes | None:
        """The HMAC key for model artifacts, or ``None`` when artifacts are not signed."""
        if self.model_signing_key is None:
            return None
        return self.model_signing_key.get_secret_value().encode()


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = "_".join(str(part) for part in item["loc"]).upper() or "settings"
        lines.append(f"{name}: {item['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, raising :class:`ConfigurationError` that names each bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigurationError(_describe(error)) from error
