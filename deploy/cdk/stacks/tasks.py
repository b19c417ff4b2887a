"""The services' image and Fargate task definitions (the service container and an ADOT sidecar)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_efs as efs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager

from stacks.config import APP_GID, APP_UID, MODEL_DIR, DeployConfig
from stacks.nag import acknowledge

REPO_ROOT = Path(__file__).resolve().parents[3]
MODELS_VOLUME = "models"
# The containers' root filesystems are read-only; /tmp (the numba cache, temporary files) is
# task storage. The image declares VOLUME /tmp, so Fargate gives the volume the image's /tmp
# mode (1777) instead of root's 0755.
TMP_VOLUME = "tmp"
COLLECTOR = "otel-collector"


def probe(port: int) -> list[str]:
    """A container health check: GET /healthz on ``port`` with Python (no curl in the image)."""
    return [
        "CMD",
        "python",
        "-c",
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=4)",
    ]


def container_image(stack: Stack, config: DeployConfig) -> ecs.ContainerImage:
    """The image both services run: ``-c image=...`` from a registry, else the Dockerfile."""
    if config.image:
        credentials = (
            secretsmanager.Secret.from_secret_complete_arn(
                stack, "ImagePullCredentials", config.image_credentials_secret_arn
            )
            if config.image_credentials_secret_arn
            else None
        )
        return ecs.ContainerImage.from_registry(config.image, credentials=credentials)
    # No -c image=...: build the repository's Dockerfile at deploy time (needs Docker).
    return ecs.ContainerImage.from_asset(str(REPO_ROOT), file="Dockerfile")


def task_definition(
    stack: Stack,
    config: DeployConfig,
    name: str,
    *,
    image: ecs.ContainerImage,
    command: list[str],
    port: int,
    cpu: int,
    memory: int,
    environment: dict[str, str],
    secrets: dict[str, ecs.Secret],
    file_system: efs.FileSystem,
    access_point: efs.AccessPoint,
    read_only_models: bool,
    retention: logs.RetentionDays,
) -> ecs.FargateTaskDefinition:
    """A Fargate task: the service's container on the EFS volume, and the ADOT collector."""
    task = ecs.FargateTaskDefinition(
        stack,
        f"{name}Task",
        cpu=cpu,
        memory_limit_mib=memory,
        runtime_platform=ecs.RuntimePlatform(
            cpu_architecture=ecs.CpuArchitecture.X86_64,
            operating_system_family=ecs.OperatingSystemFamily.LINUX,
        ),
    )
    task.add_volume(
        name=MODELS_VOLUME,
        efs_volume_configuration=ecs.EfsVolumeConfiguration(
            file_system_id=file_system.file_system_id,
            transit_encryption="ENABLED",
            authorization_config=ecs.AuthorizationConfig(
                access_point_id=access_point.access_point_id, iam="ENABLED"
            ),
        ),
    )
    task.add_volume(name=TMP_VOLUME)
    # IAM authorization on the mount: the task role may mount through our access point
    # only; ClientWrite for the api (it publishes versions), not for the worker.
    actions = ["elasticfilesystem:ClientMount"]
    if not read_only_models:
        actions.append("elasticfilesystem:ClientWrite")
    task.add_to_task_role_policy(
        iam.PolicyStatement(
            actions=actions,
            resources=[file_system.file_system_arn],
            conditions={
                "StringEquals": {"elasticfilesystem:AccessPointArn": access_point.access_point_arn},
                "Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"},
            },
        )
    )

    log_group = logs.LogGroup(
        stack, f"{name}Logs", retention=retention, removal_policy=RemovalPolicy.DESTROY
    )
    container = task.add_container(
        name.lower(),
        image=image,
        command=command,
        essential=True,
        user=f"{APP_UID}:{APP_GID}",
        readonly_root_filesystem=True,
        environment=environment,
        secrets=secrets,
        port_mappings=[ecs.PortMapping(container_port=port)],
        logging=ecs.LogDrivers.aws_logs(stream_prefix=name.lower(), log_group=log_group),
        health_check=ecs.HealthCheck(
            command=probe(port),
            interval=Duration.seconds(15),
            timeout=Duration.seconds(5),
            retries=3,
            start_period=Duration.seconds(60),
        ),
        # uvicorn waits up to 25 s for requests in flight; the worker up to 15 s for its batch.
        stop_timeout=Duration.seconds(30),
    )
    container.add_mount_points(
        ecs.MountPoint(
            container_path=MODEL_DIR, source_volume=MODELS_VOLUME, read_only=read_only_models
        ),
        ecs.MountPoint(container_path="/tmp", source_volume=TMP_VOLUME, read_only=False),  # noqa: S108
    )

    # ADOT collector: OTLP in on localhost:4317 (gRPC) / 4318 (HTTP), X-Ray out.
    collector = task.add_container(
        COLLECTOR,
        image=ecs.ContainerImage.from_registry(config.adot_image),
        command=["--config=/etc/ecs/ecs-xray.yaml"],
        essential=False,
        cpu=64,
        memory_reservation_mib=128,
        logging=ecs.LogDrivers.aws_logs(stream_prefix=COLLECTOR, log_group=log_group),
        health_check=ecs.HealthCheck(
            command=["CMD", "/healthcheck"],
            interval=Duration.seconds(30),
            timeout=Duration.seconds(5),
            retries=3,
            start_period=Duration.seconds(10),
        ),
    )
    container.add_container_dependencies(
        ecs.ContainerDependency(
            container=collector, condition=ecs.ContainerDependencyCondition.START
        )
    )
    xray = iam.PolicyStatement(
        actions=[
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "xray:GetSamplingRules",
            "xray:GetSamplingTargets",
            "xray:GetSamplingStatisticSummaries",
        ],
        resources=["*"],
    )
    task.add_to_task_role_policy(xray)
    acknowledge(
        task.task_role,
        "AwsSolutions-IAM5[Resource::*]",
        "X-Ray's trace and sampling actions (PutTraceSegments, PutTelemetryRecords, "
        "GetSampling*) support no resource-level permissions; the ADOT sidecar needs them "
        "to export traces. No other statement of this role has a wildcard resource.",
    )
    if not config.image:
        acknowledge(
            task.execution_role,  # type: ignore[arg-type]  # always set for Fargate
            "AwsSolutions-IAM5[Resource::*]",
            "The image is a CDK asset in ECR: pulling it needs ecr:GetAuthorizationToken, "
            "which has no resource-level permissions. The pull actions themselves are "
            "scoped to the CDK assets repository.",
        )
    acknowledge(
        task,
        "AwsSolutions-ECS2",
        "The environment holds only non-secret configuration (topics, ports, MODEL_DIR, "
        "the MSK bootstrap string); API_KEYS and MODEL_SIGNING_KEY come from Secrets "
        "Manager as ECS secrets.",
    )
    return task
