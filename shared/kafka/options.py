"""Kafka connection options, one source for every client in the project.

``client_options`` gives the keyword arguments of aiokafka's producers, consumers and admin
client; ``broker_options`` gives the same for FastStream's ``KafkaBroker``. Supported:
PLAINTEXT, SSL, SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512, and MSK IAM (SASL OAUTHBEARER
with tokens signed by ``aws-msk-iam-sasl-signer-python``).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.abc import AbstractTokenProvider

from shared.errors import ConfigurationError
from shared.settings import SaslMechanism, SecurityProtocol, Settings


class MskIamTokenProvider(AbstractTokenProvider):  # type: ignore[misc]  # aiokafka ships no types
    """OAUTHBEARER tokens for MSK IAM, signed with the task's AWS credentials."""

    def __init__(self, region: str) -> None:
        self.region = region

    async def token(self) -> str:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        # Signing reads credentials (possibly over HTTP from the ECS agent): keep it off the loop.
        token, _expiry_ms = await asyncio.to_thread(
            MSKAuthTokenProvider.generate_auth_token, self.region
        )
        return str(token)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context when the protocol uses TLS, else ``None``."""
    if settings.kafka_security_protocol not in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        return None
    cafile = str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    return ssl.create_default_context(cafile=cafile)


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and the admin client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id,
        "security_protocol": settings.kafka_security_protocol.value,
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    mechanism = settings.kafka_sasl_mechanism
    if mechanism is None or not settings.kafka_security_protocol.value.startswith("SASL"):
        return options
    if mechanism is SaslMechanism.AWS_MSK_IAM:
        region = settings.aws_region
        if not region:
            raise ConfigurationError("AWS_REGION must be set for KAFKA_SASL_MECHANISM=AWS_MSK_IAM")
        options["sasl_mechanism"] = "OAUTHBEARER"
        options["sasl_oauth_token_provider"] = MskIamTokenProvider(region)
        return options
    password = settings.kafka_sasl_password
    options["sasl_mechanism"] = mechanism.value
    options["sasl_plain_username"] = settings.kafka_sasl_username
    options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def broker_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for FastStream's ``KafkaBroker`` (it takes aiokafka's names)."""
    options = client_options(settings)
    # KafkaBroker has no ``security_protocol`` or ``ssl_context`` of its own; it takes them
    # through ``security``. Build the matching FastStream security object.
    from faststream.security import (
        BaseSecurity,
        SASLOAuthBearer,
        SASLPlaintext,
        SASLScram256,
        SASLScram512,
    )

    protocol = options.pop("security_protocol")
    context = options.pop("ssl_context", None)
    use_ssl = protocol in ("SSL", "SASL_SSL")
    mechanism = options.pop("sasl_mechanism", None)
    username = options.pop("sasl_plain_username", None)
    password = options.pop("sasl_plain_password", None)
    security: BaseSecurity | None
    if mechanism is None:
        security = BaseSecurity(ssl_context=context, use_ssl=use_ssl) if use_ssl else None
    elif mechanism == "OAUTHBEARER":
        security = SASLOAuthBearer(ssl_context=context, use_ssl=use_ssl)
    else:
        kind = {
            "PLAIN": SASLPlaintext,
            "SCRAM-SHA-256": SASLScram256,
            "SCRAM-SHA-512": SASLScram512,
        }
        security = kind[mechanism](username, password, ssl_context=context, use_ssl=use_ssl)
    options["security"] = security
    return options
