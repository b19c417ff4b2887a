"""The api's service: Fargate tasks behind a public Application Load Balancer."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3

from stacks.config import DeployConfig
from stacks.nag import acknowledge


def api_service(
    stack: Stack, config: DeployConfig, cluster: ecs.Cluster, task: ecs.FargateTaskDefinition
) -> ecs_patterns.ApplicationLoadBalancedFargateService:
    """The api's Fargate service behind a public ALB: listeners, health check, access logs."""
    certificate = (
        acm.Certificate.from_certificate_arn(stack, "Certificate", config.certificate_arn)
        if config.certificate_arn
        else None
    )
    open_to_all = config.allowed_cidr == "0.0.0.0/0"
    api = ecs_patterns.ApplicationLoadBalancedFargateService(
        stack,
        "Api",
        cluster=cluster,
        task_definition=task,
        # No desired count: a deploy would reset it; auto scaling keeps it in its range.
        public_load_balancer=True,
        open_listener=open_to_all,
        certificate=certificate,
        protocol=elbv2.ApplicationProtocol.HTTPS if certificate else elbv2.ApplicationProtocol.HTTP,
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
        stack,
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
