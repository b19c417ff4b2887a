"""The one-line reasons for a Kafka refusal: which kind it is, and the error's own words."""

from __future__ import annotations

import ssl

from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)

from shared.kafka.diagnosis import describe


def test_authorization_errors_name_a_missing_acl() -> None:
    """Topic, group and cluster authorization errors read as a missing ACL or IAM permission."""
    for error in (
        TopicAuthorizationFailedError("telemetry.raw"),
        GroupAuthorizationFailedError(),
        ClusterAuthorizationFailedError(),
    ):
        reason = describe(error)
        assert reason.startswith("Kafka authorization failed (a missing ACL or IAM permission)")
        assert type(error).__name__ in reason


def test_a_refused_sasl_login_names_authentication() -> None:
    """A SASL refusal names authentication and keeps the broker's words."""
    reason = describe(SaslAuthenticationFailed("invalid credentials with SASL mechanism SCRAM"))
    assert reason.startswith("Kafka authentication failed")
    assert "invalid credentials" in reason


def test_a_tls_failure_names_tls() -> None:
    """An SSL error (e.g. an unknown CA) reads as a TLS failure."""
    assert describe(ssl.SSLCertVerificationError("certificate verify failed")).startswith(
        "TLS with Kafka failed"
    )


def test_other_errors_keep_their_words_on_one_line() -> None:
    """Anything else is its own message, on one line and bounded."""
    reason = describe(KafkaConnectionError("Unable to\n bootstrap " + "x" * 400))
    assert "\n" not in reason and len(reason) <= 300
