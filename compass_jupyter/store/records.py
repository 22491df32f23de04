"""A Reply as the server's own JSON, and back: the one format of the store, the cache and cassettes.

A stored reply is the chat.completion document a non-streamed request would have
received (choices with message, logprobs and finish reason; usage; id and model).
Reading it back goes through the same :class:`~compass_jupyter.stream.Accumulator`
as a live answer, so a replayed reply is built, checked and rendered exactly as the
original was. A streamed request replays as a stream: :func:`chunks` cuts the
document into chat.completion.chunk events (one per logprob token when there are
logprobs, else one per word), so live views see text arrive as they did.

Requests are matched by :func:`request_key`: the canonical JSON (sorted keys, no
spaces) of every field and message of the body, without how the answer is
delivered (``stream``, ``stream_options``), plus the route the request took.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Iterator

from ..reply import Audio, Choice, Reply, Usage

__all__ = ["completion_doc", "chunks", "canonical", "request_key", "recorded_latency", "DELIVERY_FIELDS"]

# How an answer travels, not what is asked: a streamed and a plain request get the same answer.
DELIVERY_FIELDS = ("stream", "stream_options")
_WORD = re.compile(r"\s*\S+\s*|\s+")


def canonical(body: dict[str, Any]) -> str:
    """The body as canonical JSON, without the delivery fields: equal requests give equal text."""
    asked = {name: value for name, value in body.items() if name not in DELIVERY_FIELDS}
    return json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def request_key(body: dict[str, Any], route: str) -> str:
    """A short stable hash of what is asked and where: the cache's and the cassette's match."""
    digest = hashlib.sha256(f"{route}\n{canonical(body)}".encode())
    return digest.hexdigest()[:32]


def _usage_doc(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    doc: dict[str, Any] = {
        name: getattr(usage, name)
        for name in ("prompt_tokens", "completion_tokens", "total_tokens")
        if getattr(usage, name) is not None
    }
    completion = {
        name: value
        for name, value in (("reasoning_tokens", usage.reasoning_tokens), ("audio_tokens", usage.audio_tokens))
        if value is not None
    }
    prompt = {
        name: value
        for name, value in (("cached_tokens", usage.cached_tokens), ("audio_tokens", usage.prompt_audio_tokens))
        if value is not None
    }
    if usage.counted:
        doc["counted"] = True  # counted by the client, not reported by the server: it stays marked on replay
    if completion:
        doc["completion_tokens_details"] = completion
    if prompt:
        doc["prompt_tokens_details"] = prompt
    return doc


def _audio_doc(audio: Audio) -> dict[str, Any]:
    doc: dict[str, Any] = {"data": base64.b64encode(audio.data).decode(), "transcript": audio.transcript}
    if audio.id:
        doc["id"] = audio.id
    if audio.expires_at:
        doc["expires_at"] = audio.expires_at
    return doc


def _logprobs_doc(choice: Choice) -> dict[str, Any] | None:
    if choice.logprobs is None:
        return None
    content = []
    for token in choice.logprobs:
        entry: dict[str, Any] = {
            "token": token.token,
            "logprob": token.logprob,
            "top_logprobs": [{"token": alt, "logprob": value} for alt, value in token.top],
        }
        if token.bytes is not None:
            entry["bytes"] = token.bytes
        content.append(entry)
    return {"content": content}


def _choice_doc(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.text}
    if choice.reasoning:
        message["reasoning_content"] = choice.reasoning
    if choice.refusal:
        message["refusal"] = choice.refusal
    if choice.tool_calls:
        message["tool_calls"] = [call.to_api() for call in choice.tool_calls]
    if choice.audio is not None:
        message["audio"] = _audio_doc(choice.audio)
    if choice.citations:
        message["citations"] = choice.citations
    doc: dict[str, Any] = {"index": choice.index, "message": message, "finish_reason": choice.finish_reason}
    logprobs = _logprobs_doc(choice)
    if logprobs is not None:
        doc["logprobs"] = logprobs
    return doc


def completion_doc(reply: Reply) -> dict[str, Any]:
    """The reply as a chat.completion document that reads back into an equal Reply."""
    doc: dict[str, Any] = {
        "object": "chat.completion",
        "id": reply.id,
        "created": reply.created,
        "model": reply.model,
        "choices": [_choice_doc(choice) for choice in reply.choices],
    }
    if reply.system_fingerprint:
        doc["system_fingerprint"] = reply.system_fingerprint
    usage = _usage_doc(reply.usage)
    if usage is not None:
        doc["usage"] = usage
    return {name: value for name, value in doc.items() if value is not None}


def _header(doc: dict[str, Any]) -> dict[str, Any]:
    head = {"object": "chat.completion.chunk"}
    head.update({name: doc[name] for name in ("id", "created", "model", "system_fingerprint") if name in doc})
    return head


def _text_pieces(text: str, logprobs: list[dict[str, Any]] | None) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(piece, its logprob entries): the recorded tokens when they spell the text, else words."""
    if logprobs and "".join(entry.get("token", "") for entry in logprobs) == text:
        for entry in logprobs:
            yield entry.get("token", ""), [entry]
        return
    pieces = _WORD.findall(text)
    for i, piece in enumerate(pieces):
        # Logprobs that do not spell the text (a server's own tokenisation) ride on the last piece.
        yield piece, (logprobs or []) if i == len(pieces) - 1 else []
    if not pieces and logprobs:
        yield "", logprobs


def chunks(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The chat.completion.chunk events a stream of this completion would have carried."""
    head = _header(doc)
    for choice in doc.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        opening: dict[str, Any] = {"role": "assistant"}
        for name in ("reasoning_content", "refusal", "citations"):
            if message.get(name):
                opening[name] = message[name]
        yield {**head, "choices": [{"index": index, "delta": opening}]}
        logprobs = (choice.get("logprobs") or {}).get("content")
        for piece, entries in _text_pieces(message.get("content") or "", logprobs):
            event: dict[str, Any] = {"index": index, "delta": {"content": piece}}
            if entries:
                event["logprobs"] = {"content": entries}
            yield {**head, "choices": [event]}
        for position, call in enumerate(message.get("tool_calls") or []):
            yield {**head, "choices": [{"index": index, "delta": {"tool_calls": [{"index": position, **call}]}}]}
        if message.get("audio"):
            yield {**head, "choices": [{"index": index, "delta": {"audio": message["audio"]}}]}
        yield {**head, "choices": [{"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}]}
    if doc.get("usage"):
        yield {**head, "choices": [], "usage": doc["usage"]}


def recorded_latency(reply: Reply, latency: Any) -> None:
    """Show a replayed reply's timings as they were measured when it was first answered."""
    if not isinstance(latency, dict):
        return
    for name in ("ttft", "total", "tokens_per_s"):
        value = latency.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(reply.latency, name, float(value))
