"""The model registry's storage: an EFS file system and the access point both services mount."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs

from stacks.config import APP_GID, APP_UID


def model_registry(stack: Stack, vpc: ec2.IVpc) -> tuple[efs.FileSystem, efs.AccessPoint]:
    """The model registry's encrypted EFS file system (kept on delete) and its access point."""
    file_system = efs.FileSystem(
        stack,
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
