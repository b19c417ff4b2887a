"""Auto scaling of the api and the worker."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns

from stacks.config import DeployConfig
from stacks.kafka import Kafka


def scaling(
    config: DeployConfig,
    api: ecs_patterns.ApplicationLoadBalancedFargateService,
    worker: ecs.FargateService,
    kafka: Kafka,
) -> None:
    """Auto scaling: the api on CPU and requests per target, the worker on its consumer lag."""
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
