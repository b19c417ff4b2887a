"""``python -m consumer`` refuses to start without a model signing key, as the api does."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.__main__ import main


def test_the_worker_refuses_to_start_without_a_signing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No MODEL_SIGNING_KEY and no ALLOW_UNSIGNED_MODELS: one line naming it, exit status 2."""
    monkeypatch.chdir(tmp_path)  # no .env file here
    monkeypatch.delenv("MODEL_SIGNING_KEY", raising=False)
    monkeypatch.delenv("ALLOW_UNSIGNED_MODELS", raising=False)

    def never(settings: object) -> None:
        raise AssertionError("the app must not be built")

    assert main(never) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("consumer: MODEL_SIGNING_KEY is not set")
