"""Deployment settings, read from CDK context (``cdk.json`` defaults, ``-c key=value`` overrides).

Every knob of the stack is here with its default; ``DeployConfig.from_context`` validates them
so a bad ``-c`` value fails synthesis with a message that names the key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The image's non-root user (Dockerfile: ARG APP_UID / APP_GID). The EFS access point writes
# as this user, so the two must agree; tests/deploy/test_image.py checks that they do.
APP_UID = 10001
APP_GID = 10001

API_PORT = 8000
CONSUMER_PORT = 8001
MODEL_DIR = "/var/lib/vehicle-anomaly/models"
# The ADOT collector's OTLP receiver in the same task. The services export traces with
# opentelemetry-exporter-otlp-proto-http (OTLP over HTTP), whose port is 4318; 4317 is gRPC.
OTLP_ENDPOINT = "http://localhost:4318"

MSK_MODES = ("create", "import")
# arn:aws:kafka:<region>:<account>:cluster/<cluster-name>/<cluster-uuid>
_CLUSTER_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):kafka:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"cluster/(?P<name>[A-Za-z0-9-]{1,64})/(?P<uuid>[A-Za-z0-9-]+)$"
)
_LOG_RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
}


class ConfigError(ValueError):
    """A context value that the stack cannot use; the message names the key."""


@dataclass(frozen=True)
class ImportedCluster:
    """The parts of an existing MSK cluster's ARN that the IAM resources are built from."""

    arn: str
    name: str
    uuid: str


@dataclass(frozen=True)
class DeployConfig:
    stack_name: str
    account: str
    region: str
    image: str
    image_credentials_secret_arn: str
    adot_image: str
    msk: str
    msk_cluster_arn: str
    msk_bootstrap_ssm_parameter: str
    msk_security_group_id: str
    msk_kafka_version: str
    msk_broker_instance_type: str
    msk_broker_volume_gib: int
    partitions: int
    telemetry_topic: str
    anomaly_topic: str
    dlq_topic: str
    alert_topic: str
    consumer_group: str
    vpc_id: str
    api_cpu: int
    api_memory_mib: int
    worker_cpu: int
    worker_memory_mib: int
    api_min_capacity: int
    api_max_capacity: int
    api_requests_per_target: int
    worker_min_capacity: int
    worker_lag_scale_out: int
    log_retention_days: int
    certificate_arn: str
    allow_http: bool
    allowed_cidr: str
    api_keys_secret_arn: str
    signing_key_secret_arn: str

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> DeployConfig:
        """Read every field through ``get`` (``node.try_get_context``); ``None`` means unset."""

        def text(key: str, default: str = "") -> str:
            value = get(key)
            return default if value is None else str(value).strip()

        def number(key: str, default: int, minimum: int = 0) -> int:
            value = get(key)
            if value is None or value == "":
                return default
            try:
                result = int(value)
            except (TypeError, ValueError) as error:
                raise ConfigError(f"context {key}: not an integer: {value!r}") from error
            if result < minimum:
                raise ConfigError(f"context {key}: must be at least {minimum}, not {result}")
            return result

        def flag(key: str) -> bool:
            value = get(key)
            if value is None or value == "" or value is False:
                return False
            if value is True or str(value).strip().lower() in ("true", "1", "yes"):
                return True
            if str(value).strip().lower() in ("false", "0", "no"):
                return False
            raise ConfigError(f"context {key}: true or false, not {value!r}")

        config = cls(
            stack_name=text("stack_name", "VehicleAnomaly"),
            account=text("account", "123456789012"),
            region=text("region", "us-east-1"),
            image=text("image"),
            image_credentials_secret_arn=text("image_credentials_secret_arn"),
            adot_image=text(
                "adot_image", "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
            ),
            msk=text("msk", "create").lower(),
            msk_cluster_arn=text("msk_cluster_arn"),
            msk_bootstrap_ssm_parameter=text(
                "msk_bootstrap_ssm_parameter", "/vehicle-anomaly/msk/bootstrap-brokers"
            ),
            msk_security_group_id=text("msk_security_group_id"),
            msk_kafka_version=text("msk_kafka_version", "3.8.x"),
            msk_broker_instance_type=text("msk_broker_instance_type", "kafka.t3.small"),
            msk_broker_volume_gib=number("msk_broker_volume_gib", 20, minimum=1),
            partitions=number("partitions", 3, minimum=1),
            telemetry_topic=text("telemetry_topic", "telemetry.raw"),
            anomaly_topic=text("anomaly_topic", "telemetry.anomalies"),
            dlq_topic=text("dlq_topic", "telemetry.dlq"),
            alert_topic=text("alert_topic", "telemetry.alerts"),
            consumer_group=text("consumer_group", "anomaly-scorer"),
            vpc_id=text("vpc_id"),
            api_cpu=number("api_cpu", 512, minimum=256),
            api_memory_mib=number("api_memory_mib", 1024, minimum=512),
            worker_cpu=number("worker_cpu", 512, minimum=256),
            worker_memory_mib=number("worker_memory_mib", 1024, minimum=512),
            api_min_capacity=number("api_min_capacity", 2, minimum=1),
            api_max_capacity=number("api_max_capacity", 4, minimum=1),
            api_requests_per_target=number("api_requests_per_target", 500, minimum=1),
            worker_min_capacity=number("worker_min_capacity", 1, minimum=1),
            worker_lag_scale_out=number("worker_lag_scale_out", 1000, minimum=1),
            log_retention_days=number("log_retention_days", 30, minimum=1),
            certificate_arn=text("certificate_arn"),
            allow_http=flag("allow_http"),
            allowed_cidr=text("allowed_cidr", "0.0.0.0/0"),
            api_keys_secret_arn=text("api_keys_secret_arn"),
            signing_key_secret_arn=text("signing_key_secret_arn"),
        )
        config.validate()
        return config

    def validate(self) -> None:
        if not self.certificate_arn and not self.allow_http:
            # API keys would cross the internet in cleartext on plain HTTP.
            raise ConfigError(
                "context certificate_arn: required (an ACM certificate: HTTPS on 443, port 80 "
                "redirected); -c allow_http=true serves plain HTTP on 80, for a test stack only"
            )
        if self.msk not in MSK_MODES:
            raise ConfigError(
                f"context msk: must be one of {', '.join(MSK_MODES)}, not {self.msk!r}"
            )
        if self.msk == "import":
            if not self.msk_cluster_arn:
                raise ConfigError("context msk_cluster_arn: required with -c msk=import")
            if not self.msk_bootstrap_ssm_parameter:
                raise ConfigError(
                    "context msk_bootstrap_ssm_parameter: required with -c msk=import"
                )
            self.imported_cluster()  # validates the ARN
        if self.log_retention_days not in _LOG_RETENTION:
            raise ConfigError(
                f"context log_retention_days: one of {sorted(_LOG_RETENTION)}, "
                f"not {self.log_retention_days}"
            )
        if self.api_max_capacity < self.api_min_capacity:
            raise ConfigError("context api_max_capacity: below api_min_capacity")
        if self.worker_min_capacity > self.partitions:
            raise ConfigError(
                "context worker_min_capacity: more workers than partitions would sit idle"
            )
        if ":" in self.consumer_group or not self.consumer_group.isascii():
            # MSK emits no consumer-lag metrics for such groups, and the worker scales on them.
            raise ConfigError("context consumer_group: ASCII without ':' (MSK lag metrics)")

    @property
    def worker_max_capacity(self) -> int:
        """One worker per partition at most: a consumer beyond that gets no partition."""
        return self.partitions

    @property
    def log_retention(self) -> str:
        """The ``aws_logs.RetentionDays`` member name for ``log_retention_days``."""
        return _LOG_RETENTION[self.log_retention_days]

    @property
    def topics(self) -> tuple[str, str, str, str]:
        return (self.telemetry_topic, self.anomaly_topic, self.dlq_topic, self.alert_topic)

    @property
    def msk_cluster_name(self) -> str:
        """The created cluster's name (``-c msk=create``)."""
        return re.sub(r"[^A-Za-z0-9-]", "-", self.stack_name).lower()[:56] + "-kafka"

    def imported_cluster(self) -> ImportedCluster:
        match = _CLUSTER_ARN.match(self.msk_cluster_arn)
        if match is None:
            raise ConfigError(
                "context msk_cluster_arn: expected "
                "arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>, "
                f"not {self.msk_cluster_arn!r}"
            )
        return ImportedCluster(self.msk_cluster_arn, match["name"], match["uuid"])
