"""A small JSON client for the api (standard library only), with one-line errors.

Every failure becomes a :class:`~cli.errors.CliError` whose message says what went wrong and
what to do: the api is not running, the key is missing or refused, the request was refused
(with the api's own reason), the api failed.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from cli.config import KEY_ENV, Context
from cli.errors import CliError

DEFAULT_TIMEOUT = 15.0
KEY_HINT = f"set --api-key or {KEY_ENV}"


def _reason(error: BaseException) -> str:
    """A short reason for a network failure."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason if isinstance(error.reason, BaseException) else error
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host name ({error.strerror or error})"
    if isinstance(error, ssl.SSLError):
        return f"TLS error ({error.reason or error})"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def problem_message(status: int, body: Any) -> str:
    """The api's reason for an error answer (RFC 9457 problem details), in one line."""
    if not isinstance(body, dict):
        text = str(body or "").strip().splitlines()
        return text[0][:200] if text else f"HTTP {status}"
    detail = str(body.get("detail") or body.get("title") or f"HTTP {status}")
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        where = first.get("field") or ""
        message = first.get("message") or ""
        extra = f" ({len(errors) - 1} more)" if len(errors) > 1 else ""
        if where or message:
            detail = f"{detail}: {where + ': ' if where else ''}{message}{extra}"
    return " ".join(detail.split())


class ApiClient:
    """``request()`` answers the decoded JSON body or raises ``CliError``."""

    def __init__(self, context: Context) -> None:
        self.base = context.api_url
        self.key = context.key

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Any:
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        headers = {"Accept": "application/json", "User-Agent": "vehicle-anomaly-cli"}
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/json"
        if self.key.key is not None:
            headers["X-API-Key"] = self.key.key
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (http(s) only, checked in config)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            raw = error.read()
            raise self._refused(error.code, _decode(raw), method, path) from None
        except (urllib.error.URLError, OSError) as error:
            reason = _reason(error)
            hint = (
                " (is it running? `make run` starts it)" if reason == "connection refused" else ""
            )
            if reason == "timed out":
                raise CliError(
                    f"the api at {self.base} did not answer {method} {path} within {timeout:g} s"
                ) from None
            raise CliError(f"cannot reach the api at {self.base}: {reason}{hint}") from None
        if status == 204 or not raw:
            return None
        return _decode(raw)

    def _refused(self, status: int, body: Any, method: str, path: str) -> CliError:
        reason = problem_message(status, body)
        if status == 401:
            if self.key.key is None:
                return CliError(
                    "the api needs an API key (401): "
                    f"{KEY_HINT} (`make run` prints one and keeps it in var/dev-api-key)"
                )
            return CliError(
                f"the api refused the key (401): {KEY_HINT} (the key came from {self.key.source})"
            )
        if status == 403:
            return CliError(f"the api refused the request (403): {reason}")
        if (status == 404 and reason.startswith("HTTP")) or status == 405:
            return CliError(
                f"the api at {self.base} has no {method} {path} ({status}): is --api the vehicle-anomaly api?"
            )
        if status == 429:
            return CliError(f"the api is rate-limiting this key (429): {reason}; try again shortly")
        if status >= 500:
            return CliError(f"the api failed ({status}): {reason}")
        return CliError(f"the api refused the request ({status}): {reason}")


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
