"""The HTTP client: routes, the api-key header, retries, timeouts, and the error boundary.

Every transport error and every error status is translated, once, into the
exceptions of :mod:`compass_jupyter._exceptions` (the messages are in
:mod:`compass_jupyter.http_errors`). Responses are read inside ``with
...stream(...)`` blocks so connections always close, also on Ctrl-C. The retry
loop's decisions live in one place, :class:`_Call`, for ``chat`` and ``achat``
alike; each server's request shape is the client's :class:`~compass_jupyter.dialect.Dialect`.
"""

from __future__ import annotations

import asyncio
import random
import time
import warnings as _warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple

import httpx

from ._exceptions import (
    APIError,
    CassetteError,
    CompassError,
    CompassNotice,
    CompassWarning,
    StreamError,
)
from .answer_body import is_event_stream, read_completion
from .choices import Choices
from .dialect import Dialect
from .http_errors import (
    Failure,
    gave_up,
    server_message,
    status_failure,
    transport_failure,
)
from .keyguard import scrub_reply
from .reply import Reply
from .request import build_body
from .settings import config, mask_key, redact, redact_value
from .sse import aiter_data, iter_data
from .store.cassette import recorded_error
from .store.records import chunks, recorded_latency
from .stream import Accumulator, EventReader, Observer

if TYPE_CHECKING:
    from .store.exchanges import Passage

__all__ = ["Client"]

RETRY_AFTER_CAP = 60.0  # never sleep longer than this on the server's say-so
_USER_AGENT = "compass-jupyter"
# What ends an attempt early: caught, turned into a _Step, and raised by the driver outside the except block.
_ENDS_AN_ATTEMPT = (KeyboardInterrupt, asyncio.CancelledError, CompassError, httpx.HTTPError)


class Client:
    """A Compass chat-completions client, sync (``chat``) and async (``achat``).

    Settings not given here come from the kernel's settings, then the
    environment (``COMPASS_API_KEY``, ``COMPASS_BASE_URL``, ``COMPASS_API_STYLE``,
    ``COMPASS_API_VERSION``, ``COMPASS_MODEL``), then the defaults; they are
    read at each request, so a client made early follows later changes.

    ``http_client`` / ``async_http_client``: an ``httpx.Client`` /
    ``httpx.AsyncClient`` to send with, used as it is (its transport, proxies,
    certificates, headers and timeouts; the ``timeout`` setting then does not
    apply) and never closed here: its owner closes it. Without one, the client
    builds its own on first use and :meth:`close` / :meth:`aclose` close it.
    Redirects are never followed, whatever the given client says: httpx would
    send the ``api-key`` header on to wherever the server points.

    ``dialect``: the :class:`~compass_jupyter.dialect.Dialect` of the server,
    which rewrites every body before it is sent and learns the server's quirks
    (the default rewrites nothing and learns to send ``""`` for null assistant
    content when a server refuses it). Each client has its own.
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
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        dialect: Dialect | None = None,
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
        self.dialect = dialect if dialect is not None else Dialect()
        self._http: httpx.Client | None = http_client
        self._ahttp: httpx.AsyncClient | None = async_http_client
        self._given_http, self._given_ahttp = http_client is not None, async_http_client is not None

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

    def _timeout(self, given: bool) -> Any:
        if given:
            return httpx.USE_CLIENT_DEFAULT  # the caller's client keeps its own timeouts
        return httpx.Timeout(self.setting("timeout"), connect=min(10.0, self.setting("timeout")))

    # -- preparing ----------------------------------------------------------------------
    def prepare(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        stream: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        need_key: bool = True,
        **fields: Any,
    ) -> tuple[str, dict[str, Any], list[str]]:
        """Validate and build (url, body in the server's dialect, warnings) without sending anything.

        ``need_key=False`` skips the key check; a cassette being replayed answers without one too.
        """
        from .store.exchanges import replaying_cassette

        url, _asked, sent, warnings, notices = self._build(
            messages, model=model, stream=stream, extra_body=extra_body, **fields
        )
        if need_key and not replaying_cassette():
            self._key()  # a missing key is a ConfigError before anything is sent
        return url, sent, warnings + notices

    def _build(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str | None = None,
        stream: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> tuple[str, dict[str, Any], dict[str, Any], list[str], list[str]]:
        """(url, the body as asked, the body in the server's dialect, warnings, notices); nothing is sent.

        The notices are the dialect's lines on what the server will do differently from what was
        asked, as expected: information, kept apart from the warnings.
        """
        model = model or self.model
        asked, warnings = build_body(
            model=model,
            messages=messages,
            stream=stream,
            fields=fields,
            strict=bool(self.setting("strict")),
            extra_body=extra_body,
        )
        self.dialect.serving(self.base_url)
        return self.url_for(model), asked, self.dialect.adapt(asked), warnings, self.dialect.notices(asked)

    def _call(
        self, messages: list[dict[str, Any]], on_delta: Observer | None, cache: str | None, **prepared: Any
    ) -> _Call:
        """Validate and build the request (warning about what needs it) for chat/achat's loop."""
        from .store.exchanges import Passage

        url, asked, body, warnings, notices = self._build(messages, **prepared)
        passage = Passage(route=self.dialect.route(url), body=body, asked=asked, cache=_cache_mode(cache))
        if not passage.replaying:
            self._key()  # a missing key is a ConfigError before anything is sent
        for message in warnings:
            _warnings.warn(message, CompassWarning, stacklevel=3)  # the caller of chat/achat
        for message in notices:
            _warnings.warn(message, CompassNotice, stacklevel=3)
        call = _Call(self, url, body, warnings, on_delta, passage)
        call.notices = notices
        return call

    # -- sync ---------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(follow_redirects=False)
        return self._http

    def close(self) -> None:
        """Close the httpx.Client this client built (a given ``http_client`` stays open)."""
        if self._http is not None and not self._given_http:
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
        cache: str | None = None,
        **fields: Any,
    ) -> Reply:
        """Send one chat-completions request and return the Reply.

        With ``stream=True`` (the default) ``on_delta`` is called for every chunk.
        Ctrl-C closes the connection; the KeyboardInterrupt carries the partial
        reply as ``.reply``. ``cache`` ('on', 'off', 'refresh'; None follows the
        ``cache`` setting): 'on' answers a request identical to a stored complete
        one from the store. A cassette being replayed answers every request.
        """
        prepared: dict[str, Any] = dict(model=model, stream=stream, extra_body=extra_body, **fields)
        call = self._call(messages, on_delta, cache, **prepared)
        replayed = call.replayed()
        if replayed is not None:
            return replayed
        split = Choices.needed(call, messages, prepared)
        return split.run(self._send) if split is not None else self._send(call)

    def _send(self, call: _Call) -> Reply:
        """Every attempt of one request, until a reply or an error."""
        while True:
            step = self._attempt(call)
            if step.reply is not None:
                return call.kept(step.reply)
            if step.error is not None:
                # Raised outside the except block: the chain keeps no httpx request, whose headers hold the key.
                raise call.kept_error(step.error)
            if step.delay:
                time.sleep(step.delay)

    def _attempt(self, call: _Call) -> _Step:
        try:
            with self._client().stream(**call.begin(self._given_http)) as response:
                if response.status_code >= 300:
                    return call.refused(response.status_code, response.read(), response.headers)
                if call.streaming(response):
                    for data in iter_data(response.iter_lines()):
                        if call.data(data):
                            break
                    call.end()
                else:
                    call.completion(response.read())
        except _ENDS_AN_ATTEMPT as exc:
            return call.failed(exc)
        return call.finished()

    # -- async --------------------------------------------------------------------------
    def _aclient(self) -> httpx.AsyncClient:
        if self._ahttp is None:
            self._ahttp = httpx.AsyncClient(follow_redirects=False)
        return self._ahttp

    async def aclose(self) -> None:
        """Close the httpx.AsyncClient this client built (a given ``async_http_client`` stays open)."""
        if self._ahttp is not None and not self._given_ahttp:
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
        cache: str | None = None,
        **fields: Any,
    ) -> Reply:
        """The async twin of :meth:`chat`; cancelling the task closes the connection."""
        prepared: dict[str, Any] = dict(model=model, stream=stream, extra_body=extra_body, **fields)
        call = self._call(messages, on_delta, cache, **prepared)
        replayed = call.replayed()
        if replayed is not None:
            return replayed
        split = Choices.needed(call, messages, prepared)
        return await (split.arun(self._asend) if split is not None else self._asend(call))

    async def _asend(self, call: _Call) -> Reply:
        """The async twin of :meth:`_send`."""
        while True:
            step = await self._aattempt(call)
            if step.reply is not None:
                return call.kept(step.reply)
            if step.error is not None:
                # Raised outside the except block: the chain keeps no httpx request, whose headers hold the key.
                raise call.kept_error(step.error)
            if step.delay:
                await asyncio.sleep(step.delay)

    async def _aattempt(self, call: _Call) -> _Step:
        try:
            async with self._aclient().stream(**call.begin(self._given_ahttp)) as response:
                if response.status_code >= 300:
                    return call.refused(response.status_code, await response.aread(), response.headers)
                if call.streaming(response):
                    async for data in aiter_data(response.aiter_lines()):
                        if call.data(data):
                            break
                    call.end()
                else:
                    call.completion(await response.aread())
        except _ENDS_AN_ATTEMPT as exc:
            return call.failed(exc)
        return call.finished()

    # -- scrubbing and backoff --------------------------------------------------------------
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
        return scrub_reply(reply, (*self._keys(), config.get("api_key")))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP)
        # Exponential backoff with a little jitter so parallel cells do not retry in lockstep.
        return self.backoff * (2**attempt) * (1 + random.random() * 0.1)


class _Step(NamedTuple):
    """What the retry loop does after an attempt: return ``reply``, raise ``error``, or go again after ``delay`` s."""

    reply: Reply | None = None
    error: BaseException | None = None
    delay: float = 0.0


class _Call:
    """One chat request through all its attempts: every decision of the retry loop is made here.

    ``chat`` and ``achat`` only do the I/O. For each attempt they open the stream
    with the arguments :meth:`begin` gives, hand what arrives to :meth:`refused`
    (an error status), :meth:`data` and :meth:`end` (an event stream) or
    :meth:`completion` (one JSON document), and act on the :class:`_Step` that
    :meth:`refused`, :meth:`failed` or :meth:`finished` returns. The rules:
    a refusal the dialect can fix is resent at once (not a failed attempt);
    429, 5xx, connection errors and timeouts are retried with backoff (honouring
    Retry-After, capped) until ``max_retries``, then given up on with advice;
    nothing is retried once data arrived; an interrupt carries the partial reply.
    """

    def __init__(
        self,
        client: Client,
        url: str,
        body: dict[str, Any],
        warnings: list[str],
        on_delta: Observer | None,
        passage: Passage,
    ):
        self.client, self.url, self.body, self.warnings, self.on_delta = client, url, body, warnings, on_delta
        self.passage = passage
        self.notices: list[str] = []  # the dialect's lines: on reply.notices, apart from the warnings
        self.reached = False  # a server answered (the store keeps only requests that reached one)
        self.attempts = int(client.setting("max_retries")) + 1
        self.failures = 0
        self.accumulator: Accumulator | None = None
        # Replaced for a part of a request split into choices (compass_jupyter.choices).
        self.make_accumulator: Callable[[Reply, Observer | None], Accumulator] = client._accumulator
        self.reader: EventReader | None = None
        self.received = self.given_http = False

    # -- one attempt ------------------------------------------------------------------------
    def begin(self, given_http: bool) -> dict[str, Any]:
        """A fresh reply for the next attempt, and the keyword arguments of its ``stream(...)`` call."""
        client = self.client
        reply = Reply(
            model=self.body.get("model"), request=self.body, warnings=list(self.warnings), notices=list(self.notices)
        )
        self.accumulator = self.make_accumulator(reply, self.on_delta)
        self.reader, self.received, self.given_http = None, False, given_http
        return {
            "method": "POST",
            "url": self.url,
            "params": client._params(),
            "json": self.body,
            "timeout": client._timeout(given_http),
            # Never followed, even by a given client that would: httpx strips only Authorization,
            # so the api-key header would go wherever the server points.
            "follow_redirects": False,
            "headers": client._headers(),
        }

    def streaming(self, response: httpx.Response) -> bool:
        """True when the answer is an event stream (read with :meth:`data`), False for one JSON document."""
        self.reached = True
        if self.body.get("stream") and is_event_stream(response):
            self.reader = EventReader(self._accumulator())
            return True
        return False

    def data(self, data: str) -> bool:
        """One SSE ``data:`` payload; True at the end of the stream."""
        self.received = True
        assert self.reader is not None
        return self.reader.data(data)

    def end(self) -> None:
        assert self.reader is not None
        self.reader.end()

    def completion(self, raw: bytes) -> None:
        self.received = True
        accumulator = self._accumulator()
        accumulator.feed_completion(read_completion(raw, accumulator))

    def finished(self) -> _Step:
        return _Step(reply=self.client._scrub_reply(self._accumulator().finish()))

    def refused(self, status: int, raw: bytes, headers: Mapping[str, str]) -> _Step:
        """An answer with an error status (or a redirect)."""
        self.reached = True
        client = self.client
        key = client._explicit.get("api_key")
        message = server_message(raw, key)
        resend = client.dialect.resend_for(status, message, self.body)
        if resend is not None:
            self.body = resend  # the same request in the server's dialect: not a failed attempt
            return _Step()
        model = self.body.get("model")
        failure = status_failure(
            status,
            raw,
            headers,
            message=message,
            base_url=client.base_url,
            api_style=client.api_style,
            model=model,
            key=key,
        )
        return self._after(failure)

    def failed(self, exc: BaseException) -> _Step:
        """An attempt ended early by ``exc``; the partial reply always travels with what is raised."""
        client = self.client
        reply = client._scrub_reply(self._accumulator().finish())
        if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
            # Ctrl-C or a cancelled task: the connection is closed by now; keep what arrived.
            reply.incomplete = reply.interrupted = True
            exc.reply = reply  # type: ignore[union-attr]
            return _Step(error=exc)
        if isinstance(exc, CompassError):
            if exc.reply is not None:
                exc.reply.incomplete = True
            return _Step(error=client._scrub_error(exc))
        assert isinstance(exc, httpx.HTTPError)
        key = client._explicit.get("api_key")
        if self.received or reply.choices:
            # Data had arrived: retrying would duplicate it, so report a broken stream.
            reply.incomplete = True
            detail = redact(str(exc) or type(exc).__name__, key)
            broken = StreamError(
                f"The stream broke off before the reply finished ({type(exc).__name__}: {detail}). "
                "The partial reply is kept and marked incomplete.",
                reply=reply,
            )
            return _Step(error=client._scrub_error(broken))
        timeout = None if self.given_http else client.setting("timeout")
        return self._after(transport_failure(exc, base_url=client.base_url, timeout=timeout, key=key))

    # -- the store -------------------------------------------------------------------------
    def replayed(self) -> Reply | None:
        """The reply from a cassette being replayed or the replay cache, built as a live one; else None."""
        found = self.passage.answer()
        if found is None:
            return None
        response, source = found
        if "completion" not in response:
            raise self.client._scrub_error(recorded_error(response, self.passage.cassette))
        reply = Reply(
            model=self.body.get("model"),
            request=self.body,
            warnings=list(self.warnings),
            notices=list(self.notices),
            source=source,
        )
        accumulator = self.make_accumulator(reply, self.on_delta)
        try:
            if self.body.get("stream"):
                # Replayed as a stream, so live views show it arriving as they would from a server.
                for chunk in chunks(response["completion"]):
                    accumulator.feed(chunk)
            else:
                accumulator.feed_completion(response["completion"])
        except StreamError as exc:
            if source == "cache":
                return None  # a stored answer this version cannot read: ask the server instead
            where = self.passage.cassette.path if self.passage.cassette is not None else "in use"
            raise CassetteError(
                f"The cassette {where} holds an answer that cannot be read ({exc}). Record it again with "
                "COMPASS_CASSETTE_MODE=record (or %compass record PATH)."
            ) from None
        reply = accumulator.finish()
        recorded_latency(reply, response.get("latency"))
        return reply

    def kept(self, reply: Reply) -> Reply:
        """The reply, after the store (and a cassette being recorded) kept it."""
        self.passage.keep(reply)
        return reply

    def kept_error(self, error: BaseException) -> BaseException:
        """The error to raise, after the store kept it when the request had reached a server."""
        if self.reached:
            self.passage.keep(getattr(error, "reply", None), error)
        return error

    # -- between attempts -------------------------------------------------------------------
    def _after(self, failure: Failure) -> _Step:
        """Retry (after a delay) or give up: the one place this is decided."""
        client = self.client
        if not failure.retryable:
            return _Step(error=client._scrub_error(failure.error))
        self.failures += 1
        if self.failures >= self.attempts:
            return _Step(error=client._scrub_error(gave_up(failure.error, self.attempts)))
        return _Step(delay=client._delay(self.failures - 1, failure.retry_after))

    def _accumulator(self) -> Accumulator:
        assert self.accumulator is not None, "begin() comes first"
        return self.accumulator


def _cache_mode(cache: str | None) -> str | None:
    if cache is None:
        return None
    from .settings import SPECS

    return str(SPECS["cache"].parse("cache", cache))
