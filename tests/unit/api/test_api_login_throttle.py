"""Failed logins are throttled per client address, logged with a fingerprint, and the address
comes from ``X-Forwarded-For`` only behind a trusted proxy."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.auth import key_identity
from shared.errors import ConfigurationError
from tests.unit.api.api_support import AUTH, SEED_SCORE, assert_problem, make_settings

WRONG = {"X-API-Key": "not-the-key"}


async def test_500_wrong_keys_are_throttled(
    client_for: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """500 wrong keys from one address: the burst gets 401, the rest 429 with Retry-After."""
    async with client_for(auth_failure_burst=20, auth_failures_per_minute=10) as client:
        with caplog.at_level(logging.WARNING, logger="api.auth"):
            statuses = [
                (await client.get("/models", headers=WRONG)).status_code for _ in range(500)
            ]
        assert statuses[:20] == [401] * 20
        assert set(statuses[20:]) == {429}
        throttled = await client.get("/models", headers=AUTH)  # the address, whatever the key
        assert_problem(throttled, 429, kind="rate-limited")
        assert int(throttled.headers["Retry-After"]) >= 1
        scored = await client.post("/score", json=SEED_SCORE, headers=AUTH)  # the fast path too
        assert_problem(scored, 429, kind="rate-limited")
    failures = [r for r in caplog.records if r.getMessage() == "failed login"]
    assert len(failures) == 20  # each failed comparison is logged; throttled ones are not compared
    assert all(r.levelno == logging.WARNING for r in failures)
    assert {getattr(r, "key_fingerprint", None) for r in failures} == {key_identity("not-the-key")}
    assert all("not-the-key" not in r.getMessage() + str(r.__dict__) for r in failures)


async def test_a_forged_forwarded_for_does_not_escape_the_throttle(
    client_for: Callable[..., Any],
) -> None:
    """Without TRUSTED_PROXIES a caller's X-Forwarded-For is ignored: it stays throttled."""
    async with client_for(auth_failure_burst=2) as client:
        for n in range(2):
            await client.get("/models", headers={**WRONG, "X-Forwarded-For": f"198.51.100.{n}"})
        response = await client.get("/models", headers={**WRONG, "X-Forwarded-For": "192.0.2.9"})
        assert_problem(response, 429)


async def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
    client_for: Callable[..., Any],
) -> None:
    """The test client's peer is a trusted proxy: clients it names are throttled apart."""
    async with client_for(auth_failure_burst=2, trusted_proxies="203.0.113.0/24") as client:
        mallory = {**WRONG, "X-Forwarded-For": "198.51.100.66, 203.0.113.9"}
        for _ in range(2):
            assert (await client.get("/models", headers=mallory)).status_code == 401
        assert (await client.get("/models", headers=mallory)).status_code == 429
        alice = {**AUTH, "X-Forwarded-For": "198.51.100.1"}
        assert (await client.get("/models", headers=alice)).status_code == 200


async def test_auth_disabled_ignores_an_untrusted_forwarded_for(
    client_for: Callable[..., Any],
) -> None:
    """With AUTH_DISABLED a caller cannot pick a fresh rate-limit bucket with X-Forwarded-For."""
    async with client_for(
        api_keys="", auth_disabled=True, rate_limit_per_second=0.1, rate_limit_burst=1
    ) as client:
        assert (
            await client.get("/models", headers={"X-Forwarded-For": "10.0.0.1"})
        ).status_code == 200
        again = await client.get("/models", headers={"X-Forwarded-For": "10.0.0.2"})
        assert_problem(again, 429)


@pytest.mark.parametrize("keys", [{"api_keys": "k"}, {"api_keys": "", "api_read_keys": "r"}])
def test_auth_disabled_beside_keys_refuses_to_start(tmp_path: Path, keys: dict[str, str]) -> None:
    """AUTH_DISABLED=true with API_KEYS or API_READ_KEYS set is a configuration error."""
    with pytest.raises(ConfigurationError, match="AUTH_DISABLED=true but API_KEYS"):
        create_app(make_settings(tmp_path, auth_disabled=True, **keys))


def test_a_trusted_proxy_must_be_an_address(tmp_path: Path) -> None:
    """TRUSTED_PROXIES that is not an address or network stops the service, naming it."""
    with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
        make_settings(tmp_path, trusted_proxies="10.0.0.0/8,proxy.internal")
