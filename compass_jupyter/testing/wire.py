"""Wire shapes of a stand-in reply: the ``chat.completion`` JSON and the stream's chunks.

Both are pure functions of a :class:`~compass_jupyter.testing.content.Completion`,
so the whole reply and the streamed one always carry the same content. Writing
the chunks to a socket (with a scenario's faults) is
:mod:`~compass_jupyter.testing.stream_writer`'s job.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

from .common import tokenize
from .content import Completion
from .speech import AudioReply

__all__ = ["StreamEvent", "completion_json", "stream_events"]


def completion_json(c: Completion) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` response."""
    choices = []
    for choice in c.choices:
        message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": None}
        if choice.reasoning is not None:
            message["reasoning_content"] = "".join(choice.reasoning)
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
                for t in choice.tool_calls
            ]
        if choice.audio is not None:
            message["audio"] = {
                "id": choice.audio.id,
                "data": choice.audio.data(),
                "expires_at": choice.audio.expires_at,
                "transcript": choice.audio.transcript,
            }
        if choice.citations:
            message["citations"] = choice.citations
        choices.append(
            {
                "index": choice.index,
                "message": message,
                "logprobs": (None if choice.logprobs is None else {"content": choice.logprobs, "refusal": None}),
                "finish_reason": choice.finish_reason,
            }
        )
    response: dict[str, Any] = {
        "id": c.id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "system_fingerprint": c.fingerprint,
        "choices": choices,
    }
    if c.include_usage:
        response["usage"] = c.usage
    return response


@dataclass
class StreamEvent:
    """One SSE event: ``kind`` is prelude, role, payload, finish or usage."""

    kind: str
    data: dict[str, Any]


_FILTER_OK = {"filtered": False, "severity": "safe"}


def stream_events(c: Completion) -> list[StreamEvent]:
    """The ``chat.completion.chunk`` events of a streamed reply, without ``[DONE]``.

    Order: a ``choices: []`` chunk with ``prompt_filter_results``; per choice a
    ``role`` delta, reasoning pieces, then content tokens (with their logprobs),
    tool-call fragments or audio pieces, then a chunk with ``finish_reason``
    (and ``citations``); choices interleave round-robin; last, when usage is
    asked for, a ``choices: []`` chunk with ``usage``.
    """

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "system_fingerprint": c.fingerprint,
            "choices": choices,
        }
        if c.stream_usage:
            data["usage"] = None
        data.update(extra)
        return data

    def delta(index: int, body: dict[str, Any], logprobs: Any = None, finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": body, "logprobs": logprobs, "finish_reason": finish}

    prelude = {
        "id": c.id,
        "object": "chat.completion.chunk",
        "created": c.created,
        "model": c.model,
        "choices": [],
        "prompt_filter_results": [
            {
                "prompt_index": 0,
                "content_filter_results": {
                    "hate": _FILTER_OK,
                    "jailbreak": {"filtered": False, "detected": False},
                    "self_harm": _FILTER_OK,
                    "sexual": _FILTER_OK,
                    "violence": _FILTER_OK,
                },
            }
        ],
    }
    per_choice: list[list[StreamEvent]] = []
    for choice in c.choices:
        i = choice.index
        opening = {"role": "assistant", "content": "" if choice.tokens is not None else None, "refusal": None}
        events = [StreamEvent("role", chunk([delta(i, opening)]))]
        for piece in choice.reasoning or ():
            events.append(StreamEvent("payload", chunk([delta(i, {"reasoning_content": piece})])))
        for position, token in enumerate(choice.tokens or ()):
            logprobs = None
            if choice.logprobs is not None:
                logprobs = {"content": [choice.logprobs[position]], "refusal": None}
            events.append(StreamEvent("payload", chunk([delta(i, {"content": token}, logprobs)])))
        for k, call in enumerate(choice.tool_calls):
            function = {"name": call.name, "arguments": ""}
            first = {"index": k, "id": call.id, "type": "function", "function": function}
            events.append(StreamEvent("payload", chunk([delta(i, {"tool_calls": [first]})])))
            for piece in _argument_pieces(call.arguments):
                fragment = {"index": k, "function": {"arguments": piece}}
                events.append(StreamEvent("payload", chunk([delta(i, {"tool_calls": [fragment]})])))
        if choice.audio is not None:
            for audio_delta in _audio_deltas(choice.audio):
                events.append(StreamEvent("payload", chunk([delta(i, {"audio": audio_delta})])))
        final: dict[str, Any] = {"citations": choice.citations} if choice.citations else {}
        events.append(StreamEvent("finish", chunk([delta(i, final, None, choice.finish_reason)])))
        per_choice.append(events)

    ordered = [StreamEvent("prelude", prelude)]
    for step in range(max(len(e) for e in per_choice)):
        ordered.extend(events[step] for events in per_choice if step < len(events))
    if c.stream_usage:
        ordered.append(StreamEvent("usage", chunk([], usage=c.usage)))
    return ordered


def _argument_pieces(arguments: str) -> list[str]:
    """The arguments JSON in several pieces, as real servers stream it (>= 3 when longer than 6)."""
    if len(arguments) <= 6:
        return [arguments] if arguments else []
    count = max(3, math.ceil(len(arguments) / 8))
    size = math.ceil(len(arguments) / count)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def _audio_deltas(audio: AudioReply) -> list[dict[str, Any]]:
    words = tokenize(audio.transcript)
    deltas: list[dict[str, Any]] = [{"id": audio.id}]
    for position, piece in enumerate(audio.pieces):
        if position < len(words):
            deltas.append({"transcript": words[position]})
        deltas.append({"data": base64.b64encode(piece).decode("ascii")})
    deltas.append({"expires_at": audio.expires_at})
    return deltas
