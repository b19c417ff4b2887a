"""The stack's MSK authorization: each task role holds exactly the README's Kafka policy.

The README's "Kafka security and MSK" section has one IAM policy block per service; these
tests read them and compare them with the synthesized task roles, in both MSK modes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.deploy.conftest import IMPORTED_CLUSTER_ARN, Synthesis
from tests.deploy.test_cdk import (
    as_list,
    cluster_id,
    expected_arn,
    policy_statements,
    render,
    task_role,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
MODES = pytest.mark.parametrize("mode", ["create", "import"])


def readme_policy(service: str) -> dict[str, set[str]]:
    """The README's IAM policy block for ``service``: resource ARN (placeholders) -> actions."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split(f"<!-- iam-policy: {service} -->", 1)[1]
    body = block.split("```json", 1)[1].split("```", 1)[0]
    granted: dict[str, set[str]] = {}
    for statement in json.loads(body)["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in statement["Resource"]:
            granted.setdefault(resource, set()).update(statement["Action"])
    return granted


def synthesized_arn(synthesis: Synthesis, documented: str) -> str:
    """The README's ``arn:aws:kafka:<region>:<account>:<kind>/<cluster-name>/<cluster-uuid>[/name]``
    as this synthesis renders it."""
    prefix = "arn:aws:kafka:<region>:<account>:"
    assert documented.startswith(prefix), documented
    kind, cluster_name, cluster_uuid, *name = documented.removeprefix(prefix).split("/")
    assert (cluster_name, cluster_uuid) == ("<cluster-name>", "<cluster-uuid>"), documented
    if kind == "cluster":
        if synthesis.mode == "import":
            return IMPORTED_CLUSTER_ARN
        return render({"Fn::GetAtt": [cluster_id(synthesis), "Arn"]})
    return expected_arn(synthesis, kind, "/".join(name))


def kafka_grants(synthesis: Synthesis, container_name: str) -> dict[str, set[str]]:
    """The kafka-cluster actions the container's task role holds, by rendered resource."""
    granted: dict[str, set[str]] = {}
    for statement in policy_statements(synthesis, task_role(synthesis, container_name)):
        actions = {str(a) for a in as_list(statement["Action"])}
        if not any(a.startswith("kafka") for a in actions):
            continue
        assert statement["Effect"] == "Allow"
        assert "Condition" not in statement
        for resource in as_list(statement["Resource"]):
            text = render(resource)
            assert "*" not in text, f"wildcard in {text}"
            granted.setdefault(text, set()).update(actions)
    return granted


@MODES
@pytest.mark.parametrize("service", ["worker", "api"])
def test_each_task_role_has_exactly_the_readme_kafka_policy(
    syntheses: dict[str, Synthesis], mode: str, service: str
) -> None:
    """The worker's and the api's task roles hold exactly the README's MSK policy, no more."""
    synthesis = syntheses[mode]
    expected = {
        synthesized_arn(synthesis, resource): actions
        for resource, actions in readme_policy(service).items()
    }
    assert kafka_grants(synthesis, service) == expected


@MODES
def test_only_the_two_task_roles_use_kafka(syntheses: dict[str, Synthesis], mode: str) -> None:
    """No other role of the stack holds a kafka-cluster action."""
    synthesis = syntheses[mode]
    roles = {task_role(synthesis, "api"), task_role(synthesis, "worker")}
    for policy in synthesis.of_type("AWS::IAM::Policy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        uses_kafka = any(
            str(a).startswith("kafka-cluster:") for s in statements for a in as_list(s["Action"])
        )
        if uses_kafka:
            assert {r["Ref"] for r in policy["Properties"]["Roles"]} <= roles


def test_readme_policies_name_the_default_topics_and_group() -> None:
    """The README's policies cover the four topics and the group the stack defaults to."""
    worker = {r.rsplit("/", 1)[-1] for r in readme_policy("worker") if "/" in r}
    assert {
        "telemetry.raw",
        "telemetry.anomalies",
        "telemetry.dlq",
        "telemetry.alerts",
        "anomaly-scorer",
    } <= worker


@MODES
def test_both_services_reach_the_brokers(syntheses: dict[str, Synthesis], mode: str) -> None:
    """The MSK security group admits the api's and the worker's tasks on 9098 (SASL/IAM)."""
    synthesis = syntheses[mode]
    ingress = [
        rule["Properties"]
        for rule in synthesis.of_type("AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"].get("FromPort") == 9098
    ]
    descriptions = sorted(rule["Description"] for rule in ingress)
    assert descriptions == [
        "SASL/IAM over TLS from the api",
        "SASL/IAM over TLS from the worker",
    ]
