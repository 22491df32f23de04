"""Turning what the server sends into a :class:`~compass_jupyter.reply.Reply`.

:class:`Accumulator` takes chat.completion chunks one at a time (or one whole
non-streamed completion) and keeps the Reply current, publishing a
:class:`Delta` to observers after each chunk so views can render as it arrives.
:class:`EventReader` turns SSE ``data:`` payloads into chunks and knows the
end-of-stream rules. Neither does I/O; :mod:`compass_jupyter.client` feeds them.

Servers are not trusted: every value is read through :mod:`compass_jupyter.shapes`,
so a value of the wrong type becomes a :class:`StreamError` that names where it
was (``choices[0].delta.content is a number (5), not text``) and keeps the partial
reply. Growing text is appended in O(1) (see ``reply._Joined``), so time is linear
in the reply's length, and the chunks themselves are dropped unless ``keep_raw``.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from . import shapes
from ._exceptions import StreamError
from .counting import counted_usage
from .reply import Audio, Choice, Reply, TokenLogprob, ToolCall, Usage, append
from .shapes import ShapeError

__all__ = ["Delta", "Observer", "Accumulator", "EventReader", "MAX_CHOICES"]

MAX_CHOICES = 128  # the reference's largest n: a higher choice index is a broken server, not a reply

# What a server's data can raise in the readers below besides ShapeError. Observers are
# called outside this net, so their own exceptions (a Stop button's Cancelled) pass through.
_READ_ERRORS = (ShapeError, TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)


@dataclass
class Delta:
    """What one chunk added to one choice (or only usage, with ``choice`` None)."""

    reply: Reply
    choice: int | None = None
    text: str = ""
    reasoning: str = ""
    tool_call: ToolCall | None = None
    audio: bytes = b""
    transcript: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None


Observer = Callable[[Delta], None]


class _AudioBuffer:
    """Base64 pieces of streamed audio, decoded in whole 4-character groups."""

    def __init__(self) -> None:
        self.pending = ""

    def add(self, piece: str) -> bytes:
        self.pending += "".join(piece.split())
        usable = len(self.pending) - len(self.pending) % 4
        chunk, self.pending = self.pending[:usable], self.pending[usable:]
        return base64.b64decode(chunk, validate=True) if chunk else b""


def _usage(value: Any, path: str, warnings: list[str]) -> Usage | None:
    """Usage is informational: a field of the wrong type is dropped with a warning, the reply kept."""
    if value is not None and not isinstance(value, dict):
        _warn_once(
            warnings, f"The server sent {path} as {shapes.describe(value)}; usage is counted from the reply instead."
        )
        return None
    if not value:
        return None
    data: dict[str, Any] = value

    def count(source: dict[str, Any], key: str, where: str) -> int | None:
        try:
            return shapes.integer(source.get(key), f"{where}.{key}")
        except ShapeError as exc:
            _warn_once(warnings, f"The server sent {exc}; that count is shown as not reported.")
            return None

    def details(key: str) -> dict[str, Any]:
        inner = data.get(key)
        if inner is None or isinstance(inner, dict):
            return inner or {}
        _warn_once(warnings, f"The server sent {path}.{key} as {shapes.describe(inner)}; those details are not shown.")
        return {}

    completion, prompt = details("completion_tokens_details"), details("prompt_tokens_details")
    return Usage(
        prompt_tokens=count(data, "prompt_tokens", path),
        completion_tokens=count(data, "completion_tokens", path),
        total_tokens=count(data, "total_tokens", path),
        reasoning_tokens=count(completion, "reasoning_tokens", f"{path}.completion_tokens_details"),
        cached_tokens=count(prompt, "cached_tokens", f"{path}.prompt_tokens_details"),
        audio_tokens=count(completion, "audio_tokens", f"{path}.completion_tokens_details"),
        prompt_audio_tokens=count(prompt, "audio_tokens", f"{path}.prompt_tokens_details"),
        raw=data,
        # Not a server's field: a record of usage this client counted (Usage.counted) keeps the mark.
        counted=data.get("counted") is True,
    )


def _warn_once(warnings: list[str], message: str) -> None:
    if message not in warnings:
        warnings.append(message)


def _logprob(value: Any, path: str) -> float:
    # A log probability is at most 0: a server's rounding above it (or nonsense like 710,
    # whose exp overflows in every renderer) is read as 0, i.e. probability 1.
    return min(shapes.number(value, path) or 0.0, 0.0)


def _logprobs(value: Any, path: str) -> list[TokenLogprob] | None:
    """``logprobs.content`` entries; None when the server sent none."""
    content = shapes.obj(value, path).get("content")
    if content is None:
        return None
    tokens = []
    for i, item in enumerate(shapes.seq(content, f"{path}.content")):
        where = f"{path}.content[{i}]"
        entry = shapes.obj(item, where, item=True)
        raw_bytes = shapes.seq(entry.get("bytes"), f"{where}.bytes") if entry.get("bytes") is not None else None
        if raw_bytes is not None:
            raw_bytes = [shapes.integer(b, f"{where}.bytes", high=255) for b in raw_bytes]
        top = []
        for j, alt in enumerate(shapes.seq(entry.get("top_logprobs"), f"{where}.top_logprobs")):
            alt = shapes.obj(alt, f"{where}.top_logprobs[{j}]", item=True)
            top.append(
                (
                    shapes.text(alt.get("token"), f"{where}.top_logprobs[{j}].token") or "",
                    _logprob(alt.get("logprob"), f"{where}.top_logprobs[{j}].logprob"),
                )
            )
        tokens.append(
            TokenLogprob(
                token=shapes.text(entry.get("token"), f"{where}.token") or "",
                logprob=_logprob(entry.get("logprob"), f"{where}.logprob"),
                bytes=raw_bytes,
                top=top,
            )
        )
    return tokens


def _citations(value: Any, path: str) -> list[dict[str, Any]]:
    return [shapes.obj(item, f"{path}[{i}]", item=True) for i, item in enumerate(shapes.seq(value, path))]


def server_error(error: Any) -> str:
    """What to show of an ``error`` the server put in a chunk or a 200 body, whatever its shape."""
    return shapes.error_text(error) or json.dumps(error, default=str)[:400] or "(no message)"


class Accumulator:
    """Builds a Reply from chunks, publishing each change to the observers.

    ``keep_raw`` keeps every chunk (or the whole completion) on ``reply.raw``; by
    default only what the Reply exposes is kept, so a long reply costs little memory.
    """

    def __init__(self, reply: Reply, *, observers: list[Observer] | None = None, keep_raw: bool = False) -> None:
        self.reply = reply
        self.observers = list(observers or [])
        self.started = time.perf_counter()
        self.first_token_at: float | None = None
        self.content_events = 0
        self.chunk_count = 0
        self.whole = False  # one whole completion (not streamed): its pieces cannot be counted
        self.chunks: list[dict[str, Any]] | None = [] if keep_raw else None
        self._audio: dict[int, _AudioBuffer] = {}
        self._calls: dict[tuple[int, int], ToolCall] = {}
        self._named = False  # the reply holds the requested model until the server names the one that answered
        self._labelled = False  # every label read: the common chunk skips them
        audio_request = reply.request.get("audio")
        audio_format = audio_request.get("format") if isinstance(audio_request, dict) else None
        self._audio_format = audio_format if isinstance(audio_format, str) else "pcm16"

    def _first_token(self) -> None:
        # The one measurement of the time to the first token: set on the reply the moment the
        # token arrives, so a live status line shows the number the finished reply keeps
        # (a view timing it from its own start would count the set-up before the request too).
        self.first_token_at = time.perf_counter()
        self.reply.latency.ttft = self.first_token_at - self.started

    # -- streamed -------------------------------------------------------------
    def feed(self, chunk: dict[str, Any]) -> None:
        """Apply one chat.completion.chunk; a chunk of the wrong shape is a StreamError."""
        self.chunk_count += 1
        if self.chunks is not None:
            self.chunks.append(chunk)
        if self._read_plain_text(chunk):
            return
        try:
            deltas = self._read_chunk(chunk)
        except _READ_ERRORS as exc:
            raise self._malformed(exc, "a stream event") from None
        for delta in deltas:
            self._publish(delta)

    def _read_plain_text(self, chunk: dict[str, Any]) -> bool:
        """The common chunk (one choice, index 0, a text piece and nothing else), read in a few checks.

        Almost every chunk of a reply is this one; reading it through the general path costs
        more than parsing its JSON. Anything else, including any value of an odd type, returns
        False and goes the general way, which names what is wrong.
        """
        choices = chunk.get("choices")
        if type(choices) is not list or len(choices) != 1 or chunk.get("usage") is not None:
            return False
        item = choices[0]
        if type(item) is not dict or item.get("finish_reason") is not None or item.get("logprobs") is not None:
            return False
        index = item.get("index", 0)
        delta_in = item.get("delta")
        if index != 0 or type(index) is not int or type(delta_in) is not dict:
            return False
        text = delta_in.get("content")
        if type(text) is not str or len(delta_in) != (2 if "role" in delta_in else 1):
            return False
        if not self._labelled:
            self._read_metadata(chunk)
        reply = self.reply
        choice = reply.choices[0] if reply.choices else reply.choice(0)
        if text:
            append(choice, "text", text)
            self.content_events += 1
            if self.first_token_at is None:
                self._first_token()
        if self.observers:
            self._publish(Delta(reply=reply, choice=0, text=text))
        return True

    def _read_chunk(self, chunk: dict[str, Any]) -> list[Delta]:
        choices = chunk.get("choices")
        if chunk.get("error") is not None and not choices:
            raise StreamError(
                f"The server reported an error in the middle of the stream: {server_error(chunk['error'])}",
                body=chunk,
                reply=self.reply,
                broke_off=False,
            )
        self._read_metadata(chunk)
        deltas = []
        if chunk.get("usage") is not None:
            usage = _usage(chunk.get("usage"), "usage", self.reply.warnings)
            if usage is not None:
                self.reply.usage = usage
                deltas.append(Delta(reply=self.reply, usage=usage))
        # Azure opens with choices == [] carrying prompt_filter_results; usage chunks have none too.
        for i, item in enumerate(shapes.seq(choices, "choices")):
            deltas.append(self._read_choice(shapes.obj(item, f"choices[{i}]", item=True), f"choices[{i}]"))
        return deltas

    def _read_metadata(self, data: dict[str, Any]) -> None:
        # Labels only: a value of the wrong type is ignored rather than costing the reply. The
        # first of each wins (Azure's opening chunk may carry an empty model).
        reply = self.reply
        model = data.get("model")
        if not self._named and isinstance(model, str) and model:
            reply.model, self._named = model, True
        for name in ("id", "system_fingerprint"):
            value = data.get(name)
            if getattr(reply, name) is None and isinstance(value, str) and value:
                setattr(reply, name, value)
        created = data.get("created")
        if reply.created is None and isinstance(created, int) and not isinstance(created, bool):
            reply.created = created
        self._labelled = self._named and reply.id is not None and reply.created is not None

    def _choice(self, data: dict[str, Any], path: str) -> Choice:
        index = shapes.integer(data.get("index"), f"{path}.index", high=MAX_CHOICES - 1) or 0
        return self.reply.choice(index)

    def _read_choice(self, data: dict[str, Any], path: str) -> Delta:
        choice = self._choice(data, path)
        index = choice.index
        delta_in = shapes.obj(data.get("delta"), f"{path}.delta")
        delta = Delta(reply=self.reply, choice=index)

        text = shapes.content_text(delta_in.get("content"), f"{path}.delta.content")
        if text:
            append(choice, "text", text)
            delta.text = text
        reasoning_key = "reasoning_content" if delta_in.get("reasoning_content") is not None else "reasoning"
        reasoning = shapes.text(delta_in.get(reasoning_key), f"{path}.delta.{reasoning_key}")
        if reasoning:
            append(choice, "reasoning", reasoning)
            delta.reasoning = reasoning
        refusal = shapes.text(delta_in.get("refusal"), f"{path}.delta.refusal")
        if refusal:
            append(choice, "refusal", refusal)
        citations = _citations(delta_in.get("citations"), f"{path}.delta.citations")
        if citations:
            choice.citations = (choice.citations or []) + citations
        for j, fragment in enumerate(shapes.seq(delta_in.get("tool_calls"), f"{path}.delta.tool_calls")):
            delta.tool_call = self._merge_tool_call(
                choice,
                shapes.obj(fragment, f"{path}.delta.tool_calls[{j}]", item=True),
                f"{path}.delta.tool_calls[{j}]",
            )
        if delta_in.get("audio") is not None:
            self._read_audio_delta(
                choice, shapes.obj(delta_in["audio"], f"{path}.delta.audio"), delta, f"{path}.delta.audio"
            )
        if data.get("logprobs") is not None:
            tokens = _logprobs(data["logprobs"], f"{path}.logprobs")
            if tokens:
                if choice.logprobs is None:
                    choice.logprobs = []
                choice.logprobs.extend(tokens)
                delta.logprobs = tokens
        finish = shapes.text(data.get("finish_reason"), f"{path}.finish_reason")
        if finish:
            choice.finish_reason = delta.finish_reason = finish

        if delta.text or delta.tool_call or delta.audio or delta.transcript or delta.reasoning:
            self.content_events += 1
            if self.first_token_at is None:
                self._first_token()
        return delta

    def _read_audio_delta(self, choice: Choice, audio: dict[str, Any], delta: Delta, path: str) -> None:
        if choice.audio is None:
            choice.audio = Audio(data=b"", format=self._audio_format)
        audio_id = shapes.text(audio.get("id"), f"{path}.id")
        if audio_id and not choice.audio.id:
            choice.audio.id = audio_id
        data = shapes.text(audio.get("data"), f"{path}.data")
        if data:
            try:
                delta.audio = self._audio.setdefault(choice.index, _AudioBuffer()).add(data)
            except (binascii.Error, ValueError) as exc:
                raise StreamError(
                    f"The server sent audio data that is not base64 ({exc}).", reply=self.reply, broke_off=False
                ) from None
            if delta.audio:
                append(choice.audio, "data", delta.audio)
        transcript = shapes.text(audio.get("transcript"), f"{path}.transcript")
        if transcript:
            append(choice.audio, "transcript", transcript)
            delta.transcript = transcript
        expires = shapes.integer(audio.get("expires_at"), f"{path}.expires_at")
        if expires:
            choice.audio.expires_at = expires

    def _merge_tool_call(self, choice: Choice, fragment: dict[str, Any], path: str) -> ToolCall:
        # Fragments are keyed by index; id and name come first. Some gateways repeat or
        # even change the id in later fragments: keep the first, never concatenate.
        index = shapes.integer(fragment.get("index"), f"{path}.index", high=10_000) or 0
        function = shapes.obj(fragment.get("function"), f"{path}.function")
        call_id = shapes.text(fragment.get("id"), f"{path}.id") or ""
        name = shapes.text(function.get("name"), f"{path}.function.name") or ""
        arguments = shapes.text(function.get("arguments"), f"{path}.function.arguments")
        call = self._calls.get((choice.index, index))
        if call is None:
            call = self._calls[(choice.index, index)] = ToolCall(id=call_id, name=name, index=index)
            out_of_order = bool(choice.tool_calls) and choice.tool_calls[-1].index > index
            choice.tool_calls.append(call)
            if out_of_order:
                choice.tool_calls.sort(key=lambda c: c.index)
        else:
            call.id = call.id or call_id
            call.name = call.name or name
        if arguments:
            append(call, "arguments_json", arguments)
        return call

    # -- not streamed ------------------------------------------------------------
    def feed_completion(self, data: dict[str, Any]) -> None:
        """Apply one whole (non-streamed) chat.completion; a wrong shape is a StreamError."""
        self.chunk_count += 1
        self.whole = True
        if self.chunks is not None:
            self.reply.raw = data
        try:
            self._read_completion(data)
        except _READ_ERRORS as exc:
            raise self._malformed(exc, "an answer") from None
        if self.first_token_at is None:
            self._first_token()
        for choice in self.reply.choices:
            self._publish(
                Delta(reply=self.reply, choice=choice.index, text=choice.text, finish_reason=choice.finish_reason)
            )

    def _read_completion(self, data: dict[str, Any]) -> None:
        reply = self.reply
        self._read_metadata(data)
        reply.usage = _usage(data.get("usage"), "usage", reply.warnings)
        for i, item in enumerate(shapes.seq(data.get("choices"), "choices")):
            path = f"choices[{i}]"
            item = shapes.obj(item, path, item=True)
            choice = self._choice(item, path)
            message = shapes.obj(item.get("message"), f"{path}.message")
            choice.text = shapes.content_text(message.get("content"), f"{path}.message.content") or ""
            choice.finish_reason = shapes.text(item.get("finish_reason"), f"{path}.finish_reason")
            choice.refusal = shapes.text(message.get("refusal"), f"{path}.message.refusal")
            reasoning_key = "reasoning_content" if message.get("reasoning_content") is not None else "reasoning"
            choice.reasoning = shapes.text(message.get(reasoning_key), f"{path}.message.{reasoning_key}")
            citations_key = "message" if message.get("citations") is not None else None
            citations = _citations(
                message.get("citations") if citations_key else item.get("citations"),
                f"{path}.message.citations" if citations_key else f"{path}.citations",
            )
            choice.citations = citations or None
            choice.tool_calls = []
            for j, call in enumerate(shapes.seq(message.get("tool_calls"), f"{path}.message.tool_calls")):
                where = f"{path}.message.tool_calls[{j}]"
                call = shapes.obj(call, where, item=True)
                function = shapes.obj(call.get("function"), f"{where}.function")
                arguments = function.get("arguments")
                if not isinstance(arguments, str):
                    # Some servers send the arguments as an object instead of JSON text.
                    arguments = json.dumps(shapes.obj(arguments, f"{where}.function.arguments"))
                choice.tool_calls.append(
                    ToolCall(
                        id=shapes.text(call.get("id"), f"{where}.id") or "",
                        name=shapes.text(function.get("name"), f"{where}.function.name") or "",
                        arguments_json=arguments,
                        index=j,
                    )
                )
            if message.get("audio") is not None:
                self._read_audio_message(
                    choice, shapes.obj(message["audio"], f"{path}.message.audio"), f"{path}.message.audio"
                )
            if item.get("logprobs") is not None:
                choice.logprobs = _logprobs(item["logprobs"], f"{path}.logprobs")
            if choice.text or choice.tool_calls or choice.audio:
                self.content_events += 1

    def _read_audio_message(self, choice: Choice, audio: dict[str, Any], path: str) -> None:
        data = shapes.text(audio.get("data"), f"{path}.data")
        if not data:
            return
        try:
            raw = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise StreamError(
                f"The server sent audio data that is not base64 ({exc}).", reply=self.reply, broke_off=False
            ) from None
        choice.audio = Audio(
            data=raw,
            format=self._audio_format,
            transcript=shapes.text(audio.get("transcript"), f"{path}.transcript") or "",
            id=shapes.text(audio.get("id"), f"{path}.id"),
            expires_at=shapes.integer(audio.get("expires_at"), f"{path}.expires_at"),
        )

    def _malformed(self, exc: BaseException, what: str) -> StreamError:
        if isinstance(exc, StreamError):
            return exc
        self.reply.incomplete = True
        if isinstance(exc, ShapeError):
            detail = str(exc)
        elif isinstance(exc, RecursionError):
            detail = "it is nested too deeply to read"
        else:
            detail = f"it could not be read ({type(exc).__name__})"
        return StreamError(
            f"The server sent {what} of a shape this client cannot read: {detail}. "
            "What arrived before it is kept on the error's .reply; the conversation history is unchanged. "
            "If the server is OpenAI-compatible but not Compass, check COMPASS_BASE_URL.",
            reply=self.reply,
            broke_off=False,
        )

    # -- end ---------------------------------------------------------------------
    def finish(self) -> Reply:
        """Fill in latency; keep the raw chunks when asked to."""
        now = time.perf_counter()
        reply = self.reply
        for choice in reply.choices:
            # Reading a growing field joins its pieces: a finished Reply keeps one string per field
            # (about its text's size), not a list of 100,000 small ones (about 60 bytes each).
            choice.text, choice.reasoning, choice.refusal  # noqa: B018
            for call in choice.tool_calls:
                call.arguments_json  # noqa: B018
            if choice.audio is not None:
                choice.audio.data, choice.audio.transcript  # noqa: B018
        if self.chunks and reply.raw is None:
            reply.raw = self.chunks
        if reply.usage is None and self.chunk_count:
            # The server reported none (llama.cpp never does in a stream): count what arrived.
            reply.usage = counted_usage(reply, self.content_events, whole=self.whole)
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        total = now - self.started
        generated = reply.usage.completion_tokens if reply.usage and reply.usage.completion_tokens else None
        if generated is None:
            # Without reported usage, one content event is about one token.
            generated = self.content_events or None
        window = total - (ttft or 0.0)
        # Streamed replies always get a rate (however short the window), so saved outputs keep one shape.
        rate = generated / max(window, 1e-6) if generated and self.chunk_count > 1 else None
        reply.latency.ttft = ttft
        reply.latency.total = total
        reply.latency.tokens_per_s = rate
        return reply

    def _publish(self, delta: Delta) -> None:
        for observer in self.observers:
            observer(delta)


class EventReader:
    """SSE ``data`` payloads -> chunks for an Accumulator, with the end-of-stream rules."""

    def __init__(self, accumulator: Accumulator) -> None:
        self.accumulator = accumulator
        self.done = False
        self.events = 0

    def data(self, payload: str) -> bool:
        """Handle one event's data; returns True at ``[DONE]``."""
        payload = payload.strip()
        if not payload:
            return False
        self.events += 1
        if payload == "[DONE]":
            self.done = True
            return True
        reply = self.accumulator.reply
        reason = None
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError as exc:
            reason = f"not JSON: {exc.msg}"
        except RecursionError:
            reason = "nested too deeply"
        if reason is not None:
            # Raised outside the except block: the decoder's error holds the whole payload on
            # its context, and a server may have put the key in it.
            shown = payload if len(payload) <= 120 else payload[:117] + "..."
            reply.incomplete = True
            raise StreamError(
                f"The server sent a malformed stream event ({reason}): {shown!r}. "
                "The reply so far is kept on the error's .reply; the conversation history is unchanged. "
                "Try again, or use stream=False (--no-stream).",
                reply=reply,
                broke_off=False,
            )
        if not isinstance(chunk, dict):
            reply.incomplete = True
            raise StreamError(
                f"The server sent a stream event that is {shapes.describe(chunk)}, not a JSON object: {payload[:120]!r}. "
                "The reply so far is kept on the error's .reply; the conversation history is unchanged.",
                reply=reply,
                broke_off=False,
            )
        self.accumulator.feed(chunk)
        return False

    def end(self) -> None:
        """The body ended; decide whether that was a proper end."""
        reply = self.accumulator.reply
        if self.done:
            return
        if self.events == 0:
            reply.incomplete = True
            raise StreamError(
                "The server answered with an empty stream (HTTP 200, no events). Some OpenAI-compatible "
                "servers (llama.cpp with tool_choice='auto') do this for streamed requests: send it "
                "again with stream=False (--no-stream).",
                reply=reply,
            )
        if reply.choices and all(c.finish_reason for c in reply.choices):
            # Every choice finished; only the [DONE] marker is missing. Nothing was lost.
            return
        reply.incomplete = True
        raise StreamError(
            "The stream broke off before the reply finished (no [DONE] from the server). "
            "The partial reply is kept and marked incomplete.",
            reply=reply,
        )
