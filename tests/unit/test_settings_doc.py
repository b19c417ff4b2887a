"""docs/configuration.md is generated from the settings classes and stays equal to them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from shared.settings import Settings
from shared.settings_doc import REGENERATE, env_name, render, settings_classes

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_page_equals_the_generated_one() -> None:
    """docs/configuration.md is exactly what render() gives for the current code."""
    assert PAGE.read_text(encoding="utf-8") == render(), (
        f"docs/configuration.md is stale: regenerate with {REGENERATE}"
    )


def test_every_settings_field_has_a_row() -> None:
    """Each field of Settings appears in the page as a row naming its variable."""
    page = render()
    missing = [name for name in Settings.model_fields if f"| `{name.upper()}` |" not in page]
    assert missing == []


@pytest.mark.parametrize("cls", settings_classes(), ids=lambda cls: cls.__name__)
def test_every_field_of_each_listed_class_is_described(cls: type[BaseSettings]) -> None:
    """Every field of every listed settings class has a description and a row in the page."""
    page = render()
    undescribed = [name for name, field in cls.model_fields.items() if not field.description]
    assert undescribed == []
    missing = [name for name in cls.model_fields if f"| `{env_name(cls, name)}` |" not in page]
    assert missing == []


def test_secrets_show_no_default() -> None:
    """Rows of secret settings say secret instead of showing a default."""
    page = render()
    for variable in ("API_KEYS", "MODEL_SIGNING_KEY", "KAFKA_SASL_PASSWORD"):
        assert f"| `{variable}` | *secret* |" in page


def test_worker_options_carry_their_prefix() -> None:
    """The worker-only options are listed under their CONSUMER_ environment names."""
    page = render()
    assert "| `CONSUMER_GRACEFUL_TIMEOUT_SECONDS` | `15` |" in page
    assert "| `GRACEFUL_TIMEOUT_SECONDS` |" not in page
