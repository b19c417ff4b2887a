"""The api refuses configurations that would leave it open: no signing key, keys beside
``AUTH_DISABLED``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from api.app import create_app
from shared.errors import ConfigurationError
from tests.unit.api.api_support import make_settings, serve


def test_no_signing_key_refuses_to_start(tmp_path: Path) -> None:
    """Without MODEL_SIGNING_KEY (and without ALLOW_UNSIGNED_MODELS) create_app refuses."""
    with pytest.raises(ConfigurationError, match="MODEL_SIGNING_KEY is not set"):
        create_app(make_settings(tmp_path, model_signing_key=None))
    with pytest.raises(ConfigurationError, match="MODEL_SIGNING_KEY is not set"):
        create_app(make_settings(tmp_path, model_signing_key=""))


async def test_unsigned_models_when_allowed_start_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ALLOW_UNSIGNED_MODELS=true starts the api and logs a warning saying what it risks."""
    settings = make_settings(tmp_path, model_signing_key=None, allow_unsigned_models=True)
    with caplog.at_level(logging.WARNING, logger="api"):
        async with serve(create_app(settings)) as client:
            assert (await client.get("/healthz")).status_code == 200
    assert any("ALLOW_UNSIGNED_MODELS=true" in r.getMessage() for r in caplog.records)


def test_the_server_freezes_what_start_up_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m api`` hands uvicorn an app whose start-up objects are frozen out of the
    garbage collector's full passes."""
    import gc

    import uvicorn

    import api.__main__ as entry

    seen: list[int] = []
    monkeypatch.setenv("API_KEYS", "k" * 32)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MODEL_SIGNING_KEY", "s" * 32)
    monkeypatch.setattr(entry, "configure_logging", lambda *args: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.append(gc.get_freeze_count()))
    try:
        assert entry.main() == 0
    finally:
        gc.unfreeze()
    assert len(seen) == 1 and seen[0] > 10_000
