"""The production stack: the api behind an ALB and the worker, both on Fargate, sharing EFS.

::

    internet ─► ALB (:80, or :443 with -c certificate_arn) ─► api tasks (:8000)  ─┐
                                                                                 ├─► EFS /models
    MSK (SASL/IAM, :9098) ◄──────────────────────────────── worker tasks (:8001) ─┘   (access point,
                                                                                      uid/gid 10001)

Both task definitions run the same image (``python -m api`` / ``python -m consumer``) with an
ADOT collector sidecar that forwards OTLP traces to X-Ray. Secrets come from Secrets Manager
as ECS ``secrets``; nothing secret is in the task definitions' environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_efs as efs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.config import (
    API_PORT,
    APP_GID,
    APP_UID,
    CONSUMER_PORT,
    MODEL_DIR,
    OTLP_ENDPOINT,
    DeployConfig,
)
from stacks.kafka import Kafka
from stacks.nag import acknowledge

REPO_ROOT = Path(__file__).resolve().parents[3]
MODELS_VOLUME = "models"
COLLECTOR = "otel-collector"


def _probe(port: int) -> list[str]:
    """A container health check: GET /healthz on ``port`` with Python (no curl in the image)."""
    return [
        "CMD",
        "python",
        "-c",
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz', timeout=4)",
    ]


class VehicleAnomalyStack(Stack):
    """VPC, ECS cluster, EFS model registry, MSK (created or imported), api and worker."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeployConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        retention: logs.RetentionDays = getattr(logs.RetentionDays, config.log_retention)

        vpc = self._network(retention)
        cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        kafka = Kafka(self, "Kafka", config=config, vpc=vpc, log_retention=retention)
        file_system, access_point = self._model_registry(vpc)
        api_keys, signing_key = self._secrets()
        image = self._image()

        environment = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_brokers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM",
            "AWS_REGION": self.region,
            "TELEMETRY_TOPIC": config.telemetry_topic,
            "ANOMALY_TOPIC": config.anomaly_topic,
            "DLQ_TOPIC": config.dlq_topic,
            "CONSUMER_GROUP": config.consumer_group,
            "MODEL_DIR": MODEL_DIR,
            "API_PORT": str(API_PORT),
            "CONSUMER_PORT": str(CONSUMER_PORT),
            "OTEL_EXPORTER_OTLP_ENDPOINT": OTLP_ENDPOINT,
            "LOG_FORMAT": "json",
        }
        signing = ecs.Secret.from_secrets_manager(signing_key)

        # --- the api: ALB-fronted, trains new versions (writes to EFS) ------------------------
        api_task = self._task_definition(
            "Api",
            image=image,
            command=["python", "-m", "api"],
            port=API_PORT,
            cpu=config.api_cpu,
            memory=config.api_memory_mib,
            environment=environment,
            secrets={
                "API_KEYS": ecs.Secret.from_secrets_manager(api_keys),
                "MODEL_SIGNING_KEY": signing,
            },
            file_system=file_system,
            access_point=access_point,
            read_only_models=False,
            retention=retention,
        )
        api = self._api_service(cluster, api_task)
        api.service.connections.allow_to(
            file_system, ec2.Port.tcp(2049), "NFS to the model registry"
        )

        # --- the worker: no load balancer, reads models, talks to MSK -----------------------
        worker_task = self._task_definition(
            "Worker",
            image=image,
            command=["python", "-m", "consumer"],
            port=CONSUMER_PORT,
            cpu=config.worker_cpu,
            memory=config.worker_memory_mib,
            environment=environment,
            secrets={"MODEL_SIGNING_KEY": signing},
            file_system=file_system,
            access_point=access_point,
            read_only_models=True,
            retention=retention,
        )
        worker = ecs.FargateService(
            self,
            "WorkerService",
            cluster=cluster,
            task_definition=worker_task,
            # No desired count: a deploy would reset it; auto scaling keeps it in its range.
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        )
        worker.connections.allow_to(file_system, ec2.Port.tcp(2049), "NFS to the model registry")
        kafka.allow_from(worker)
        self._grant_kafka(worker_task.task_role, kafka)

        self._scaling(api, worker, kafka)
        self._outputs(api, kafka)
        CfnOutput(
            self,
            "ApiKeysSecretArn",
            value=api_keys.secret_arn,
            description="Secrets Manager secret holding API_KEYS (comma-separated)",
        )

    # -- network ----------------------------------------------------------------------------

    def _network(self, retention: logs.RetentionDays) -> ec2.IVpc:
        if self.config.vpc_id:
            # An existing VPC (e.g. the one an imported MSK cluster lives in). Needs AWS
            # credentials at synth: the lookup is cached in cdk.context.json.
            return ec2.Vpc.from_lookup(self, "Vpc", vpc_id=self.config.vpc_id)
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
            ],
        )
        vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "FlowLogs", retention=retention)
            ),
            # Rejected traffic only: what security reviews ask for, at a fraction of ALL's volume.
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        return vpc

    # -- model registry: EFS + access point ------------------------------------------------

    def _model_registry(self, vpc: ec2.IVpc) -> tuple[efs.FileSystem, efs.AccessPoint]:
        file_system = efs.FileSystem(
            self,
            "Models",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            encrypted=True,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            enable_automatic_backups=True,
            # Model versions are the service's state: keep them when the stack goes.
            removal_policy=RemovalPolicy.RETAIN,
        )
        access_point = file_system.add_access_point(
            "ModelsAccessPoint",
            path="/models",
            # Created on first mount, owned by the image's user, like the image's MODEL_DIR.
            create_acl=efs.Acl(owner_uid=str(APP_UID), owner_gid=str(APP_GID), permissions="750"),
            # Every NFS operation through this access point runs as that user, whatever the
            # container's user is.
            posix_user=efs.PosixUser(uid=str(APP_UID), gid=str(APP_GID)),
        )
        return file_system, access_point

    # -- secrets ----------------------------------------------------------------------------

    def _secrets(self) -> tuple[secretsmanager.ISecret, secretsmanager.ISecret]:
        config = self.config
        if config.api_keys_secret_arn:
            api_keys = secretsmanager.Secret.from_secret_complete_arn(
                self, "ApiKeys", config.api_keys_secret_arn
            )
        else:
            api_keys = secretsmanager.Secret(
                self,
                "ApiKeys",
                description="API_KEYS of the vehicle-anomaly api: comma-separated keys",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=True, password_length=40
                ),
            )
            acknowledge(
                api_keys,
                "AwsSolutions-SMG4",
                "API keys are handed to clients; rotating them is a coordinated change (add the "
                "new key next to the old one, move the clients, drop the old one), not a "
                "Lambda on a schedule.",
            )
        if config.signing_key_secret_arn:
            signing_key = secretsmanager.Secret.from_secret_complete_arn(
                self, "ModelSigningKey", config.signing_key_secret_arn
            )
        else:
            signing_key = secretsmanager.Secret(
                self,
                "ModelSigningKey",
                description="MODEL_SIGNING_KEY: HMAC key that signs and verifies model versions",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=True, password_length=64
                ),
                removal_policy=RemovalPolicy.RETAIN,
            )
            acknowledge(
                signing_key,
                "AwsSolutions-SMG4",
                "Every stored model version is signed with this key; an automatic rotation "
                "would make the workers refuse all of them. It is rotated by re-signing the "
                "registry in a planned change.",
            )
        return api_keys, signing_key

    # -- image ------------------------------------------------------------------------------

    def _image(self) -> ecs.ContainerImage:
        config = self.config
        if config.image:
            credentials = (
                secretsmanager.Secret.from_secret_complete_arn(
                    self, "ImagePullCredentials", config.image_credentials_secret_arn
                )
                if config.image_credentials_secret_arn
                else None
            )
            return ecs.ContainerImage.from_registry(config.image, credentials=credentials)
        # No -c image=...: build the repository's Dockerfile at deploy time (needs Docker).
        return ecs.ContainerImage.from_asset(str(REPO_ROOT), file="Dockerfile")

    # -- task definitions -------------------------------------------------------------------

    def _task_definition(
        self,
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
        task = ecs.FargateTaskDefinition(
            self,
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
                    "StringEquals": {
                        "elasticfilesystem:AccessPointArn": access_point.access_point_arn
                    },
                    "Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"},
                },
            )
        )

        log_group = logs.LogGroup(
            self, f"{name}Logs", retention=retention, removal_policy=RemovalPolicy.DESTROY
        )
        container = task.add_container(
            name.lower(),
            image=image,
            command=command,
            essential=True,
            user=f"{APP_UID}:{APP_GID}",
            environment=environment,
            secrets=secrets,
            port_mappings=[ecs.PortMapping(container_port=port)],
            logging=ecs.LogDrivers.aws_logs(stream_prefix=name.lower(), log_group=log_group),
            health_check=ecs.HealthCheck(
                command=_probe(port),
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
            )
        )

        # ADOT collector: OTLP in on localhost:4317 (gRPC) / 4318 (HTTP), X-Ray out.
        collector = task.add_container(
            COLLECTOR,
            image=ecs.ContainerImage.from_registry(self.config.adot_image),
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
        if not self.config.image:
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

    # -- the api's service and load balancer ------------------------------------------------

    def _api_service(
        self, cluster: ecs.Cluster, task: ecs.FargateTaskDefinition
    ) -> ecs_patterns.ApplicationLoadBalancedFargateService:
        config = self.config
        certificate = (
            acm.Certificate.from_certificate_arn(self, "Certificate", config.certificate_arn)
            if config.certificate_arn
            else None
        )
        open_to_all = config.allowed_cidr == "0.0.0.0/0"
        api = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "Api",
            cluster=cluster,
            task_definition=task,
            # No desired count: a deploy would reset it; auto scaling keeps it in its range.
            public_load_balancer=True,
            open_listener=open_to_all,
            certificate=certificate,
            protocol=elbv2.ApplicationProtocol.HTTPS
            if certificate
            else elbv2.ApplicationProtocol.HTTP,
            redirect_http=bool(certificate),
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS if certificate else None,
            task_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=Duration.seconds(60),
            # A training request (POST /ingest) may take a while.
            idle_timeout=Duration.seconds(120),
        )
        listener_port = 443 if certificate else 80
        if not open_to_all:
            api.load_balancer.connections.allow_from(
                ec2.Peer.ipv4(config.allowed_cidr), ec2.Port.tcp(listener_port), "api clients"
            )
            if certificate:
                api.load_balancer.connections.allow_from(
                    ec2.Peer.ipv4(config.allowed_cidr), ec2.Port.tcp(80), "redirect to HTTPS"
                )
        api.target_group.configure_health_check(
            path="/healthz",
            healthy_http_codes="200",
            interval=Duration.seconds(15),
            timeout=Duration.seconds(5),
            healthy_threshold_count=2,
            unhealthy_threshold_count=3,
        )
        # /metrics answers without an API key (for scrapers inside the VPC); not to the internet.
        api.listener.add_action(
            "HideMetrics",
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns(["/metrics", "/metrics/*"])],
            action=elbv2.ListenerAction.fixed_response(404, content_type="text/plain"),
        )
        # Just above uvicorn's 25 s graceful shutdown: requests in flight finish.
        api.target_group.set_attribute("deregistration_delay.timeout_seconds", "30")
        api.load_balancer.set_attribute("routing.http.drop_invalid_header_fields.enabled", "true")

        access_logs = s3.Bucket(
            self,
            "AlbAccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only kind ALB log delivery supports
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        api.load_balancer.log_access_logs(access_logs, prefix="alb")
        acknowledge(
            access_logs,
            "AwsSolutions-S1",
            "This bucket receives the ALB's access logs; logging its own accesses into another "
            "bucket would only move the question one bucket further.",
        )
        if open_to_all:
            acknowledge(
                api.load_balancer,
                "AwsSolutions-EC23",
                "The api is a public HTTP endpoint for fleet pipelines: training, scoring and "
                "model routes require an API key and are rate limited, and the ALB does not "
                "forward /metrics. Narrow it with -c allowed_cidr=<cidr>.",
            )
        return api

    # -- MSK authorization ------------------------------------------------------------------

    def _grant_kafka(self, role: iam.IRole, kafka: Kafka) -> None:
        """Least privilege for the worker: its cluster, its three topics, its group."""
        config = self.config
        statements = [
            iam.PolicyStatement(
                sid="KafkaCluster",
                actions=[
                    "kafka-cluster:Connect",
                    "kafka-cluster:DescribeCluster",
                    # the worker's producer is idempotent (enable_idempotence=True)
                    "kafka-cluster:WriteDataIdempotently",
                ],
                resources=[kafka.cluster_arn],
            ),
            iam.PolicyStatement(
                sid="KafkaReadTelemetry",
                actions=["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                resources=[kafka.topic_arn(config.telemetry_topic)],
            ),
            iam.PolicyStatement(
                sid="KafkaWriteVerdictsAndDeadLetters",
                actions=["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
                resources=[
                    kafka.topic_arn(config.anomaly_topic),
                    kafka.topic_arn(config.dlq_topic),
                ],
            ),
            iam.PolicyStatement(
                sid="KafkaConsumerGroup",
                actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                resources=[kafka.group_arn(config.consumer_group)],
            ),
        ]
        for statement in statements:
            role.add_to_principal_policy(statement)

    # -- scaling ----------------------------------------------------------------------------

    def _scaling(
        self,
        api: ecs_patterns.ApplicationLoadBalancedFargateService,
        worker: ecs.FargateService,
        kafka: Kafka,
    ) -> None:
        config = self.config
        api_scaling = api.service.auto_scale_task_count(
            min_capacity=config.api_min_capacity, max_capacity=config.api_max_capacity
        )
        api_scaling.scale_on_cpu_utilization(
            "ApiCpu",
            target_utilization_percent=60,
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(300),
        )
        api_scaling.scale_on_request_count(
            "ApiRequests",
            requests_per_target=config.api_requests_per_target,
            target_group=api.target_group,
            scale_out_cooldown=Duration.seconds(60),
            scale_in_cooldown=Duration.seconds(300),
        )

        # The worker scales on its consumer lag: more partitions' worth of backlog, more
        # consumers, up to one per partition (a consumer beyond that gets no partition).
        worker_scaling = worker.auto_scale_task_count(
            min_capacity=config.worker_min_capacity, max_capacity=config.worker_max_capacity
        )
        lag = cloudwatch.Metric(
            namespace="AWS/Kafka",
            metric_name="SumOffsetLag",
            dimensions_map={
                "Cluster Name": kafka.cluster_name,
                "Consumer Group": config.consumer_group,
                "Topic": config.telemetry_topic,
            },
            statistic="Maximum",
            period=Duration.minutes(1),
        )
        step = config.worker_lag_scale_out
        worker_scaling.scale_on_metric(
            "WorkerLag",
            metric=lag,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            scaling_steps=[
                appscaling.ScalingInterval(upper=step // 10, change=-1),
                appscaling.ScalingInterval(lower=step, upper=step * 10, change=+1),
                appscaling.ScalingInterval(lower=step * 10, change=+2),
            ],
            evaluation_periods=3,
            datapoints_to_alarm=2,
            cooldown=Duration.seconds(180),
        )
        # Fallback while lag metrics are missing (MSK emits none for an unstable group).
        worker_scaling.scale_on_cpu_utilization(
            "WorkerCpu",
            target_utilization_percent=70,
            scale_out_cooldown=Duration.seconds(120),
            scale_in_cooldown=Duration.seconds(300),
        )

    # -- outputs ----------------------------------------------------------------------------

    def _outputs(
        self, api: ecs_patterns.ApplicationLoadBalancedFargateService, kafka: Kafka
    ) -> None:
        config = self.config
        scheme = "https" if config.certificate_arn else "http"
        CfnOutput(
            self,
            "ApiUrl",
            value=f"{scheme}://{api.load_balancer.load_balancer_dns_name}",
            description="Base URL of the api (POST /ingest, POST /score, GET /models, ...)",
        )
        CfnOutput(self, "TelemetryTopic", value=config.telemetry_topic)
        CfnOutput(self, "AnomalyTopic", value=config.anomaly_topic)
        CfnOutput(self, "DlqTopic", value=config.dlq_topic)
        CfnOutput(self, "ConsumerGroup", value=config.consumer_group)
        CfnOutput(self, "KafkaClusterArn", value=kafka.cluster_arn)
        CfnOutput(self, "KafkaBootstrapBrokers", value=kafka.bootstrap_brokers)
