"""Worker-only knobs that are not part of the shared contract (``CONSUMER_*`` variables).

They tune shutdown, readiness and the publishing client; the contract's variables stay in
:class:`shared.settings.Settings`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigurationError


class WorkerOptions(BaseSettings):
    """``CONSUMER_<FIELD>`` environment variables (and ``.env``)."""

    model_config = SettingsConfigDict(
        env_prefix="CONSUMER_",
        env_file=".env",
        env_file_encoding="utf-8",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    # How long SIGTERM waits for the batch in hand before abandoning it (uncommitted).
    graceful_timeout_seconds: float = Field(15.0, ge=0, le=600)
    # Readiness turns false when a batch runs this long, or records wait this long unprocessed.
    stall_seconds: float = Field(60.0, gt=0, le=3600)
    # The client that publishes verdicts and dead letters: a plain aiokafka producer (faster,
    # see bench/pipeline.py) or FastStream's broker.publish.
    publisher: Literal["aiokafka", "faststream"] = "aiokafka"
    # The producer's linger; unset: 0 with the aiokafka publisher, which enqueues a batch's
    # outputs all at once before it waits for them, so that any linger only delays their
    # acknowledgement (and the next batch); 5 with FastStream's, which yields between two
    # messages, so that without a linger each would leave in a request of its own.
    linger_ms: int | None = Field(None, ge=0, le=1000)
    # Commit in the background: a batch's offsets go to one committer task once its outputs
    # are acknowledged, and the next batch starts without waiting for the commit (false:
    # wait for each commit before taking the next batch).
    background_commit: bool = True
    # Freeze the objects alive when consumption starts (gc.freeze) so that Python's full
    # collections skip them: with the libraries loaded they take ~0.1 s, a latency spike.
    gc_freeze: bool = True
    # Upper bound of the back-off after a batch that could not be published (it is retried).
    retry_backoff_max_seconds: float = Field(5.0, gt=0, le=300)
    # How long a rebalance waits for the batch in hand to finish and commit.
    rebalance_wait_seconds: float = Field(10.0, ge=0, le=300)
    # The group session: a worker that dies without leaving is replaced after this long.
    session_timeout_ms: int = Field(10_000, ge=1_000, le=300_000)
    # FastStream's Prometheus and OpenTelemetry middlewares (tracing also needs an exporter:
    # OTEL_EXPORTER_OTLP_ENDPOINT). The worker's own metrics are always on.
    telemetry: bool = True
    # How often the consumer-lag gauges are refreshed when no batch arrives.
    lag_poll_seconds: float = Field(5.0, gt=0, le=300)


def producer_linger_ms(options: WorkerOptions) -> int:
    """``CONSUMER_LINGER_MS``, or the publisher's default when it is unset."""
    if options.linger_ms is not None:
        return options.linger_ms
    return 0 if options.publisher == "aiokafka" else 5


def load_options(**overrides: Any) -> WorkerOptions:
    """Read the options, raising :class:`ConfigurationError` that names each bad variable."""
    try:
        return WorkerOptions(**overrides)
    except ValidationError as error:
        parts = [
            f"CONSUMER_{'_'.join(str(p) for p in item['loc']).upper()}: {item['msg']}"
            for item in error.errors()
        ]
        raise ConfigurationError("invalid configuration: " + "; ".join(parts)) from error
