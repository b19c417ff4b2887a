"""``python -m consumer``: run the scoring worker and its health endpoints on CONSUMER_PORT.

The same app also runs under FastStream's CLI::

    faststream run consumer.app:create_app --factory --host 0.0.0.0 --port 8001

(that needs the ``faststream[cli]`` extra, not installed by default).

A bad setting prints one line naming the variable to stderr and exits with status 2.
SIGTERM (or Ctrl-C) shuts down gracefully: see :mod:`consumer.app`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigurationError

if TYPE_CHECKING:
    from shared.settings import Settings

AppFactory = Callable[["Settings"], Any]


def main(factory: AppFactory | None = None) -> int:
    """Serve the app that ``factory`` builds (default :func:`consumer.app.create_app`)."""
    from shared.settings import load_settings

    try:
        settings = load_settings()
        unsigned = settings.models_unsigned()  # no signing key: refused unless allowed
    except ConfigurationError as error:
        print(f"consumer: {error}", file=sys.stderr)
        return 2

    import uvicorn

    from consumer.app import create_app  # imports FastStream, which installs its own handlers
    from shared.observability import configure_logging

    configure_logging(
        "consumer", settings.log_format, settings.log_level, settings.log_repeat_seconds
    )
    if unsigned:
        import logging

        from shared.settings import UNSIGNED_WARNING

        logging.getLogger("consumer").warning(UNSIGNED_WARNING)

    try:
        app = (factory or create_app)(settings)
    except ConfigurationError as error:  # e.g. AWS_REGION missing for MSK IAM
        print(f"consumer: {error}", file=sys.stderr)
        return 2
    uvicorn.run(
        app,
        host="0.0.0.0",  # noqa: S104  (health checks reach the container from outside)
        port=settings.consumer_port,
        log_config=None,  # keep configure_logging's handlers
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
