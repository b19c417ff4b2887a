"""Fixtures for the api's tests: an app on a temporary registry, and a client for it.

No broker, no socket: ``httpx.AsyncClient`` over ``ASGITransport``, with the app's lifespan
run around it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from shared.settings import Settings
from tests.unit.api.api_support import make_settings, serve


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "models")


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app) as client:
        yield client


@pytest.fixture
def client_for(tmp_path: Path) -> Callable[..., Any]:
    """``async with client_for(ingest_max_records=2, ...)``: a client for other settings."""

    def factory(**overrides: Any) -> Any:
        return serve(create_app(make_settings(tmp_path / "models", **overrides)))

    return factory
