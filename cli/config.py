"""Global options: where the api and Kafka are, which key to present, which topics to use.

Resolution order, for each setting:

* api URL:   ``--api``, ``VEHICLE_ANOMALY_API``, ``http://127.0.0.1:8000``
* API key:   ``--api-key``, ``VEHICLE_ANOMALY_API_KEY``, the first of ``API_KEYS``, the file
             ``VEHICLE_ANOMALY_KEY_FILE`` or else ``var/dev-api-key`` (in the working directory,
             then in the source checkout), which ``make run`` writes
* Kafka:     ``--bootstrap``, then the services' own settings (``KAFKA_BOOTSTRAP_SERVERS``,
             ``KAFKA_SECURITY_PROTOCOL``, SASL/SSL, ``TELEMETRY_TOPIC``, ``ANOMALY_TOPIC``,
             ``DLQ_TOPIC``, ``CONSUMER_GROUP``; also read from ``.env``)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.errors import UsageError

DEFAULT_API = "http://127.0.0.1:8000"
API_ENV = "VEHICLE_ANOMALY_API"
KEY_ENV = "VEHICLE_ANOMALY_API_KEY"
KEY_FILE_ENV = "VEHICLE_ANOMALY_KEY_FILE"
DEV_KEY_FILE = Path("var") / "dev-api-key"
CHECKOUT = Path(__file__).resolve().parents[1]


def key_file_candidates() -> list[Path]:
    """Where a development key may be stored, in the order they are tried."""
    explicit = os.environ.get(KEY_FILE_ENV, "").strip()
    if explicit:
        return [Path(explicit)]
    candidates = [Path.cwd() / DEV_KEY_FILE]
    if (CHECKOUT / "scripts" / "run-local.py").exists():  # a source checkout, not a wheel
        candidates.append(CHECKOUT / DEV_KEY_FILE)
    return candidates


@dataclass(frozen=True)
class KeyChoice:
    """The key to present and where it came from (for error messages)."""

    key: str | None
    source: str


def resolve_api_key(explicit: str | None, api_keys: tuple[str, ...]) -> KeyChoice:
    """The key by the documented order; ``KeyChoice(None, ...)`` when there is none."""
    if explicit is not None and explicit.strip():
        return KeyChoice(explicit.strip(), "--api-key")
    from_env = os.environ.get(KEY_ENV, "").strip()
    if from_env:
        return KeyChoice(from_env, KEY_ENV)
    if api_keys:
        return KeyChoice(api_keys[0], "API_KEYS")
    for path in key_file_candidates():
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if text:
            return KeyChoice(text.splitlines()[0].strip(), str(path))
    return KeyChoice(None, "none")


@dataclass(frozen=True)
class Context:
    """Everything a command needs to reach the services."""

    api_url: str
    key: KeyChoice
    settings: Any  # shared.settings.Settings (imported lazily: it pulls in pydantic)
    connect_timeout: float
    verbose: bool

    @property
    def bootstrap(self) -> str:
        return str(self.settings.kafka_bootstrap_servers)


def build_context(
    *,
    api: str | None,
    api_key: str | None,
    bootstrap: str | None,
    connect_timeout: float,
    verbose: bool,
) -> Context:
    """Read the settings (environment and ``.env``) with the command line's overrides."""
    from shared.errors import ConfigurationError
    from shared.settings import load_settings

    overrides: dict[str, Any] = {}
    if bootstrap is not None:
        if not bootstrap.strip():
            raise UsageError("--bootstrap must not be empty")
        overrides["kafka_bootstrap_servers"] = bootstrap.strip()
    try:
        settings = load_settings(**overrides)
    except ConfigurationError as error:
        raise UsageError(str(error)) from None
    url = (api or os.environ.get(API_ENV, "").strip() or DEFAULT_API).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--api must be an http:// or https:// URL, not {url!r}")
    keys = tuple(k.get_secret_value() for k in settings.api_keys if k.get_secret_value())
    return Context(
        api_url=url,
        key=resolve_api_key(api_key, keys),
        settings=settings,
        connect_timeout=connect_timeout,
        verbose=verbose,
    )
