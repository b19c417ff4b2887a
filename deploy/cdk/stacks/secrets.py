"""The stack's secrets: the api's keys and the model signing key, in Secrets Manager."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_secretsmanager as secretsmanager

from stacks.config import DeployConfig
from stacks.nag import acknowledge


def secrets(
    stack: Stack, config: DeployConfig
) -> tuple[secretsmanager.ISecret, secretsmanager.ISecret]:
    """API_KEYS and MODEL_SIGNING_KEY in Secrets Manager: imported by ARN, or created."""
    if config.api_keys_secret_arn:
        api_keys = secretsmanager.Secret.from_secret_complete_arn(
            stack, "ApiKeys", config.api_keys_secret_arn
        )
    else:
        api_keys = secretsmanager.Secret(
            stack,
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
            stack, "ModelSigningKey", config.signing_key_secret_arn
        )
    else:
        signing_key = secretsmanager.Secret(
            stack,
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
