"""The MSK cluster the worker talks to: created by the stack, or an existing one imported.

``-c msk=create`` builds a provisioned cluster (L1 ``CfnCluster``) with IAM client
authentication only, TLS everywhere and broker logs in CloudWatch; ``-c msk=import`` takes an
existing cluster's ARN (``-c msk_cluster_arn=...``) and reads its bootstrap brokers from an SSM
parameter at deploy time. Either way the stack gets the same four things: the cluster ARN, its
name and uuid (the parts of topic and group ARNs), and the SASL/IAM bootstrap string.
"""

from __future__ import annotations

from aws_cdk import Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_msk as msk
from aws_cdk import aws_ssm as ssm
from aws_cdk import custom_resources as cr
from constructs import Construct

from stacks.config import DeployConfig
from stacks.nag import acknowledge

# MSK's port for SASL/IAM clients over TLS.
MSK_IAM_PORT = 9098


class Kafka(Construct):
    """The cluster's identity and endpoints, whichever way it came."""

    cluster_arn: str
    cluster_name: str
    cluster_uuid: str
    bootstrap_brokers: str
    security_group: ec2.ISecurityGroup | None

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        vpc: ec2.IVpc,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        if config.msk == "create":
            self._create(config, vpc, log_retention)
        else:
            self._import(config)

    # -- -c msk=create ---------------------------------------------------------------------

    def _create(
        self, config: DeployConfig, vpc: ec2.IVpc, log_retention: logs.RetentionDays
    ) -> None:
        subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="MSK brokers: SASL/IAM over TLS from the worker and the api only",
            allow_all_outbound=False,
        )
        broker_logs = logs.LogGroup(self, "BrokerLogs", retention=log_retention)
        cluster = msk.CfnCluster(
            self,
            "Cluster",
            cluster_name=config.msk_cluster_name,
            kafka_version=config.msk_kafka_version,
            # One broker per AZ (the VPC has two); MSK then defaults to replication factor 2.
            number_of_broker_nodes=len(subnets.subnet_ids),
            broker_node_group_info=msk.CfnCluster.BrokerNodeGroupInfoProperty(
                instance_type=config.msk_broker_instance_type,
                client_subnets=subnets.subnet_ids,
                security_groups=[self.security_group.security_group_id],
                storage_info=msk.CfnCluster.StorageInfoProperty(
                    ebs_storage_info=msk.CfnCluster.EBSStorageInfoProperty(
                        volume_size=config.msk_broker_volume_gib
                    )
                ),
            ),
            client_authentication=msk.CfnCluster.ClientAuthenticationProperty(
                sasl=msk.CfnCluster.SaslProperty(iam=msk.CfnCluster.IamProperty(enabled=True)),
                unauthenticated=msk.CfnCluster.UnauthenticatedProperty(enabled=False),
            ),
            encryption_info=msk.CfnCluster.EncryptionInfoProperty(
                encryption_in_transit=msk.CfnCluster.EncryptionInTransitProperty(
                    client_broker="TLS", in_cluster=True
                )
            ),
            logging_info=msk.CfnCluster.LoggingInfoProperty(
                broker_logs=msk.CfnCluster.BrokerLogsProperty(
                    cloud_watch_logs=msk.CfnCluster.CloudWatchLogsProperty(
                        enabled=True, log_group=broker_logs.log_group_name
                    )
                )
            ),
            # SumOffsetLag (the worker's scaling metric) is a DEFAULT-level metric.
            enhanced_monitoring="DEFAULT",
        )
        self.cluster_arn = cluster.attr_arn
        self.cluster_name = config.msk_cluster_name
        # The ARN ends in cluster/<name>/<uuid>; the uuid exists only once the cluster does.
        self.cluster_uuid = Fn.select(2, Fn.split("/", cluster.attr_arn))

        # CloudFormation exposes no bootstrap brokers for MSK: ask the Kafka API at deploy time.
        lookup = cr.AwsCustomResource(
            self,
            "BootstrapBrokers",
            on_update=cr.AwsSdkCall(
                service="Kafka",
                action="getBootstrapBrokers",
                parameters={"ClusterArn": cluster.attr_arn},
                physical_resource_id=cr.PhysicalResourceId.of(cluster.attr_arn),
                output_paths=["BootstrapBrokerStringSaslIam"],
            ),
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(resources=[cluster.attr_arn]),
            install_latest_aws_sdk=False,
        )
        self.bootstrap_brokers = lookup.get_response_field("BootstrapBrokerStringSaslIam")
        stack = Stack.of(self)
        provider = stack.node.find_child("AWS679f53fac002430cb0da5b7982bd2287")
        acknowledge(
            provider,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's AwsCustomResource provider (one Lambda, run only at deploy time to read the "
            "MSK bootstrap brokers, which CloudFormation does not expose) writes its own logs "
            "through the AWS-managed basic execution policy.",
        )

    # -- -c msk=import ---------------------------------------------------------------------

    def _import(self, config: DeployConfig) -> None:
        imported = config.imported_cluster()
        self.cluster_arn = imported.arn
        self.cluster_name = imported.name
        self.cluster_uuid = imported.uuid
        # Resolved by CloudFormation at deploy time (an SSM parameter type), not at synth.
        self.bootstrap_brokers = ssm.StringParameter.value_for_string_parameter(
            self, config.msk_bootstrap_ssm_parameter
        )
        self.security_group = (
            ec2.SecurityGroup.from_security_group_id(
                self, "SecurityGroup", config.msk_security_group_id, mutable=True
            )
            if config.msk_security_group_id
            else None
        )

    # -- ARNs for IAM (arn:aws:kafka:region:account:topic/<name>/<uuid>/<topic>) -------------

    def _arn(self, resource: str, name: str) -> str:
        stack = Stack.of(self)
        return Fn.join(
            "",
            [
                f"arn:{stack.partition}:kafka:{stack.region}:{stack.account}:{resource}/",
                self.cluster_name,
                "/",
                self.cluster_uuid,
                f"/{name}",
            ],
        )

    def topic_arn(self, topic: str) -> str:
        return self._arn("topic", topic)

    def group_arn(self, group: str) -> str:
        return self._arn("group", group)

    def allow_from(self, peer: ec2.IConnectable, who: str) -> None:
        """Let ``peer`` reach the brokers' SASL/IAM port (when the stack knows their group)."""
        if self.security_group is not None:
            self.security_group.connections.allow_from(
                peer, ec2.Port.tcp(MSK_IAM_PORT), f"SASL/IAM over TLS from the {who}"
            )
