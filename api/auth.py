"""API keys: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``.

Keys come from ``API_KEYS`` (comma-separated). A presented key is compared with every
configured key in constant time (``hmac.compare_digest`` on bytes, no early exit). A caller
is known by its key's identity, a short hash, which is what logs and the rate limiter see.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from api.errors import UNAUTHORIZED, ProblemError
from shared.errors import ConfigurationError
from shared.settings import Settings

logger = logging.getLogger("api.auth")

API_KEY_HEADER = "X-API-Key"
REALM = "vehicle-anomaly"
CHALLENGES = (
    ("WWW-Authenticate", f'Bearer realm="{REALM}"'),
    ("WWW-Authenticate", f'APIKey realm="{REALM}", header="{API_KEY_HEADER}"'),
)
NO_KEYS_MESSAGE = "API_KEYS is empty: set API_KEYS=key1,key2 or AUTH_DISABLED=true for a local demo"

api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKey",
    description="One of the keys in API_KEYS.",
    auto_error=False,
)
bearer_scheme = HTTPBearer(
    scheme_name="Bearer",
    description="One of the keys in API_KEYS, as `Authorization: Bearer <key>`.",
    auto_error=False,
)


def key_identity(key: str | bytes) -> str:
    """A caller's name in logs and rate limits: never the key itself."""
    raw = key.encode() if isinstance(key, str) else key
    return "key-" + hashlib.sha256(raw).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: ``key-<hash>``, or ``ip-<address>`` when auth is disabled."""

    identity: str
    authenticated: bool


class KeyRing:
    """The configured keys, as bytes, ready for constant-time comparison."""

    def __init__(self, keys: Sequence[SecretStr], *, disabled: bool = False) -> None:
        self._keys = tuple(k.get_secret_value().encode() for k in keys if k.get_secret_value())
        self.disabled = disabled

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The key ring, or :class:`ConfigurationError` when there is nothing to check against."""
        ring = cls(settings.api_keys, disabled=settings.auth_disabled)
        if not ring._keys and not ring.disabled:
            raise ConfigurationError(NO_KEYS_MESSAGE)
        return ring

    def __len__(self) -> int:
        return len(self._keys)

    def match(self, candidate: str) -> str | None:
        """The identity of ``candidate`` if it is one of the keys, else ``None``."""
        presented = candidate.encode("utf-8", "surrogateescape")
        found = False
        for key in self._keys:  # every key is compared: the time does not tell which matched
            found |= hmac.compare_digest(presented, key)
        return key_identity(presented) if found else None


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail, type_=UNAUTHORIZED, headers=CHALLENGES)


async def authenticate(
    request: Request,
    api_key: Annotated[str | None, Security(api_key_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    """The caller, or a 401 problem."""
    ring: KeyRing = request.app.state.keys
    if ring.disabled:
        host = request.client.host if request.client is not None else "unknown"
        principal = Principal(identity=f"ip-{host}", authenticated=False)
    else:
        candidates = [c for c in (api_key, bearer.credentials if bearer else None) if c]
        if not candidates:
            raise _unauthorized(
                f"an API key is required: send {API_KEY_HEADER}: <key> "
                "or Authorization: Bearer <key>"
            )
        identities = [ring.match(candidate) for candidate in candidates]
        identity = next((i for i in identities if i is not None), None)
        if identity is None:
            raise _unauthorized("the API key is not valid")
        principal = Principal(identity=identity, authenticated=True)
    request.state.principal = principal
    return principal
