# One concern, every setting of both services in one frozen class, keeps this module past 300 lines.
"""One frozen settings object, read from the environment (and an optional ``.env`` file).

Every variable of the contract is a field here; ``.env.example`` lists them all. A bad value
stops the service with a message that names the variable (see :func:`load_settings`).
"""

from __future__ import annotations

import ipaddress
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
    kafka_bootstrap_servers: str = Field(
        "localhost:9092", min_length=1, description="The brokers, `host:port`, comma-separated."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT, description="How clients connect to the brokers."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None,
        description="The SASL mechanism, needed with `SASL_PLAINTEXT` and `SASL_SSL` "
        "(unset: no SASL); `AWS_MSK_IAM` needs `SASL_SSL`.",
    )
    kafka_sasl_username: str | None = Field(
        None, description="The user name for `PLAIN` and `SCRAM` (with `KAFKA_SASL_PASSWORD`)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, description="The password for `PLAIN` and `SCRAM` (with `KAFKA_SASL_USERNAME`)."
    )
    kafka_ssl_cafile: Path | None = Field(
        None, description="A CA bundle for TLS (unset: the system's trust store)."
    )
    kafka_client_id: str = Field("vehicle-anomaly", description="The client id the brokers see.")
    aws_region: str | None = Field(None, description="The AWS region for MSK IAM token signing.")
    telemetry_topic: str = Field(
        "telemetry.raw", min_length=1, description="The raw telemetry the worker scores."
    )
    anomaly_topic: str = Field(
        "telemetry.anomalies", min_length=1, description="Where the worker publishes verdicts."
    )
    dlq_topic: str = Field(
        "telemetry.dlq",
        min_length=1,
        description="Where the worker sends bad records (dead letters), with the reason.",
    )
    consumer_group: str = Field(
        "anomaly-scorer", min_length=1, description="The worker's consumer group."
    )
    publish_all_verdicts: bool = Field(
        False,
        description="Publish a verdict for every valid record, not only the anomalous ones.",
    )
    batch_max_records: int = Field(
        500, ge=1, le=100_000, description="The most records in one batch of the worker."
    )
    batch_timeout_ms: int = Field(
        50, ge=1, le=60_000, description="How long the worker waits to fill a batch."
    )
    max_record_bytes: int = Field(
        65_536,
        ge=256,
        description="Larger raw values are dead-lettered as `too_large` (checked before parsing).",
    )

    # Model registry
    model_dir: Path = Field(
        Path("./var/models"),
        description="The registry: a directory of model versions (an EFS volume in production).",
    )
    model_poll_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often the worker looks at `LATEST`."
    )
    model_signing_key: SecretStr | None = Field(
        None,
        description="The HMAC key that signs and verifies model artifacts (each version's name, "
        "metadata and artifact digest). Required: without it both services refuse to start "
        "unless `ALLOW_UNSIGNED_MODELS=true`.",
    )
    allow_unsigned_models: bool = Field(
        False,
        description="Start without `MODEL_SIGNING_KEY`: artifacts are checked by sha256 only, "
        "so whoever can write the model volume can run code in the services (a warning is "
        "logged). For local experiments only.",
    )
    model_retention: int = Field(
        20,
        ge=1,
        description="Versions kept: the newest N; the active one, the shadow candidate and the "
        "last `MODEL_RETENTION_KEEP_ACTIVATED` versions that were active are never removed.",
    )
    model_retention_keep_activated: int = Field(
        5,
        ge=0,
        le=100,
        description="How many of the versions most recently made active (besides the active "
        "one) retention keeps, however old, so that they stay available to roll back to.",
    )

    # Training defaults (a request may override them)
    iforest_n_estimators: int = Field(
        100, ge=1, le=5000, description="IsolationForest's trees, unless a request says."
    )
    iforest_max_samples: int | float | Literal["auto"] = Field(
        "auto", description="IsolationForest's `max_samples`, unless a request says."
    )
    iforest_contamination: float | Literal["auto"] = Field(
        "auto", description="IsolationForest's `contamination`, unless a request says."
    )
    iforest_random_state: int | None = Field(
        None, description="IsolationForest's `random_state`, unless a request says."
    )
    min_training_records: int = Field(1, ge=1, description="Smaller training sets are refused.")
    detector_kind: Literal["context", "point"] = Field(
        "context",
        description="The kind of model a training makes, unless a request says: `context` "
        "(each record judged in its vehicle's recent history) or `point` (each record alone, "
        "an IsolationForest on the readings).",
    )
    detection_false_alarm_rate: float = Field(
        0.0005,
        gt=0,
        le=0.5,
        description="The share of normal records a context model may flag: its threshold is "
        "set on held-out training records to flag this share, unless a request says (point "
        "models use `IFOREST_CONTAMINATION`).",
    )

    # Explained verdicts, drift watch, shadow models
    attribution_top_k: int = Field(
        3,
        ge=0,
        le=256,
        description="Features listed in an anomalous verdict's `attribution` (0: none).",
    )
    drift_window_records: int = Field(
        10_000, ge=100, description="Each worker's rolling drift window, in records."
    )
    drift_min_records: int = Field(
        1_000, ge=1, description="The records a drift window needs before it is reported."
    )
    drift_psi_threshold: float = Field(
        0.25,
        gt=0,
        description="The population stability index above which a feature (or the score) "
        "counts as drifted.",
    )
    shadow_sample_records: int = Field(
        10_000,
        ge=10,
        le=1_000_000,
        description="Score pairs each worker keeps for the shadow report's rank correlation.",
    )
    observations_interval_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How often a worker writes its drift and shadow figures to the model volume.",
    )
    observations_ttl_seconds: float = Field(
        120.0,
        gt=0,
        description="Figures older than this are left out of the api's reports while fresher "
        "ones exist.",
    )

    # HTTP
    api_host: str = Field(
        "0.0.0.0",  # noqa: S104  (the api is meant to be reached from outside its container)
        description="The address the api listens on.",
    )
    api_port: int = Field(8000, ge=1, le=65535, description="The api's port.")
    consumer_port: int = Field(
        8001, ge=1, le=65535, description="The worker's port for health and metrics."
    )
    api_keys: CsvSecrets = Field(
        (),
        description="Comma-separated admin keys (`X-API-Key` or `Authorization: Bearer`): every "
        "route, training, activation and deletion included; without any key (admin or read), "
        "the api refuses to start unless `AUTH_DISABLED=true`.",
    )
    api_read_keys: CsvSecrets = Field(
        (),
        description="Comma-separated read keys: scoring, listing and reports only (403 on "
        "`/ingest`, activation, deletion and shadow changes).",
    )
    auth_disabled: bool = Field(
        False,
        description="The only way to run the api without keys (local demos); refused when "
        "`API_KEYS` or `API_READ_KEYS` is set.",
    )
    trusted_proxies: CsvList = Field(
        (),
        description="Comma-separated addresses or networks (e.g. `10.0.0.0/16`) whose "
        "`X-Forwarded-For` names the client; anyone else's is ignored (none by default).",
    )
    auth_failures_per_minute: float = Field(
        10.0,
        gt=0,
        description="Failed logins allowed per client address and minute, after a burst of "
        "`AUTH_FAILURE_BURST`; past it, requests from that address with a key are 429.",
    )
    auth_failure_burst: int = Field(
        20, ge=1, description="Failed logins a client address may make before throttling."
    )
    cors_origins: CsvList = Field(
        (), description="Comma-separated origins allowed by CORS (none by default)."
    )
    rate_limit_per_second: float = Field(
        50.0, gt=0, description="Each key's token bucket: tokens a second, per api process."
    )
    rate_limit_burst: int = Field(
        100, ge=1, description="Each key's token bucket: the most tokens saved up."
    )
    ingest_max_records: int = Field(
        100_000, ge=1, description="The most records in one `POST /ingest` (413 past it)."
    )
    ingest_max_body_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="The largest `POST /ingest` body, in bytes (413 past it).",
    )
    ingest_max_bytes_in_flight: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="`POST /ingest` body bytes being received and decoded at once, across "
        "requests (a chunked body counts as `INGEST_MAX_BODY_BYTES`); past it, 503 with "
        "`Retry-After`.",
    )
    training_max_values_in_flight: int = Field(
        4_000_000,
        ge=1,
        description="Records x features held for trainings at once, across requests and "
        "queued ones; a batch larger than this alone is a 413, one that does not fit beside "
        "those in flight a 503 with `Retry-After`. A job from the topic holds its share "
        "once decoded: it waits (without its training slot) until it fits, and one larger "
        "than this alone fails with `too-many-records`.",
    )
    training_max_tree_nodes: int = Field(
        2_000_000,
        ge=1,
        description="The most nodes a trained forest may hold (trees x (2 x samples per tree "
        "- 1)), which bounds the artifact; more is a 422.",
    )
    header_max_bytes: int = Field(
        64 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="The most bytes of a request line and headers the api reads (431 and the "
        "connection closed past it).",
    )
    header_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="How long a request's headers may take to arrive, from its first byte, "
        "before the connection is closed.",
    )
    body_read_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How long the api waits for the next bytes of a request body before "
        "answering 408 and closing the connection.",
    )
    score_max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="The largest `POST /score` body (a record and its history), in bytes "
        "(413 past it).",
    )
    other_max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="The largest body of every other route (`/ingest/from-topic`, the "
        "routes that take none), in bytes (413 past it).",
    )

    # Training from the topic (POST /ingest/from-topic): the api's background jobs.
    ingest_topic_max_records: int = Field(
        1_000_000,
        ge=1,
        le=100_000_000,
        description="The records one job may read: a larger `last` is a 422, a larger "
        "`since`/`until` range fails the job.",
    )
    ingest_topic_job_timeout_seconds: float = Field(
        900.0,
        gt=0,
        le=86_400,
        description="Bounds a job's reading of the topics plus its wait for a training slot "
        "(a fit that started runs to its end).",
    )
    ingest_topic_max_jobs: int = Field(
        1,
        ge=1,
        le=64,
        description="Jobs running at once on one api replica; more are refused with 429.",
    )

    # The worker's own knobs (CONSUMER_*): shutdown, readiness and the publishing client.
    consumer_graceful_timeout_seconds: float = Field(
        15.0,
        ge=0,
        le=600,
        description="How long SIGTERM waits for the batch in hand (and the commit of the "
        "batches already published) before abandoning it, uncommitted.",
    )
    consumer_stall_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Readiness turns false when a batch runs this long, or records wait this "
        "long unprocessed.",
    )
    consumer_publisher: Literal["aiokafka", "faststream"] = Field(
        "aiokafka",
        description="The client that publishes verdicts and dead letters: a plain aiokafka "
        "producer (faster, see `bench/pipeline.py`) or FastStream's `broker.publish`.",
    )
    consumer_linger_ms: int | None = Field(
        None,
        ge=0,
        le=1000,
        description="The producer's linger; unset: 0 with the aiokafka publisher, which "
        "enqueues a batch's outputs all at once before it waits for them, so that any linger "
        "only delays their acknowledgement (and the next batch); 5 with FastStream's, which "
        "yields between two messages, so that without a linger each would leave in a request "
        "of its own.",
    )
    consumer_background_commit: bool = Field(
        True,
        description="Commit in the background: a batch's offsets go to one committer task once "
        "its outputs are acknowledged, and the next batch starts without waiting for the commit "
        "(false: wait for each commit before taking the next batch).",
    )
    consumer_gc_freeze: bool = Field(
        True,
        description="Freeze the objects alive when consumption starts (`gc.freeze`) so that "
        "Python's full collections skip them: with the libraries loaded they take ~0.1 s, a "
        "latency spike.",
    )
    consumer_retry_backoff_max_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="The upper bound of the back-off after a batch that could not be published "
        "(it is retried).",
    )
    consumer_refused_attempts: int = Field(
        5,
        ge=1,
        le=1_000,
        description="How many times a batch the broker refuses (a message too large, a broken "
        "sequence) is retried before the refused records go to the dead-letter topic without "
        "their value (`error=publish_refused`); should that be refused as often, the worker "
        "stops consuming the partition, commits nothing past the record and reports not ready. "
        "An unreachable broker is not a refusal: that retry has no bound.",
    )
    consumer_rebalance_wait_seconds: float = Field(
        10.0,
        ge=0,
        le=300,
        description="How long a rebalance waits for the batch in hand to finish and commit.",
    )
    consumer_session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=300_000,
        description="The group session: a worker that dies without leaving is replaced after "
        "this long.",
    )
    consumer_telemetry: bool = Field(
        True,
        description="FastStream's Prometheus and OpenTelemetry middlewares (tracing also needs "
        "`OTEL_EXPORTER_OTLP_ENDPOINT`); the worker's own metrics are always on.",
    )
    consumer_lag_poll_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How often the consumer-lag gauges are refreshed when no batch arrives.",
    )
    consumer_context_replay_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description=(
            "How long a worker may re-read a newly assigned partition's tail to rebuild its "
            "vehicles' context (context models); past it the partition is scored with the "
            "history rebuilt so far."
        ),
    )

    # Alert episodes (ALERT_*): per-vehicle episodes of anomalous verdicts, on their own topic
    alert_topic: str = Field(
        "telemetry.alerts",
        min_length=1,
        description="Where the worker publishes alert episodes (`opened`, `updated`, `closed`), "
        "key = vehicle id.",
    )
    alert_episodes: bool = Field(
        True,
        description="Publish alert episodes of context models' verdicts to `ALERT_TOPIC` "
        "(the anomalies topic is unchanged either way).",
    )
    alert_open_anomalous: int = Field(
        2,
        ge=1,
        le=1_000,
        description="N: an episode opens when N of a vehicle's last `ALERT_OPEN_WINDOW` records "
        "were anomalous.",
    )
    alert_open_window: int = Field(
        5, ge=1, le=1_000, description="M: the records the opening rule looks back over."
    )
    alert_open_severity: float = Field(
        0.1,
        ge=0,
        le=1,
        description="One anomalous record at least this severe (the 0-1 grade of "
        "docs/alerts.md) opens an episode on its own (1: never alone).",
    )
    alert_close_normal: int = Field(
        30,
        ge=1,
        le=100_000,
        description="K: an episode closes after this many normal records of its vehicle in a row.",
    )
    alert_silence_seconds: float = Field(
        600.0,
        gt=0,
        le=30 * 86_400,
        description="T: an episode closes when its vehicle has sent nothing for this long, in "
        "event time (the records' timestamps).",
    )
    alert_replay_offsets: int = Field(
        10_000,
        ge=0,
        le=1_000_000,
        description="The offsets of a partition's tail scored again after an assignment to "
        "rebuild its open episodes (an episode open longer than that is not carried over).",
    )

    @model_validator(mode="after")
    def _alert_rules(self) -> Settings:
        if self.alert_open_anomalous > self.alert_open_window:
            raise ValueError("ALERT_OPEN_ANOMALOUS must not exceed ALERT_OPEN_WINDOW")
        return self

    # Observability
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        description="The OTLP/HTTP endpoint for traces (`/v1/traces` is appended; unset: "
        "tracing is off).",
    )
    log_format: Literal["json", "console"] = Field(
        "json", description="One JSON object per line, or readable console lines."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="The lowest level logged."
    )
    log_repeat_seconds: float = Field(
        30.0,
        ge=0,
        le=3_600,
        description="Warnings and errors of one kind (logger, level, message template) are "
        "written once per this many seconds; the repeats are counted and summarised in one "
        "line (`repeated`). A different line, such as a recovery, is always written. "
        "0: every line is written.",
    )

    _split = field_validator(
        "api_keys", "api_read_keys", "cors_origins", "trusted_proxies", mode="before"
    )(_split_csv)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as error:
                raise ValueError(f"{item!r} is not an address or network: {error}") from None
        return value

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
        if self.model_signing_key is None or not self.model_signing_key.get_secret_value():
            return None
        return self.model_signing_key.get_secret_value().encode()

    def models_unsigned(self) -> bool:
        """Whether the services run with unsigned models (``ALLOW_UNSIGNED_MODELS=true``, no key).

        :class:`ConfigurationError` when there is no signing key and unsigned models were not
        allowed: a hand-made pickle with a matching sha256 would run code when loaded.
        """
        if self.signing_key is not None:
            return False
        if not self.allow_unsigned_models:
            raise ConfigurationError(UNSIGNED_MESSAGE)
        return True


UNSIGNED_MESSAGE = (
    "MODEL_SIGNING_KEY is not set: model artifacts would be unpickled on a sha256 check alone; "
    "set MODEL_SIGNING_KEY (make run generates one), or ALLOW_UNSIGNED_MODELS=true to accept that"
)
UNSIGNED_WARNING = (
    "ALLOW_UNSIGNED_MODELS=true and no MODEL_SIGNING_KEY: whoever can write the model "
    "directory can run code in this process"
)


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
