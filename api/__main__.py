"""``python -m api``: serve the api with uvicorn on API_HOST:API_PORT.

A bad or missing setting prints one line naming the variable to stderr and exits 2.
"""

from __future__ import annotations

import gc
import sys

import uvicorn

from shared.errors import ConfigurationError
from shared.observability import configure_logging
from shared.settings import load_settings

# Seconds uvicorn waits for requests in flight (a training, say) after SIGTERM; below
# Kubernetes' default 30 s grace period so that the process exits on its own.
GRACEFUL_SHUTDOWN_SECONDS = 25


def main() -> int:
    try:
        settings = load_settings()
    except ConfigurationError as error:
        print(f"api: {error}", file=sys.stderr)
        return 2
    configure_logging("api", settings.log_format, settings.log_level, settings.log_repeat_seconds)

    from api.app import create_app

    try:
        app = create_app(settings)
    except ConfigurationError as error:
        print(f"api: {error}", file=sys.stderr)
        return 2
    from api.uvicorn_compat import bounded_protocol

    # What start-up made (modules, schemas, the app) lives as long as the process: frozen, a
    # full garbage collection no longer walks it. Measured with a model loaded: 110 ms, a
    # pause of every request in flight every few tens of thousands, down to 7 ms.
    gc.collect()
    gc.freeze()

    uvicorn.run(
        app,
        http=bounded_protocol(settings.header_max_bytes, settings.header_read_timeout_seconds),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # keep the JSON logging configured above
        access_log=False,  # the request middleware writes one access line per request
        server_header=False,
        # X-Forwarded-For is read by the app, from TRUSTED_PROXIES only (api.client_address);
        # uvicorn's own handling would trust it from any local peer.
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
