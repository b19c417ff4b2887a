"""The production stack: the api behind an ALB and the worker, both on Fargate, sharing EFS.

::

    internet ─► ALB (:80, or :443 with -c certificate_arn) ─► api tasks (:8000)  ─┐
                                                  (read-only) │                   ├─► EFS /models
    MSK (SASL/IAM, :9098) ◄───────────────────────────────────┴ worker tasks (:8001) ─┘ (access point,
                                                                                      uid/gid 10001)

Both task definitions run the same image (``python -m api`` / ``python -m consumer``) with an
ADOT collector sidecar that forwards OTLP traces to X-Ray. Secrets come from Secrets Manager
as ECS ``secrets``; nothing secret is in the task definitions' environment.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.api_service import api_service
from stacks.config import API_PORT, CONSUMER_PORT, MODEL_DIR, OTLP_ENDPOINT, DeployConfig
from stacks.kafka import Kafka
from stacks.kafka_access import grant_kafka, grant_kafka_read
from stacks.network import network
from stacks.scaling import scaling
from stacks.secrets import secrets
from stacks.storage import model_registry
from stacks.tasks import container_image, task_definition


class VehicleAnomalyStack(Stack):
    """VPC, ECS cluster, EFS model registry, MSK (created or imported), api and worker."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeployConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        retention: logs.RetentionDays = getattr(logs.RetentionDays, config.log_retention)
        # The parts are built on this stack itself, not in nested constructs, so every
        # resource keeps the logical id (and the deployed resource) it had.

        vpc = network(self, config, retention)
        cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        kafka = Kafka(self, "Kafka", config=config, vpc=vpc, log_retention=retention)
        file_system, access_point = model_registry(self, vpc)
        api_keys, signing_key = secrets(self, config)
        image = container_image(self, config)

        environment = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_brokers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "AWS_MSK_IAM",
            "AWS_REGION": self.region,
            "TELEMETRY_TOPIC": config.telemetry_topic,
            "ANOMALY_TOPIC": config.anomaly_topic,
            "DLQ_TOPIC": config.dlq_topic,
            "ALERT_TOPIC": config.alert_topic,
            "CONSUMER_GROUP": config.consumer_group,
            "MODEL_DIR": MODEL_DIR,
            "API_PORT": str(API_PORT),
            "CONSUMER_PORT": str(CONSUMER_PORT),
            "OTEL_EXPORTER_OTLP_ENDPOINT": OTLP_ENDPOINT,
            "LOG_FORMAT": "json",
        }
        signing = ecs.Secret.from_secrets_manager(signing_key)

        # --- the api: ALB-fronted, trains new versions (writes to EFS) ------------------------
        api_task = task_definition(
            self,
            config,
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
        api = api_service(self, config, cluster, api_task)
        api.service.connections.allow_to(
            file_system, ec2.Port.tcp(2049), "NFS to the model registry"
        )
        # POST /ingest/from-topic reads the raw topic (and the verdicts, to leave out flagged
        # records): read-only, no group.
        kafka.allow_from(api.service, "api")
        grant_kafka_read(api_task.task_role, kafka, config)

        # --- the worker: no load balancer, reads models, talks to MSK -----------------------
        worker_task = task_definition(
            self,
            config,
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
        kafka.allow_from(worker, "worker")
        grant_kafka(worker_task.task_role, kafka, config)

        scaling(config, api, worker, kafka)
        self._outputs(api, kafka)
        CfnOutput(
            self,
            "ApiKeysSecretArn",
            value=api_keys.secret_arn,
            description="Secrets Manager secret holding API_KEYS (comma-separated)",
        )

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
        CfnOutput(self, "AlertTopic", value=config.alert_topic)
        CfnOutput(self, "ConsumerGroup", value=config.consumer_group)
        CfnOutput(self, "KafkaClusterArn", value=kafka.cluster_arn)
        CfnOutput(self, "KafkaBootstrapBrokers", value=kafka.bootstrap_brokers)
