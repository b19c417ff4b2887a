"""The stack's network: the VPC its services and MSK live in."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs

from stacks.config import DeployConfig


def network(stack: Stack, config: DeployConfig, retention: logs.RetentionDays) -> ec2.IVpc:
    """The VPC: an existing one (``-c vpc_id``), or two AZs with one NAT and REJECT flow logs."""
    if config.vpc_id:
        # An existing VPC (e.g. the one an imported MSK cluster lives in). Needs AWS
        # credentials at synth: the lookup is cached in cdk.context.json.
        return ec2.Vpc.from_lookup(stack, "Vpc", vpc_id=config.vpc_id)
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=2,
        nat_gateways=1,
        subnet_configuration=[
            ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
            ec2.SubnetConfiguration(
                name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
            ),
        ],
    )
    vpc.add_flow_log(
        "FlowLog",
        destination=ec2.FlowLogDestination.to_cloud_watch_logs(
            logs.LogGroup(stack, "FlowLogs", retention=retention)
        ),
        # Rejected traffic only: what security reviews ask for, at a fraction of ALL's volume.
        traffic_type=ec2.FlowLogTrafficType.REJECT,
    )
    return vpc
