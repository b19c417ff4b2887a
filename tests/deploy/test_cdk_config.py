"""The CDK app's context validation (pure Python: runs without the deploy extra)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

CDK_DIR = Path(__file__).resolve().parents[2] / "deploy" / "cdk"
if str(CDK_DIR) not in sys.path:
    sys.path.insert(0, str(CDK_DIR))

from stacks.config import ConfigError, DeployConfig  # noqa: E402

from tests.deploy.conftest import (  # noqa: E402
    IMPORTED_CLUSTER_ARN,
    TEST_CERTIFICATE_ARN,
    cdk_defaults,
)


def config(**overrides: Any) -> DeployConfig:
    """cdk.json's context with ``overrides``; plain HTTP allowed unless they say otherwise."""
    context = {**cdk_defaults(), "allow_http": True, **overrides}
    return DeployConfig.from_context(context.get)


def test_cdk_json_defaults_need_a_certificate() -> None:
    """cdk.json's context alone stops synthesis: the api would serve API keys on plain HTTP."""
    with pytest.raises(ConfigError, match="context certificate_arn: required"):
        DeployConfig.from_context(cdk_defaults().get)


def test_allow_http_is_an_explicit_flag() -> None:
    """-c allow_http=true (a test stack) replaces the certificate; other values are refused."""
    assert config(allow_http="true").allow_http is True
    with pytest.raises(ConfigError, match="context certificate_arn: required"):
        config(allow_http="false")
    with pytest.raises(ConfigError, match="context allow_http:"):
        config(allow_http="maybe")


def test_cdk_json_defaults_with_a_certificate_are_valid() -> None:
    """cdk.json's context and a certificate are a complete, valid configuration (MSK created)."""
    context = {**cdk_defaults(), "certificate_arn": TEST_CERTIFICATE_ARN}
    defaults = DeployConfig.from_context(context.get)
    assert defaults.allow_http is False
    assert defaults.msk == "create"
    assert defaults.worker_max_capacity == defaults.partitions == 3
    assert defaults.topics == (
        "telemetry.raw",
        "telemetry.anomalies",
        "telemetry.dlq",
        "telemetry.alerts",
    )


def test_cli_strings_are_converted() -> None:
    """-c values arrive as strings; numbers are parsed (partitions=6 gives 6 workers at most)."""
    assert config(partitions="6").worker_max_capacity == 6


def test_imported_cluster_arn_is_parsed() -> None:
    """The cluster name and uuid, the parts of topic and group ARNs, come from the ARN."""
    imported = config(msk="import", msk_cluster_arn=IMPORTED_CLUSTER_ARN).imported_cluster()
    assert imported.name == "fleet-kafka"
    assert imported.uuid == "0f1e2d3c-4b5a-6789-abcd-ef0123456789-2"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"msk": "serverless"}, "context msk:"),
        ({"msk": "import"}, "context msk_cluster_arn:"),
        (
            {"msk": "import", "msk_cluster_arn": "arn:aws:kafka:us-east-1:1:cluster/x"},
            "msk_cluster_arn",
        ),
        ({"partitions": "three"}, "context partitions:"),
        ({"partitions": 2, "worker_min_capacity": 3}, "context worker_min_capacity:"),
        ({"log_retention_days": 10}, "context log_retention_days:"),
        ({"consumer_group": "a:b"}, "context consumer_group:"),
    ],
)
def test_bad_context_names_the_key(overrides: dict[str, Any], key: str) -> None:
    """A bad -c value stops synthesis with a message naming the context key."""
    with pytest.raises(ConfigError, match=key):
        config(**overrides)
