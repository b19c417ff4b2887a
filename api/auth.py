"""API keys: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``, each with a role.

Admin keys come from ``API_KEYS`` and may do everything; read keys from ``API_READ_KEYS`` may
score, list and read reports (:func:`api.deps.admin_caller` answers 403 on the rest). A
presented key is compared with every configured key in constant time (``hmac.compare_digest``
on bytes, no early exit). A caller is known by its key's identity, a short hash, which is
what logs and the rate limiter see.

Failed logins are throttled per client address (:mod:`api.client_address`): a token bucket
of ``AUTH_FAILURES_PER_MINUTE`` (burst ``AUTH_FAILURE_BURST``); an address that spent it gets
429 with ``Retry-After`` for any key until it refills. Each failure is logged at warning level
with the presented key's fingerprint (a short hash, never the key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.requests import HTTPConnection

from api.client_address import client_address
from api.errors import RATE_LIMITED, UNAUTHORIZED, ProblemError
from api.ratelimit import TokenBucketLimiter
from shared.errors import ConfigurationError
from shared.settings import Settings

logger = logging.getLogger("api.auth")

Role = Literal["admin", "read"]

API_KEY_HEADER = "X-API-Key"
REALM = "vehicle-anomaly"
CHALLENGES = (
    ("WWW-Authenticate", f'Bearer realm="{REALM}"'),
    ("WWW-Authenticate", f'APIKey realm="{REALM}", header="{API_KEY_HEADER}"'),
)
NO_KEYS_MESSAGE = "API_KEYS is empty: set API_KEYS=key1,key2 or AUTH_DISABLED=true for a local demo"
KEYS_AND_DISABLED_MESSAGE = (
    "AUTH_DISABLED=true but API_KEYS or API_READ_KEYS is set: the keys would be ignored; "
    "unset AUTH_DISABLED to require them, or unset the keys for an open local demo"
)

api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKey",
    description="One of the keys in API_KEYS (admin) or API_READ_KEYS (read).",
    auto_error=False,
)
bearer_scheme = HTTPBearer(
    scheme_name="Bearer",
    description="One of the keys in API_KEYS or API_READ_KEYS, as `Authorization: Bearer <key>`.",
    auto_error=False,
)


def key_identity(key: str | bytes) -> str:
    """A caller's name in logs and rate limits: never the key itself."""
    raw = key.encode() if isinstance(key, str) else key
    return "key-" + hashlib.sha256(raw).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``key-<hash>``, or ``ip-<address>`` when auth is disabled (an admin)."""

    identity: str
    authenticated: bool
    role: Role = "admin"


def _secrets(keys: Sequence[SecretStr]) -> list[bytes]:
    return [k.get_secret_value().encode() for k in keys if k.get_secret_value()]


class KeyRing:
    """The configured keys, as bytes with their roles, ready for constant-time comparison."""

    def __init__(
        self,
        keys: Sequence[SecretStr],
        *,
        read_keys: Sequence[SecretStr] = (),
        disabled: bool = False,
    ) -> None:
        admin: list[tuple[bytes, Role]] = [(k, "admin") for k in _secrets(keys)]
        read: list[tuple[bytes, Role]] = [(k, "read") for k in _secrets(read_keys)]
        self._keys = tuple(admin + read)
        # each key's identity, hashed once rather than on every request
        self._identities = {key: key_identity(key) for key, _ in self._keys}
        self.disabled = disabled

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The key ring, or :class:`ConfigurationError` when there is nothing to check
        against, or keys beside ``AUTH_DISABLED`` (they would be silently ignored)."""
        ring = cls(
            settings.api_keys, read_keys=settings.api_read_keys, disabled=settings.auth_disabled
        )
        if ring.disabled and ring._keys:
            raise ConfigurationError(KEYS_AND_DISABLED_MESSAGE)
        if not ring._keys and not ring.disabled:
            raise ConfigurationError(NO_KEYS_MESSAGE)
        return ring

    def __len__(self) -> int:
        return len(self._keys)

    def identify(self, candidate: str) -> tuple[str, Role] | None:
        """The identity and role of ``candidate`` if it is one of the keys, else ``None``.

        A key in both lists is an admin key.
        """
        presented = candidate.encode("utf-8", "surrogateescape")
        admin = read = False
        for key, role in self._keys:  # every key is compared: the time does not tell which
            same = hmac.compare_digest(presented, key)
            admin |= same and role == "admin"
            read |= same and role == "read"
        if not (admin or read):
            return None
        return self._identities[presented], "admin" if admin else "read"

    def match(self, candidate: str) -> str | None:
        """The identity of ``candidate`` if it is one of the keys, else ``None``."""
        found = self.identify(candidate)
        return found[0] if found is not None else None


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail, type_=UNAUTHORIZED, headers=CHALLENGES)


def _throttled(wait: float, address: str) -> ProblemError:
    seconds = TokenBucketLimiter.retry_after(wait)
    return ProblemError(
        429,
        f"too many failed logins from this address; retry in {seconds} s",
        type_=RATE_LIMITED,
        headers={"Retry-After": str(seconds)},
    )


async def authenticate(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    """The caller, or a 401 problem (429 for an address that failed too often)."""
    principal = identify_caller(request, api_key, bearer.credentials if bearer else None)
    request.state.principal = principal
    return principal


def bearer_credentials(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` header's value, as ``HTTPBearer`` reads it, when its
    scheme is ``Bearer`` (another scheme, or none: ``None``)."""
    scheme, _, credentials = (authorization or "").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


def identify_caller(
    connection: HTTPConnection, api_key: str | None, bearer: str | None
) -> Principal:
    """The caller presenting ``api_key`` and/or ``bearer``, or a 401 (429) problem.

    The one rule of both the routes' dependency and the ``/score`` fast path.
    """
    state = connection.app.state
    ring: KeyRing = state.keys
    proxies = state.trusted_proxies
    if ring.disabled:
        return Principal(identity=f"ip-{client_address(connection, proxies)}", authenticated=False)
    else:
        candidates = [c for c in (api_key, bearer) if c]
        if not candidates:
            raise _unauthorized(
                f"an API key is required: send {API_KEY_HEADER}: <key> "
                "or Authorization: Bearer <key>"
            )
        failures: TokenBucketLimiter = state.auth_failures
        address: str | None = None
        if failures:  # (else no address has failed yet, as under a load of good keys)
            address = client_address(connection, proxies)
            wait = failures.wait(address)
            if wait > 0:
                raise _throttled(wait, address)
        found = ring.identify(candidates[0])
        if found is None and len(candidates) > 1:
            found = ring.identify(candidates[1])
        if found is None:
            address = address or client_address(connection, proxies)
            wait = failures.acquire(address)
            logger.warning(
                "failed login",
                extra={"client": address, "key_fingerprint": key_identity(candidates[0])},
            )
            if wait > 0:
                raise _throttled(wait, address)
            raise _unauthorized("the API key is not valid")
    return Principal(identity=found[0], authenticated=True, role=found[1])
