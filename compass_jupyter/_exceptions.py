"""Every error compass_jupyter raises on purpose.

    CompassError
    ├── ConfigError            no key, a bad setting, a missing optional extra
    ├── ValidationError        a request refused before anything was sent
    ├── ToolError              a Python callable that cannot be described as a tool,
    │                          or a tool loop that did not finish
    ├── StoreError             the exchange store's file cannot be used
    ├── CassetteError          a cassette that cannot be read, or a request it did not record
    └── APIError               something the server (or the way to it) said
        ├── AuthenticationError     401 / 403
        ├── NotFoundError           404: unknown model or deployment
        ├── BadRequestError         400 / 422: the server's message is kept
        ├── RateLimitError          429, after the retries ran out
        ├── ServerError             5xx, after the retries ran out
        ├── APIConnectionError      the server could not be reached
        ├── APITimeoutError         no answer in time
        └── StreamError             a stream that broke off or sent nonsense

Warnings (an unknown model id, a parameter the reference reserves for other
models) are issued as :class:`CompassWarning` and the request is sent anyway.
What a server does differently from what was asked, when that is expected (the
local model answering, two choices sent as two requests), is a
:class:`CompassNotice`: information, which the magics show as a quiet line.

An error raised while a reply was arriving carries what had arrived as
``exc.reply`` (a :class:`~compass_jupyter.reply.Reply` marked ``incomplete``).

Messages are written for the person at the notebook: what went wrong and what to
do. They never contain the API key (see :func:`compass_jupyter.settings.redact`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .reply import Reply

__all__ = [
    "CompassError",
    "ConfigError",
    "ValidationError",
    "ToolError",
    "StoreError",
    "CassetteError",
    "APIError",
    "AuthenticationError",
    "NotFoundError",
    "BadRequestError",
    "RateLimitError",
    "ServerError",
    "APIConnectionError",
    "APITimeoutError",
    "StreamError",
    "CompassWarning",
    "CompassNotice",
]


class CompassError(Exception):
    """Base class of every error raised by compass_jupyter on purpose."""

    def __init__(self, message: str, *, reply: Reply | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reply = reply

    def __str__(self) -> str:
        return self.message


class ConfigError(CompassError):
    """A missing key, a bad setting or a missing optional extra."""


class ValidationError(CompassError):
    """A request that breaks a documented rule; nothing was sent."""


class ToolError(CompassError):
    """A callable that cannot become a tool, or a tool loop that did not end."""


class StoreError(CompassError):
    """The exchange store's file cannot be used (not SQLite, corrupt, from a newer version, unwritable)."""


class CassetteError(CompassError):
    """A cassette file that cannot be read, or (replaying) a request it holds no answer for."""


class APIError(CompassError):
    """The server, or the way to it, failed the request."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body: Any = None,
        reply: Reply | None = None,
    ) -> None:
        super().__init__(message, reply=reply)
        self.status_code = status_code
        self.body = body


class AuthenticationError(APIError):
    """401 or 403: the key is missing, wrong or not allowed this model."""


class NotFoundError(APIError):
    """404: the model or deployment does not exist at this base URL."""


class BadRequestError(APIError):
    """400 or 422: the server refused the request; its message is kept."""


class RateLimitError(APIError):
    """429 after the retries ran out."""


class ServerError(APIError):
    """5xx after the retries ran out."""


class APIConnectionError(APIError):
    """The server could not be reached."""


class APITimeoutError(APIError):
    """The server did not answer in time."""


class StreamError(APIError):
    """A stream that broke off before its end, or a reply (streamed or not) the server sent wrong.

    ``broke_off`` tells the two apart: True when the reply ended early (the turn is
    recorded in the history as incomplete, like an interrupt); False when the server
    sent an error event or data of the wrong shape (the history is left unchanged).
    Either way the partial reply is ``exc.reply``.
    """

    def __init__(self, message: str, *, broke_off: bool = True, **details: Any) -> None:
        super().__init__(message, **details)  # status_code, body, reply as for every APIError
        self.broke_off = broke_off


class CompassWarning(UserWarning):
    """A request that is sent anyway but may not do what was meant (unknown model, reserved parameter)."""


class CompassNotice(CompassWarning):
    """Information about where or how a reply comes (not a problem): the magics show it as a quiet line."""
