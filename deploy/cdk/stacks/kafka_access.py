"""The worker's MSK authorization: IAM statements for its cluster, topics and group."""

from __future__ import annotations

from aws_cdk import aws_iam as iam

from stacks.config import DeployConfig
from stacks.kafka import Kafka


def grant_kafka(role: iam.IRole, kafka: Kafka, config: DeployConfig) -> None:
    """Least privilege for the worker: its cluster, its three topics, its group."""
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
