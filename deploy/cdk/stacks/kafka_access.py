"""The services' MSK authorization: IAM statements for their cluster, topics and group.

The README's "Kafka security and MSK" section shows the same two policies; the stack's
assertion tests compare each task role with them.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from stacks.config import DeployConfig
from stacks.kafka import Kafka


def grant_kafka(role: iam.IRole, kafka: Kafka, config: DeployConfig) -> None:
    """Least privilege for the worker: its cluster, its four topics, its group."""
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
            sid="KafkaWriteVerdictsDeadLettersAlerts",
            actions=["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"],
            resources=[
                kafka.topic_arn(config.anomaly_topic),
                kafka.topic_arn(config.dlq_topic),
                kafka.topic_arn(config.alert_topic),
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


def grant_kafka_read(role: iam.IRole, kafka: Kafka, config: DeployConfig) -> None:
    """Read-only for the api (``POST /ingest/from-topic``): the raw and anomalies topics.

    It reads without a consumer group, so it needs no group permissions.
    """
    statements = [
        iam.PolicyStatement(
            sid="KafkaConnect", actions=["kafka-cluster:Connect"], resources=[kafka.cluster_arn]
        ),
        iam.PolicyStatement(
            sid="KafkaReadTelemetryAndVerdicts",
            actions=["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
            resources=[
                kafka.topic_arn(config.telemetry_topic),
                kafka.topic_arn(config.anomaly_topic),
            ],
        ),
    ]
    for statement in statements:
        role.add_to_principal_policy(statement)
