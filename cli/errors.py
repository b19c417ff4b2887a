"""The one kind of error the command-line tool reports: a message line and an exit code."""

from __future__ import annotations

# Exit codes: 1 = the operation failed (unreachable service, refused request, timeout);
# 2 = the command line or the configuration is wrong (like argparse's own usage errors).
FAILURE = 1
USAGE = 2


class CliError(Exception):
    """Printed as ``vehicle-anomaly: <message>`` on stderr; the process exits with ``code``."""

    def __init__(self, message: str, code: int = FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class UsageError(CliError):
    """A bad argument or setting (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, USAGE)
