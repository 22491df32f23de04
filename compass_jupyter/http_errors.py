"""What an HTTP failure means to the user: an error status or a transport error, as a CompassError.

Each function here turns one kind of failure into the typed exception of
:mod:`compass_jupyter._exceptions` with a message that says what to do, and
says whether another attempt may help. Nothing is raised or sent here: the
client decides (once, for ``chat`` and ``achat``) whether to retry, and raises.
Messages pass through :func:`~compass_jupyter.settings.redact`, since servers echo keys.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any, Mapping, NamedTuple

import httpx

from . import catalog
from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from .settings import config, mask_key, redact
from .shapes import error_text

__all__ = ["Failure", "gave_up", "retry_after_seconds", "server_message", "status_failure", "transport_failure"]


class Failure(NamedTuple):
    """A failed attempt: the error to raise, whether retrying may help, and the server's wait (seconds)."""

    error: APIError
    retryable: bool = False
    retry_after: float | None = None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The Retry-After header in seconds (a number or an HTTP date), or None."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def server_message(body: bytes, key: str | None = None, limit: int = 400) -> str:
    """The human part of an error body (error.message, or a short form of the text), key hidden."""
    return redact(_message(body, limit), key)


def _message(body: bytes, limit: int) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        found = error_text(data.get("error", data), limit)
        if found is not None:
            return found
        if isinstance(data.get("detail"), (str, list)):
            return str(data["detail"])[:limit]
    if "Traceback (most recent call last)" in text:
        # Some servers (llama.cpp) put a Python traceback in 500 bodies: its last line is the point.
        lines = [line for line in text.splitlines() if line.strip()]
        return f"server traceback ending in: {lines[-1].strip()[:limit]}"
    return text[:limit] or "(empty body)"


def status_failure(
    status: int,
    raw: bytes,
    headers: Mapping[str, str],
    *,
    message: str,
    base_url: str,
    api_style: str,
    model: Any,
    key: str | None,
) -> Failure:
    """An answer with a status of 300 or more; ``message`` is :func:`server_message` of ``raw``."""
    try:
        parsed: Any = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        parsed = raw.decode("utf-8", "replace")[:2000]
    if status < 400:
        target = redact(str(headers.get("location") or "(no location given)"), key)[:200]
        return Failure(
            APIConnectionError(
                f"{base_url} answered with a redirect (HTTP {status}) to {target}. Requests are not followed to "
                "another address, so the API key is not sent there: set COMPASS_BASE_URL to the server's real root.",
                status_code=status,
                body=parsed,
            )
        )
    if status in (401, 403):
        return Failure(
            AuthenticationError(
                f"Compass refused the API key (HTTP {status}): {message} "
                "Check COMPASS_API_KEY or run %compass key to enter it again "
                f"(the key in use is {mask_key(key or config.get('api_key'))}).",
                status_code=status,
                body=parsed,
            )
        )
    if status == 404:
        near = catalog.nearest(str(model)) if model and catalog.get(str(model)) is None else []
        hint = f" Nearest known ids: {', '.join(near)}." if near else ""
        return Failure(
            NotFoundError(
                f"Model or deployment {model!r} was not found at {base_url} (HTTP 404): {message} "
                f"Check the id with %compass models and the route (api_style={api_style}).{hint}",
                status_code=status,
                body=parsed,
            )
        )
    if status == 429:
        error: APIError = RateLimitError(
            f"Compass is rate limiting this key (HTTP 429): {message}", status_code=status, body=parsed
        )
        return Failure(error, retryable=True, retry_after=retry_after_seconds(headers))
    if status >= 500:
        error = ServerError(f"Compass had a server error (HTTP {status}): {message}", status_code=status, body=parsed)
        return Failure(error, retryable=True, retry_after=retry_after_seconds(headers))
    return Failure(
        BadRequestError(f"Compass rejected the request (HTTP {status}): {message}", status_code=status, body=parsed)
    )


def transport_failure(exc: httpx.HTTPError, *, base_url: str, timeout: float | None, key: str | None) -> Failure:
    """No answer at all (before any data arrived): refused, reset, timed out.

    ``timeout`` is the setting in seconds, or None when a given http client keeps its own.
    """
    detail = redact(str(exc) or type(exc).__name__, key)
    if isinstance(exc, httpx.TimeoutException):
        within = f"{timeout:g}s" if timeout is not None else "the given http client's timeout"
        return Failure(APITimeoutError(f"No answer from {base_url} within {within} ({detail})"), retryable=True)
    if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return Failure(
            APIConnectionError(f"Could not reach {base_url} ({type(exc).__name__}: {detail})"), retryable=True
        )
    return Failure(APIConnectionError(f"The request to {base_url} failed ({type(exc).__name__}: {detail})."))


def gave_up(error: APIError, attempts: int) -> APIError:
    """The last retryable error, saying how many attempts were made and what to do now."""
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    if isinstance(error, RateLimitError):
        fix = "Wait a moment and run the cell again, or allow more retries with %compass set max_retries=N."
    elif isinstance(error, ServerError):
        fix = "The service may be busy or down; try again later."
    elif isinstance(error, APITimeoutError):
        fix = "Allow more time with %compass set timeout=SECONDS, or ask for fewer tokens."
    else:
        fix = "Check COMPASS_BASE_URL and the network."
    error.message = f"{error.message} (gave up after {tries}). {fix}"
    return error
