"""Why Kafka refused a client, in words an operator can act on.

aiokafka reports a failed bootstrap as ``KafkaConnectionError("Unable to bootstrap from
...")`` and only logs the cause (a wrong password, a certificate the CA does not vouch for).
:func:`connection_problem` opens one connection to each bootstrap address, the way aiokafka
does, to find that cause; :func:`describe` names an error's kind: authentication, a missing
ACL (authorization), TLS, or the network.
"""

from __future__ import annotations

import ssl
from typing import Any

from shared.kafka.aiokafka_compat import open_connection
from shared.kafka.options import client_options
from shared.settings import Settings

AUTHORIZATION_ERRORS = (
    "TopicAuthorizationFailedError",
    "GroupAuthorizationFailedError",
    "ClusterAuthorizationFailedError",
    "TransactionalIdAuthorizationFailed",
)


def error_text(error: BaseException) -> str:
    """An error's message on one line, at most 300 characters (its class name when empty)."""
    text = " ".join(str(error).split())
    name = type(error).__name__
    if not text or text == name:
        return name
    return text if len(text) < 300 else text[:297] + "..."


def refusal_kind(error: BaseException) -> str | None:
    """``authorization``, ``authentication``, ``tls``, or ``None`` for any other error."""
    name = type(error).__name__
    if name in AUTHORIZATION_ERRORS:
        return "authorization"
    if name in ("SaslAuthenticationFailed", "AuthenticationFailedError"):
        return "authentication"
    if isinstance(error, ssl.SSLError):
        return "tls"
    return None


_KINDS = {
    "authorization": "Kafka authorization failed (a missing ACL or IAM permission)",
    "authentication": "Kafka authentication failed (SASL user or password)",
    "tls": "TLS with Kafka failed",
}


def describe(error: BaseException) -> str:
    """One line naming what kind of refusal ``error`` is, with its own message."""
    kind = refusal_kind(error)
    return f"{_KINDS[kind]}: {error_text(error)}" if kind else error_text(error)


async def connection_problem(settings: Settings, timeout_ms: int = 10_000) -> str | None:
    """Why a client with ``settings`` cannot connect to any bootstrap address (``None``: it can)."""
    options: dict[str, Any] = client_options(settings)
    problems = []
    for address in str(options.pop("bootstrap_servers")).split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            connection = await open_connection(host, int(port), options, timeout_ms)
        except Exception as error:  # any refusal is the answer
            problems.append(describe(error))
            continue
        connection.close()
        return None
    return "; ".join(dict.fromkeys(problems)) or None
