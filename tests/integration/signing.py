"""The model signing key the integration tests' services run with (the services require one)."""

from __future__ import annotations

from pathlib import Path

from shared.registry import ModelRegistry

SIGNING_KEY = "integration-test-signing-key"


def signed_registry(model_dir: Path) -> ModelRegistry:
    """A registry that publishes versions the tests' services accept."""
    return ModelRegistry(model_dir, signing_key=SIGNING_KEY.encode())
