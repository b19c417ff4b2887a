"""The CDK app's template: services, storage, Kafka authorization, scaling, secrets, cdk-nag.

Templates come from the session fixture ``syntheses`` (tests/deploy/conftest.py): one
synthesis per MSK mode, as ``cdk synth`` would run it. Assertions go through
``aws_cdk.assertions.Template`` where it reads well, and plain dictionaries elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.settings import Settings
from tests.deploy.conftest import IMPORTED_CLUSTER_ARN, TEST_IMAGE, Synthesis

assertions = pytest.importorskip(
    "aws_cdk.assertions", reason="the deploy extra is not installed (uv sync --extra deploy)"
)

MODEL_DIR = "/var/lib/vehicle-anomaly/models"
APP_CONTAINERS = {"api": ["python", "-m", "api"], "worker": ["python", "-m", "consumer"]}
SECRET_NAMES = {"API_KEYS", "MODEL_SIGNING_KEY"}
pytestmark = pytest.mark.parametrize("mode", ["create", "import"])


# -- helpers ------------------------------------------------------------------------------


def template(synthesis: Synthesis) -> Any:
    return assertions.Template.from_json(synthesis.template)


def render(value: Any) -> str:
    """A CloudFormation value as text: Fn::Join flattened, other intrinsics as <...> markers."""
    if isinstance(value, str):
        return value
    separator: str
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(part) for part in parts)
    if isinstance(value, dict) and "Fn::Select" in value:
        index, source = value["Fn::Select"]
        if "Fn::Split" in source:
            separator, inner = source["Fn::Split"]
            return f"<{render(inner)} split {separator!r} [{index}]>"
    return f"<{json.dumps(value, sort_keys=True)}>"


def app_containers(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    """``{"api": container, "worker": container}`` from the two task definitions."""
    found: dict[str, dict[str, Any]] = {}
    for task in synthesis.of_type("AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            if container["Name"] in APP_CONTAINERS:
                found[container["Name"]] = container
    return found


def task_of(synthesis: Synthesis, container_name: str) -> dict[str, Any]:
    for task in synthesis.of_type("AWS::ECS::TaskDefinition").values():
        names = {c["Name"] for c in task["Properties"]["ContainerDefinitions"]}
        if container_name in names:
            return task
    raise AssertionError(f"no task definition runs {container_name}")


def policy_statements(synthesis: Synthesis, role_logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for policy in synthesis.of_type("AWS::IAM::Policy").values():
        roles = policy["Properties"].get("Roles", [])
        if {"Ref": role_logical_id} in roles:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def task_role(synthesis: Synthesis, container_name: str) -> str:
    return str(task_of(synthesis, container_name)["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def expected_arn(synthesis: Synthesis, kind: str, name: str) -> str:
    """arn:aws:kafka:region:account:<kind>/<cluster-name>/<cluster-uuid>/<name>, rendered."""
    if synthesis.mode == "import":
        cluster = IMPORTED_CLUSTER_ARN.split(":cluster/", 1)[1]
        return f"arn:aws:kafka:us-east-1:123456789012:{kind}/{cluster}/{name}"
    arn = {"Fn::GetAtt": [cluster_id(synthesis), "Arn"]}
    uuid = render({"Fn::Select": [2, {"Fn::Split": ["/", arn]}]})
    return f"arn:aws:kafka:us-east-1:123456789012:{kind}/vehicleanomaly-kafka/{uuid}/{name}"


def cluster_id(synthesis: Synthesis) -> str:
    (logical_id,) = synthesis.of_type("AWS::MSK::Cluster")
    return logical_id


# -- tests --------------------------------------------------------------------------------


def test_synthesis_passes_cdk_nag(syntheses: dict[str, Synthesis], mode: str) -> None:
    """The app synthesizes with the AwsSolutions pack and no unacknowledged finding."""
    synthesis = syntheses[mode]
    assert synthesis.returncode == 0, synthesis.output[-6000:]
    reports = synthesis.validation_report.get("pluginReports", [])
    violations = [v for report in reports for v in report.get("violations", [])]
    assert violations == [], json.dumps(violations, indent=1)[:6000]
    assert "AwsSolutions" not in synthesis.output


ACKNOWLEDGED = {
    "/VehicleAnomaly/ApiKeys AwsSolutions-SMG4",
    "/VehicleAnomaly/ModelSigningKey AwsSolutions-SMG4",
    "/VehicleAnomaly/ApiTask AwsSolutions-ECS2",
    "/VehicleAnomaly/WorkerTask AwsSolutions-ECS2",
    "/VehicleAnomaly/ApiTask/TaskRole AwsSolutions-IAM5[Resource::*]",
    "/VehicleAnomaly/WorkerTask/TaskRole AwsSolutions-IAM5[Resource::*]",
    "/VehicleAnomaly/AlbAccessLogs AwsSolutions-S1",
    "/VehicleAnomaly/Api/LB AwsSolutions-EC23",
}
ACKNOWLEDGED_CREATE = {
    "/VehicleAnomaly/AWS679f53fac002430cb0da5b7982bd2287 AwsSolutions-IAM4"
    "[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
}


def test_acknowledged_findings_are_the_reviewed_ones(
    syntheses: dict[str, Synthesis], mode: str
) -> None:
    """No cdk-nag finding is acknowledged beyond the reviewed list, and each has a reason."""
    acknowledged = syntheses[mode].acknowledgements()
    expected = ACKNOWLEDGED | (ACKNOWLEDGED_CREATE if mode == "create" else set())
    assert set(acknowledged) == expected
    assert all(len(reason) > 40 for reason in acknowledged.values())


def test_two_fargate_services_run_one_image(syntheses: dict[str, Synthesis], mode: str) -> None:
    """An api and a worker service on Fargate, both from the one image, with their commands."""
    synthesis = syntheses[mode]
    services = synthesis.of_type("AWS::ECS::Service")
    assert len(services) == 2
    assert {s["Properties"]["LaunchType"] for s in services.values()} == {"FARGATE"}
    containers = app_containers(synthesis)
    assert set(containers) == set(APP_CONTAINERS)
    for name, container in containers.items():
        assert container["Image"] == TEST_IMAGE
        assert container["Command"] == APP_CONTAINERS[name]
        assert container["User"] == "10001:10001"
    template(synthesis).has_resource_properties(
        "AWS::ECS::TaskDefinition",
        {"RequiresCompatibilities": ["FARGATE"], "NetworkMode": "awsvpc"},
    )


def test_both_services_mount_the_efs_access_point(
    syntheses: dict[str, Synthesis], mode: str
) -> None:
    """Both tasks mount the encrypted EFS through the access point, TLS and IAM enabled."""
    synthesis = syntheses[mode]
    (fs_id, fs), *more = synthesis.of_type("AWS::EFS::FileSystem").items()
    assert not more and fs["Properties"]["Encrypted"] is True
    (ap_id, ap), *more = synthesis.of_type("AWS::EFS::AccessPoint").items()
    assert not more
    assert ap["Properties"]["PosixUser"] == {"Uid": "10001", "Gid": "10001"}
    assert ap["Properties"]["RootDirectory"] == {
        "Path": "/models",
        "CreationInfo": {"OwnerUid": "10001", "OwnerGid": "10001", "Permissions": "750"},
    }
    for name, read_only in (("api", False), ("worker", True)):
        task = task_of(synthesis, name)["Properties"]
        (volume,) = [v for v in task["Volumes"] if "EFSVolumeConfiguration" in v]
        assert volume["EFSVolumeConfiguration"] == {
            "FilesystemId": {"Ref": fs_id},
            "TransitEncryption": "ENABLED",
            "AuthorizationConfig": {"AccessPointId": {"Ref": ap_id}, "IAM": "ENABLED"},
        }
        mounts = app_containers(synthesis)[name]["MountPoints"]
        assert {
            "ContainerPath": MODEL_DIR,
            "SourceVolume": volume["Name"],
            "ReadOnly": read_only,
        } in mounts
        efs_actions = {
            action
            for statement in policy_statements(synthesis, task_role(synthesis, name))
            for action in as_list(statement["Action"])
            if action.startswith("elasticfilesystem:")
        }
        expected = {"elasticfilesystem:ClientMount"}
        if not read_only:
            expected.add("elasticfilesystem:ClientWrite")
        assert efs_actions == expected


def test_health_checks_use_healthz(syntheses: dict[str, Synthesis], mode: str) -> None:
    """The ALB probes /healthz (and hides /metrics); both containers probe /healthz."""
    synthesis = syntheses[mode]
    template(synthesis).has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {"HealthCheckPath": "/healthz", "Matcher": {"HttpCode": "200"}, "TargetType": "ip"},
    )
    for name, port in (("api", 8000), ("worker", 8001)):
        command = app_containers(synthesis)[name]["HealthCheck"]["Command"]
        assert command[0] == "CMD"
        assert f"http://127.0.0.1:{port}/healthz" in command[-1]
    template(synthesis).has_resource_properties(
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        {
            "Conditions": [
                {
                    "Field": "path-pattern",
                    "PathPatternConfig": {"Values": ["/metrics", "/metrics/*"]},
                }
            ],
            "Actions": [
                {
                    "Type": "fixed-response",
                    "FixedResponseConfig": {"StatusCode": "404", "ContentType": "text/plain"},
                }
            ],
        },
    )
    services = synthesis.of_type("AWS::ECS::Service").values()
    balanced = [s for s in services if s["Properties"].get("LoadBalancers")]
    assert len(balanced) == 1
    assert balanced[0]["Properties"]["LoadBalancers"][0]["ContainerName"] == "api"


def test_scaling_policies(syntheses: dict[str, Synthesis], mode: str) -> None:
    """The api scales on CPU and requests per target; the worker on SumOffsetLag, up to partitions."""
    synthesis = syntheses[mode]
    partitions = int(synthesis.context["partitions"])
    targets = synthesis.of_type("AWS::ApplicationAutoScaling::ScalableTarget")
    capacities = sorted(
        (t["Properties"]["MinCapacity"], t["Properties"]["MaxCapacity"]) for t in targets.values()
    )
    assert capacities == sorted([(2, 4), (1, partitions)])
    policies = synthesis.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    tracked = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in policies
        if p["Properties"]["PolicyType"] == "TargetTrackingScaling"
    ]
    kinds = sorted(t["PredefinedMetricSpecification"]["PredefinedMetricType"] for t in tracked)
    assert kinds == [
        "ALBRequestCountPerTarget",
        "ECSServiceAverageCPUUtilization",  # api
        "ECSServiceAverageCPUUtilization",  # worker's fallback
    ]
    assert all("ScaleInCooldown" in t and "ScaleOutCooldown" in t for t in tracked)
    steps = [p["Properties"] for p in policies if p["Properties"]["PolicyType"] == "StepScaling"]
    assert len(steps) == 2 and all(
        s["StepScalingPolicyConfiguration"]["Cooldown"] > 0 for s in steps
    )
    cluster_name = "fleet-kafka" if mode == "import" else "vehicleanomaly-kafka"
    template(synthesis).resource_count_is("AWS::CloudWatch::Alarm", 2)
    template(synthesis).all_resources_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/Kafka",
            "MetricName": "SumOffsetLag",
            "Dimensions": [
                {"Name": "Cluster Name", "Value": cluster_name},
                {"Name": "Consumer Group", "Value": "anomaly-scorer"},
                {"Name": "Topic", "Value": "telemetry.raw"},
            ],
        },
    )


def test_secrets_are_injected_not_in_environment(
    syntheses: dict[str, Synthesis], mode: str
) -> None:
    """API_KEYS and MODEL_SIGNING_KEY are ECS secrets from Secrets Manager, never plain env."""
    synthesis = syntheses[mode]
    secrets = synthesis.of_type("AWS::SecretsManager::Secret")
    assert len(secrets) == 2
    containers = app_containers(synthesis)
    expected = {"api": {"API_KEYS", "MODEL_SIGNING_KEY"}, "worker": {"MODEL_SIGNING_KEY"}}
    for name, container in containers.items():
        injected = {s["Name"]: s["ValueFrom"] for s in container["Secrets"]}
        assert set(injected) == expected[name]
        assert all(value["Ref"] in secrets for value in injected.values())
        environment = {e["Name"] for e in container["Environment"]}
        assert not environment & SECRET_NAMES
        assert not [n for n in environment if any(w in n for w in ("KEY", "PASSWORD", "SECRET"))]


def test_container_environment_is_valid_configuration(
    syntheses: dict[str, Synthesis], mode: str
) -> None:
    """Every variable the tasks set is a Settings field, and together they load as settings."""
    synthesis = syntheses[mode]
    fields = {name.upper() for name in Settings.model_fields}
    for container in app_containers(synthesis).values():
        environment = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert set(environment) <= fields, set(environment) - fields
        values: dict[str, Any] = {
            k.lower(): v if isinstance(v, str) else "b-1.example:9098"
            for k, v in environment.items()
        }
        settings = Settings(_env_file=None, **values)
        assert settings.kafka_security_protocol.value == "SASL_SSL"
        assert settings.kafka_sasl_mechanism is not None
        assert settings.kafka_sasl_mechanism.value == "AWS_MSK_IAM"
        assert str(settings.model_dir) == MODEL_DIR


def test_log_groups_have_retention(syntheses: dict[str, Synthesis], mode: str) -> None:
    """Every log group expires its events, and every container logs to CloudWatch."""
    synthesis = syntheses[mode]
    groups = synthesis.of_type("AWS::Logs::LogGroup")
    assert groups
    assert {g["Properties"].get("RetentionInDays") for g in groups.values()} == {30}
    for task in synthesis.of_type("AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            assert container["LogConfiguration"]["LogDriver"] == "awslogs"


def test_adot_sidecar_in_both_tasks(syntheses: dict[str, Synthesis], mode: str) -> None:
    """Each task runs an ADOT collector that the app exports to, with X-Ray permissions."""
    synthesis = syntheses[mode]
    for name, container in app_containers(synthesis).items():
        task = task_of(synthesis, name)["Properties"]
        (collector,) = [c for c in task["ContainerDefinitions"] if c["Name"] not in APP_CONTAINERS]
        assert collector["Image"].startswith("public.ecr.aws/aws-observability/aws-otel-collector:")
        assert collector["Essential"] is False
        assert container["DependsOn"] == [
            {"ContainerName": collector["Name"], "Condition": "START"}
        ]
        environment = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://localhost:")
        actions = {
            action
            for statement in policy_statements(synthesis, task_role(synthesis, name))
            for action in as_list(statement["Action"])
        }
        assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= actions


def test_outputs(syntheses: dict[str, Synthesis], mode: str) -> None:
    """The stack outputs the api URL and the topics."""
    synthesis = syntheses[mode]
    outputs = synthesis.template["Outputs"]
    scheme = "https://" if mode == "create" else "http://"  # import: -c allow_http=true
    assert render(outputs["ApiUrl"]["Value"]).startswith(scheme)
    assert outputs["TelemetryTopic"]["Value"] == "telemetry.raw"
    assert outputs["AnomalyTopic"]["Value"] == "telemetry.anomalies"
    assert outputs["DlqTopic"]["Value"] == "telemetry.dlq"
    assert outputs["AlertTopic"]["Value"] == "telemetry.alerts"
    assert {"KafkaBootstrapBrokers", "ApiKeysSecretArn"} <= set(outputs)


def test_msk_mode(syntheses: dict[str, Synthesis], mode: str) -> None:
    """create builds an IAM-only TLS cluster; import reads its bootstrap brokers from SSM."""
    synthesis = syntheses[mode]
    clusters = synthesis.of_type("AWS::MSK::Cluster")
    (worker,) = [c for n, c in app_containers(synthesis).items() if n == "worker"]
    bootstrap = {e["Name"]: e["Value"] for e in worker["Environment"]}["KAFKA_BOOTSTRAP_SERVERS"]
    if mode == "create":
        (cluster,) = clusters.values()
        properties = cluster["Properties"]
        assert properties["ClientAuthentication"] == {
            "Sasl": {"Iam": {"Enabled": True}},
            "Unauthenticated": {"Enabled": False},
        }
        assert properties["EncryptionInfo"]["EncryptionInTransit"] == {
            "ClientBroker": "TLS",
            "InCluster": True,
        }
        assert properties["NumberOfBrokerNodes"] == 2
        assert bootstrap["Fn::GetAtt"][1] == "BootstrapBrokerStringSaslIam"
    else:
        assert clusters == {}
        parameters = synthesis.template["Parameters"]
        ssm = [
            p["Default"]
            for p in parameters.values()
            if p["Type"].startswith("AWS::SSM::Parameter")
            and not p["Default"].startswith("/cdk-bootstrap/")  # the bootstrap stack's version
        ]
        assert ssm == ["/fleet/msk/bootstrap-brokers"]
        assert "Ref" in bootstrap
        template(synthesis).has_resource_properties(
            "AWS::EC2::SecurityGroupIngress",
            {"GroupId": "sg-0123456789abcdef0", "FromPort": 9098, "ToPort": 9098},
        )
