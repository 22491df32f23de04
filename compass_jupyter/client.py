"""The HTTP client: routes, the api-key header, retries, timeouts, and the error boundary.

Every transport error and every error status is translated here, once, into the
exceptions of :mod:`compass_jupyter._exceptions`. Responses are read inside
``with ...stream(...)`` blocks so connections always close, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
import warnings as _warnings
from typing import Any, Callable, Mapping

import httpx

from . import catalog
from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CompassError,
    CompassWarning,
    NotFoundError,
    RateLimitError,
    ServerError,
    StreamError,
)
from .keyguard import LONG_KEY, scrub, scrub_value
from .settings import config, mask_key, redact, redact_value
from .reply import Reply
from .request import build_body
from .shapes import describe
from .sse import aiter_data, iter_data
from .stream import Accumulator, EventReader, Observer, _server_error

__all__ = ["Client", "null_content_as_empty", "register_body_adapter", "unregister_body_adapter"]

# base URL -> a function that rewrites a validated body for a server with its own dialect
# (the local llama.cpp server reads `seed`, not `random_seed`, for one).
_BODY_ADAPTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def register_body_adapter(base_url: str, adapter: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Rewrite every request body sent to ``base_url`` with ``adapter`` (after validation)."""
    _BODY_ADAPTERS[base_url.rstrip("/")] = adapter


def unregister_body_adapter(base_url: str) -> None:
    _BODY_ADAPTERS.pop(base_url.rstrip("/"), None)

RETRY_AFTER_CAP = 60.0  # never sleep longer than this on the server's say-so
_USER_AGENT = "compass-jupyter"


# Servers seen refusing ``"content": null`` beside ``tool_calls`` (llama.cpp's answers with a
# validation error): their later requests carry an empty string there instead.
_EMPTY_CONTENT_BASES: set[str] = set()


def _has_null_assistant_content(body: Mapping[str, Any]) -> bool:
    return any(m.get("role") == "assistant" and m.get("content") is None for m in body.get("messages", []))


def null_content_as_empty(body: dict[str, Any]) -> dict[str, Any]:
    """The body with ``"content": ""`` where an assistant message has null content (beside tool_calls)."""
    messages = [
        {**m, "content": ""} if m.get("role") == "assistant" and m.get("content") is None else m
        for m in body.get("messages", [])
    ]
    return {**body, "messages": messages}


class _Resend(Exception):
    """Internal: the server refused a shape it has a twin for; send the twin at once."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body


class _Retryable(Exception):
    """Internal: an attempt failed in a way worth another try."""

    def __init__(self, error: APIError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
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


def _server_message(body: bytes, limit: int = 400) -> str:
    """The human part of an error body: error.message, or a short form of the text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        data = None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("msg")
            if message:
                return str(message)[:limit]
        elif isinstance(error, str):
            return error[:limit]
        if isinstance(data.get("detail"), (str, list)):
            return str(data["detail"])[:limit]
    if "Traceback (most recent call last)" in text:
        # Some servers (llama.cpp) put a Python traceback in 500 bodies: its last line is the point.
        lines = [line for line in text.splitlines() if line.strip()]
        return f"server traceback ending in: {lines[-1].strip()[:limit]}"
    return text[:limit] or "(empty body)"


class Client:
    """A Compass chat-completions client, sync (``chat``) and async (``achat``).

    Settings not given here come from the kernel's settings, then the
    environment (``COMPASS_API_KEY``, ``COMPASS_BASE_URL``, ``COMPASS_API_STYLE``,
    ``COMPASS_API_VERSION``, ``COMPASS_MODEL``), then the defaults; they are
    read at each request, so a client made early follows later changes.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        api_style: str | None = None,
        api_version: str | None = None,
        model: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        strict: bool | None = None,
        keep_raw: bool | None = None,
        backoff: float = 0.5,
    ) -> None:
        from .settings import SPECS

        self._explicit: dict[str, Any] = {}
        for name, value in (
            ("api_key", api_key),
            ("base_url", base_url),
            ("api_style", api_style),
            ("api_version", api_version),
            ("model", model),
            ("timeout", timeout),
            ("max_retries", max_retries),
            ("strict", strict),
            ("keep_raw", keep_raw),
        ):
            if value is not None:
                self._explicit[name] = SPECS[name].parse(name, value)
        self.backoff = backoff
        self._http: httpx.Client | None = None
        self._ahttp: httpx.AsyncClient | None = None

    # -- settings --------------------------------------------------------------------
    def setting(self, name: str) -> Any:
        if name in self._explicit:
            return self._explicit[name]
        return config.get(name)

    @property
    def base_url(self) -> str:
        return self.setting("base_url")

    @property
    def api_style(self) -> str:
        return self.setting("api_style")

    @property
    def model(self) -> str:
        return self.setting("model")

    def _key(self) -> str:
        key = self._explicit.get("api_key")
        return key if key else config.require_key()

    def __repr__(self) -> str:
        key = self._explicit.get("api_key") or config.get("api_key")
        return f"Client(base_url={self.base_url!r}, api_style={self.api_style!r}, api_key={mask_key(key)!r})"

    def url_for(self, model: str) -> str:
        base = self.base_url.rstrip("/")
        if self.api_style == "azure":
            return f"{base}/openai/deployments/{model}/chat/completions"
        return f"{base}/v1/chat/completions"

    def _params(self) -> dict[str, str]:
        return {"api-version": self.setting("api_version")} if self.api_style == "azure" else {}

    def _headers(self) -> dict[str, str]:
        return {"api-key": self._key(), "user-agent": _USER_AGENT, "accept": "application/json, text/event-stream"}

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.setting("timeout"), connect=min(10.0, self.setting("timeout")))

    # -- preparing ----------------------------------------------------------------------
    def prepare(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        stream: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> tuple[str, dict[str, Any], list[str]]:
        """Validate and build (url, body, warnings) without sending anything."""
        model = model or self.model
        body, warnings = build_body(
            model=model,
            messages=messages,
            stream=stream,
            fields=fields,
            strict=bool(self.setting("strict")),
            extra_body=extra_body,
        )
        self._key()  # a missing key is a ConfigError before anything is sent
        adapter = _BODY_ADAPTERS.get(self.base_url.rstrip("/"))
        if adapter is not None:
            body = adapter(body)
        if self.base_url.rstrip("/") in _EMPTY_CONTENT_BASES:
            body = null_content_as_empty(body)
        return self.url_for(model), body, warnings

    @staticmethod
    def _warn(warnings: list[str]) -> None:
        for message in warnings:
            _warnings.warn(message, CompassWarning, stacklevel=3)

    # -- sync ---------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        if self._http is None:
            # Redirects are not followed: httpx would resend the api-key header to wherever
            # the server points (it strips only Authorization), so a redirect is an error.
            self._http = httpx.Client(follow_redirects=False)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        stream: bool = True,
        on_delta: Observer | None = None,
        extra_body: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Reply:
        """Send one chat-completions request and return the Reply.

        With ``stream=True`` (the default) ``on_delta`` is called for every chunk.
        Ctrl-C closes the connection; the KeyboardInterrupt carries the partial
        reply as ``.reply``.
        """
        url, body, warnings = self.prepare(messages, model=model, stream=stream, extra_body=extra_body, **fields)
        self._warn(warnings)
        attempts = int(self.setting("max_retries")) + 1
        failed = 0
        while True:
            reply = Reply(model=body.get("model"), request=body, warnings=list(warnings))
            try:
                return self._attempt(url, body, reply, on_delta)
            except _Resend as resend:
                body = resend.body  # the same request in the server's dialect: not a failed attempt
                continue
            except _Retryable as retry:
                failed += 1
                error, retry_after = retry.error, retry.retry_after
            if failed >= attempts:
                break
            time.sleep(self._delay(failed - 1, retry_after))
        # Raised outside the except blocks, so the exception chain holds no httpx request (and no key).
        raise self._final(error, attempts)

    def _attempt(self, url: str, body: dict[str, Any], reply: Reply, on_delta: Observer | None) -> Reply:
        accumulator = self._accumulator(reply, on_delta)
        received = False
        failure: BaseException | None = None
        try:
            with self._client().stream(
                "POST", url, params=self._params(), headers=self._headers(), json=body, timeout=self._timeout()
            ) as response:
                if response.status_code >= 300:
                    self._raise_status(response.status_code, response.read(), response.headers, body)
                if body.get("stream") and _is_event_stream(response):
                    reader = EventReader(accumulator)
                    for data in iter_data(response.iter_lines()):
                        received = True
                        if reader.data(data):
                            break
                    reader.end()
                else:
                    received = True
                    accumulator.feed_completion(_parse_json(response.read(), accumulator))
        except (KeyboardInterrupt, asyncio.CancelledError, CompassError, httpx.HTTPError) as exc:
            failure = self._failed(exc, accumulator, received)
        if failure is not None:
            # Raised outside the except block: the chain keeps no httpx request, whose headers hold the key.
            raise failure
        return self._scrub_reply(accumulator.finish())

    # -- async --------------------------------------------------------------------------
    def _aclient(self) -> httpx.AsyncClient:
        if self._ahttp is None:
            self._ahttp = httpx.AsyncClient(follow_redirects=False)
        return self._ahttp

    async def aclose(self) -> None:
        if self._ahttp is not None:
            await self._ahttp.aclose()
            self._ahttp = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def achat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        stream: bool = True,
        on_delta: Observer | None = None,
        extra_body: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> Reply:
        """The async twin of :meth:`chat`; cancelling the task closes the connection."""
        url, body, warnings = self.prepare(messages, model=model, stream=stream, extra_body=extra_body, **fields)
        self._warn(warnings)
        attempts = int(self.setting("max_retries")) + 1
        failed = 0
        while True:
            reply = Reply(model=body.get("model"), request=body, warnings=list(warnings))
            try:
                return await self._aattempt(url, body, reply, on_delta)
            except _Resend as resend:
                body = resend.body  # the same request in the server's dialect: not a failed attempt
                continue
            except _Retryable as retry:
                failed += 1
                error, retry_after = retry.error, retry.retry_after
            if failed >= attempts:
                break
            await asyncio.sleep(self._delay(failed - 1, retry_after))
        raise self._final(error, attempts)

    async def _aattempt(self, url: str, body: dict[str, Any], reply: Reply, on_delta: Observer | None) -> Reply:
        accumulator = self._accumulator(reply, on_delta)
        received = False
        failure: BaseException | None = None
        try:
            async with self._aclient().stream(
                "POST", url, params=self._params(), headers=self._headers(), json=body, timeout=self._timeout()
            ) as response:
                if response.status_code >= 300:
                    self._raise_status(response.status_code, await response.aread(), response.headers, body)
                if body.get("stream") and _is_event_stream(response):
                    reader = EventReader(accumulator)
                    async for data in aiter_data(response.aiter_lines()):
                        received = True
                        if reader.data(data):
                            break
                    reader.end()
                else:
                    received = True
                    accumulator.feed_completion(_parse_json(await response.aread(), accumulator))
        except (KeyboardInterrupt, asyncio.CancelledError, CompassError, httpx.HTTPError) as exc:
            failure = self._failed(exc, accumulator, received)
        if failure is not None:
            # Raised outside the except block: the chain keeps no httpx request, whose headers hold the key.
            raise failure
        return self._scrub_reply(accumulator.finish())

    # -- errors and retries ---------------------------------------------------------------
    def _failed(self, exc: BaseException, accumulator: Accumulator, received: bool) -> BaseException:
        """What to raise when an attempt ends early; the partial reply always travels with it."""
        reply = self._scrub_reply(accumulator.finish())
        if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            # Ctrl-C or a cancelled task: the connection is closed by now; keep what arrived.
            reply.incomplete = reply.interrupted = True
            exc.reply = reply  # type: ignore[attr-defined]
            return exc
        if isinstance(exc, CompassError):
            if exc.reply is not None:
                exc.reply.incomplete = True
            return self._scrub_error(exc)
        error = self._transport_error(exc, reply, received)  # type: ignore[arg-type]
        return error if isinstance(error, _Retryable) else self._scrub_error(error)  # type: ignore[arg-type]

    def _accumulator(self, reply: Reply, on_delta: Observer | None) -> Accumulator:
        return Accumulator(reply, observers=[on_delta] if on_delta else None, keep_raw=bool(self.setting("keep_raw")))

    def _keys(self) -> tuple[str | None, ...]:
        return (self._explicit.get("api_key"),)

    def _scrub_error(self, error: CompassError) -> CompassError:
        """The error with the key (and pieces of it) gone from its message and body: servers echo keys."""
        error.message = redact(error.message, *self._keys())
        error.args = (error.message,)
        if isinstance(error, APIError) and error.body is not None:
            error.body = redact_value(error.body, *self._keys())
        return error

    def _scrub_reply(self, reply: Reply) -> Reply:
        """Hide the key wherever a server put it into the reply itself (keys of secret length only)."""
        keys = self._keys()

        def redact(text: str, *extra: str | None) -> str:
            return scrub(text, (*extra, config.get("api_key")), min_key=LONG_KEY, pieces=False)

        for choice in reply.choices:
            for name in ("text", "reasoning", "refusal"):
                value = getattr(choice, name)
                if value:
                    setattr(choice, name, redact(value, *keys))
            for call in choice.tool_calls:
                call.arguments_json = redact(call.arguments_json, *keys)
                call.id, call.name = redact(call.id, *keys), redact(call.name, *keys)
            if choice.audio is not None and choice.audio.transcript:
                choice.audio.transcript = redact(choice.audio.transcript, *keys)
        reply.warnings = [redact(w, *keys) for w in reply.warnings]
        for name in ("id", "model", "system_fingerprint", "error"):
            value = getattr(reply, name)
            if isinstance(value, str):
                setattr(reply, name, redact(value, *keys))
        if reply.raw is not None:
            reply.raw = scrub_value(reply.raw, (*keys, config.get("api_key")), min_key=LONG_KEY, pieces=False)
        return reply

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP)
        # Exponential backoff with a little jitter so parallel cells do not retry in lockstep.
        return self.backoff * (2**attempt) * (1 + random.random() * 0.1)

    def _raise_status(self, status: int, raw: bytes, headers: Mapping[str, str], body: dict[str, Any]) -> None:
        message = redact(_server_message(raw), self._explicit.get("api_key"))
        if status in (400, 422, 500) and "validation error" in message.lower() and _has_null_assistant_content(body):
            # null content beside tool_calls is the API's own shape, but some OpenAI-compatible
            # servers (llama.cpp) only take a string there: resend once with "" and remember.
            _EMPTY_CONTENT_BASES.add(self.base_url.rstrip("/"))
            raise _Resend(null_content_as_empty(body))
        try:
            parsed: Any = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            parsed = raw.decode("utf-8", "replace")[:2000]
        model = body.get("model")
        if status < 400:
            target = redact(str(headers.get("location") or "(no location given)"), self._explicit.get("api_key"))[:200]
            raise APIConnectionError(
                f"{self.base_url} answered with a redirect (HTTP {status}) to {target}. Requests are not followed to "
                "another address, so the API key is not sent there: set COMPASS_BASE_URL to the server's real root.",
                status_code=status,
                body=parsed,
            )
        if status in (401, 403):
            raise AuthenticationError(
                f"Compass refused the API key (HTTP {status}): {message} "
                "Check COMPASS_API_KEY or run %compass key to enter it again "
                f"(the key in use is {mask_key(self._explicit.get('api_key') or config.get('api_key'))}).",
                status_code=status,
                body=parsed,
            )
        if status == 404:
            near = catalog.nearest(str(model)) if model and catalog.get(str(model)) is None else []
            hint = f" Nearest known ids: {', '.join(near)}." if near else ""
            raise NotFoundError(
                f"Model or deployment {model!r} was not found at {self.base_url} (HTTP 404): {message} "
                f"Check the id with %compass models and the route (api_style={self.api_style}).{hint}",
                status_code=status,
                body=parsed,
            )
        if status == 429:
            raise _Retryable(
                RateLimitError(f"Compass is rate limiting this key (HTTP 429): {message}", status_code=status, body=parsed),
                _retry_after_seconds(headers),
            )
        if status >= 500:
            raise _Retryable(
                ServerError(f"Compass had a server error (HTTP {status}): {message}", status_code=status, body=parsed),
                _retry_after_seconds(headers),
            )
        raise BadRequestError(
            f"Compass rejected the request (HTTP {status}): {message}", status_code=status, body=parsed
        )

    def _final(self, error: APIError, attempts: int) -> APIError:
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
        return self._scrub_error(error)  # type: ignore[return-value]

    def _transport_error(self, exc: httpx.HTTPError, reply: Reply, received: bool) -> Exception:
        detail = redact(str(exc) or type(exc).__name__, self._explicit.get("api_key"))
        if received or reply.choices:
            # Data had arrived: retrying would duplicate it, so report a broken stream.
            reply.incomplete = True
            return StreamError(
                f"The stream broke off before the reply finished ({type(exc).__name__}: {detail}). "
                "The partial reply is kept and marked incomplete.",
                reply=reply,
            )
        if isinstance(exc, httpx.TimeoutException):
            return _Retryable(
                APITimeoutError(f"No answer from {self.base_url} within {self.setting('timeout'):g}s ({detail})")
            )
        if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return _Retryable(APIConnectionError(f"Could not reach {self.base_url} ({type(exc).__name__}: {detail})"))
        return APIConnectionError(f"The request to {self.base_url} failed ({type(exc).__name__}: {detail}).")


def _is_event_stream(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "").lower()
    if "text/event-stream" in content_type:
        return True
    # A server that ignores stream=true answers with one JSON document; read it as such.
    if "json" in content_type or not content_type:
        return False
    raise StreamError(
        f"The server answered a streamed request with {content_type!r} instead of an event stream. "
        "Check COMPASS_BASE_URL, or send with stream=False (--no-stream)."
    )


def _parse_json(raw: bytes, accumulator: Accumulator) -> dict[str, Any]:
    reply = accumulator.reply
    if not raw.strip() and reply.request.get("stream"):
        EventReader(accumulator).end()  # raises the "empty stream" error with its advice
    reason = None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        reason = "not JSON"
    except RecursionError:
        reason = "nested too deeply to read"
    if reason is not None:  # raised outside the except block: the decoder's error holds the body
        reply.incomplete = True
        shown = raw[:120].decode("utf-8", "replace")
        raise StreamError(
            f"The server's answer is {reason}: {shown!r}. Check COMPASS_BASE_URL; nothing was added to the history.",
            body=raw[:2000].decode("utf-8", "replace"),
            reply=reply,
            broke_off=False,
        )
    if not isinstance(data, dict):
        reply.incomplete = True
        raise StreamError(
            f"The server's answer is {describe(data)}, not a JSON object. Check COMPASS_BASE_URL; nothing was added "
            "to the history.",
            body=data,
            reply=reply,
            broke_off=False,
        )
    if data.get("error") is not None and not data.get("choices"):
        raise BadRequestError(f"Compass reported an error: {_server_error(data['error'])}", body=data)
    return data

