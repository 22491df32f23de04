"""Turning what the server sends into a :class:`~compass_jupyter.reply.Reply`.

:class:`Accumulator` takes chat.completion chunks one at a time (or one whole
non-streamed completion) and keeps the Reply current, publishing a
:class:`Delta` to observers after each chunk so views can render as it arrives.
:class:`EventReader` turns SSE ``data:`` payloads into chunks and knows the
end-of-stream rules. Neither does I/O; :mod:`compass_jupyter.client` feeds them.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ._exceptions import StreamError
from .reply import Audio, Choice, Reply, TokenLogprob, ToolCall, Usage

__all__ = ["Delta", "Observer", "Accumulator", "EventReader"]


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
        self.data = bytearray()

    def add(self, piece: str) -> bytes:
        self.pending += piece.strip()
        usable = len(self.pending) - len(self.pending) % 4
        chunk, self.pending = self.pending[:usable], self.pending[usable:]
        if not chunk:
            return b""
        decoded = base64.b64decode(chunk)
        self.data += decoded
        return decoded


class Accumulator:
    """Builds a Reply from chunks, publishing each change to the observers."""

    def __init__(self, reply: Reply, *, observers: list[Observer] | None = None, started: float | None = None) -> None:
        self.reply = reply
        self.observers = list(observers or [])
        self.started = time.perf_counter() if started is None else started
        self.first_token_at: float | None = None
        self.content_events = 0
        self._audio: dict[int, _AudioBuffer] = {}
        self._audio_format = str((reply.request.get("audio") or {}).get("format") or "pcm16")
        self.chunks: list[dict[str, Any]] = []

    # -- streamed -------------------------------------------------------------
    def feed(self, chunk: dict[str, Any]) -> None:
        """Apply one chat.completion.chunk."""
        self.chunks.append(chunk)
        if "error" in chunk and not chunk.get("choices"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise StreamError(
                f"The server reported an error in the middle of the stream: {message}",
                body=chunk,
                reply=self.reply,
            )
        reply = self.reply
        reply.id = reply.id or chunk.get("id")
        reply.model = chunk.get("model") or reply.model
        reply.created = reply.created or chunk.get("created")
        reply.system_fingerprint = chunk.get("system_fingerprint") or reply.system_fingerprint
        usage = Usage.from_api(chunk.get("usage"))
        if usage is not None:
            reply.usage = usage
            self._publish(Delta(reply=reply, usage=usage))
        # Azure opens with choices == [] carrying prompt_filter_results; usage chunks have none too.
        for data in chunk.get("choices") or []:
            self._feed_choice(data)

    def _feed_choice(self, data: dict[str, Any]) -> None:
        index = int(data.get("index") or 0)
        choice = self.reply.choice(index)
        delta_in = data.get("delta") or {}
        delta = Delta(reply=self.reply, choice=index)

        text = delta_in.get("content")
        if text:
            choice.text += text
            delta.text = text
        reasoning = delta_in.get("reasoning_content") or delta_in.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            choice.reasoning = (choice.reasoning or "") + reasoning
            delta.reasoning = reasoning
        if delta_in.get("refusal"):
            choice.refusal = (choice.refusal or "") + delta_in["refusal"]
        if delta_in.get("citations"):
            choice.citations = (choice.citations or []) + list(delta_in["citations"])
        for fragment in delta_in.get("tool_calls") or []:
            delta.tool_call = self._merge_tool_call(choice, fragment)
        audio = delta_in.get("audio")
        if isinstance(audio, dict):
            buffer = self._audio.setdefault(index, _AudioBuffer())
            if choice.audio is None:
                choice.audio = Audio(data=b"", format=self._audio_format)
            if audio.get("id") and not choice.audio.id:
                choice.audio.id = audio["id"]
            if audio.get("data"):
                try:
                    delta.audio = buffer.add(audio["data"])
                except (binascii.Error, ValueError) as exc:
                    raise StreamError(f"The server sent audio data that is not base64: {exc}", reply=self.reply) from None
                choice.audio.data = bytes(buffer.data)
            if audio.get("transcript"):
                choice.audio.transcript += audio["transcript"]
                delta.transcript = audio["transcript"]
            if audio.get("expires_at"):
                choice.audio.expires_at = audio["expires_at"]
        logprobs = data.get("logprobs")
        if isinstance(logprobs, dict) and logprobs.get("content"):
            tokens = [TokenLogprob.from_api(t) for t in logprobs["content"]]
            choice.logprobs = (choice.logprobs or []) + tokens
            delta.logprobs = tokens
        if data.get("finish_reason"):
            choice.finish_reason = data["finish_reason"]
            delta.finish_reason = choice.finish_reason

        if delta.text or delta.tool_call or delta.audio or delta.transcript or delta.reasoning:
            self.content_events += 1
            if self.first_token_at is None:
                self.first_token_at = time.perf_counter()
        self._publish(delta)

    @staticmethod
    def _merge_tool_call(choice: Choice, fragment: dict[str, Any]) -> ToolCall:
        # Fragments are keyed by index; id and name come first. Some gateways repeat or
        # even change the id in later fragments: keep the first, never concatenate.
        index = int(fragment.get("index") or 0)
        call = next((c for c in choice.tool_calls if c.index == index), None)
        function = fragment.get("function") or {}
        if call is None:
            call = ToolCall(id=fragment.get("id") or "", name=function.get("name") or "", index=index)
            choice.tool_calls.append(call)
            choice.tool_calls.sort(key=lambda c: c.index)
        else:
            call.id = call.id or fragment.get("id") or ""
            call.name = call.name or function.get("name") or ""
        if function.get("arguments"):
            call.arguments_json += function["arguments"]
        return call

    # -- not streamed ------------------------------------------------------------
    def feed_completion(self, data: dict[str, Any]) -> None:
        """Apply one whole (non-streamed) chat.completion."""
        reply = self.reply
        reply.raw = data
        reply.id = data.get("id")
        reply.model = data.get("model") or reply.model
        reply.created = data.get("created")
        reply.system_fingerprint = data.get("system_fingerprint")
        reply.usage = Usage.from_api(data.get("usage"))
        for item in data.get("choices") or []:
            choice = reply.choice(int(item.get("index") or 0))
            message = item.get("message") or {}
            choice.text = message.get("content") or ""
            choice.finish_reason = item.get("finish_reason")
            choice.refusal = message.get("refusal")
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            choice.reasoning = reasoning if isinstance(reasoning, str) else None
            choice.citations = message.get("citations") or item.get("citations")
            for i, call in enumerate(message.get("tool_calls") or []):
                function = call.get("function") or {}
                arguments = function.get("arguments")
                choice.tool_calls.append(
                    ToolCall(
                        id=call.get("id") or "",
                        name=function.get("name") or "",
                        arguments_json=arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
                        index=i,
                    )
                )
            audio = message.get("audio")
            if isinstance(audio, dict) and audio.get("data"):
                try:
                    raw = base64.b64decode(audio["data"])
                except (binascii.Error, ValueError) as exc:
                    raise StreamError(f"The server sent audio data that is not base64: {exc}", reply=reply) from None
                choice.audio = Audio(
                    data=raw,
                    format=self._audio_format,
                    transcript=audio.get("transcript") or "",
                    id=audio.get("id"),
                    expires_at=audio.get("expires_at"),
                )
            logprobs = item.get("logprobs")
            if isinstance(logprobs, dict) and logprobs.get("content") is not None:
                choice.logprobs = [TokenLogprob.from_api(t) for t in logprobs["content"]]
            if choice.text or choice.tool_calls or choice.audio:
                self.content_events += 1
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        for choice in reply.choices:
            self._publish(Delta(reply=reply, choice=choice.index, text=choice.text, finish_reason=choice.finish_reason))

    # -- end ---------------------------------------------------------------------
    def finish(self) -> Reply:
        """Fill in latency; keep the raw chunks when streamed."""
        now = time.perf_counter()
        reply = self.reply
        if reply.raw is None:
            reply.raw = self.chunks
        ttft = None if self.first_token_at is None else self.first_token_at - self.started
        total = now - self.started
        generated = reply.usage.completion_tokens if reply.usage and reply.usage.completion_tokens else None
        if generated is None:
            # Without reported usage, one content event is about one token.
            generated = self.content_events or None
        window = total - (ttft or 0.0)
        # Streamed replies always get a rate (however short the window), so saved outputs keep one shape.
        rate = generated / max(window, 1e-6) if generated and len(self.chunks) > 1 else None
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
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError as exc:
            shown = payload if len(payload) <= 120 else payload[:117] + "..."
            raise StreamError(
                f"The server sent a malformed stream event (not JSON: {exc.msg}): {shown!r}. "
                "The reply so far is kept; try again, or use stream=False (--no-stream).",
                reply=self.accumulator.reply,
            ) from None
        if not isinstance(chunk, dict):
            raise StreamError(
                f"The server sent a stream event that is not a JSON object: {payload[:120]!r}.",
                reply=self.accumulator.reply,
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
