"""The content of a stand-in reply: which rule answers, the choices, usage and logprobs.

Everything here is a pure function of the request body, the model id and the
scenario: the same request always gives byte-for-byte the same answer, ids
included (they are derived from a hash of the body; ``created`` is a constant).

What the stand-in answers (first rule that applies, per choice):

1. ``Scenario.tool_calls``: those calls.
2. ``Scenario.text`` / ``Scenario.tokens``: that text.
3. The last message is a ``tool`` message: one line per trailing tool result,
   ``Based on <tool name>: <result>``.
4. ``tools`` are offered, ``tool_choice`` is not ``"none"`` and the last message
   is a user message: a forced ``tool_choice`` calls that tool; otherwise the
   tools whose names appear in the user text are called, in order of
   appearance, in parallel (``"required"`` falls back to the first tool).
   Arguments are synthesised from each tool's JSON schema (see
   :func:`~compass_jupyter.testing.schema_values.value_for_schema`).
5. ``response_format`` ``json_object`` -> ``{"model": ..., "echo": ...}``;
   ``json_schema`` (or Cohere's ``json_object`` with ``schema``) -> an object
   built from the schema.
6. ``documents`` (Cohere) -> a sentence quoting the first document, with
   ``citations``.
7. Otherwise ``Stand-in <model> here. You said: “<first 200 characters of the
   last user message>”``, plus what media was received. With a ``temperature``
   above 0 the opening sentence varies (by ``random_seed`` when given, else by
   the body); ``temperature`` 0 or absent keeps it fixed. Choice ``i`` > 0 ends
   with `` (choice i+1)``.

Then ``stop`` cuts the text before the first stop sequence, ``max_tokens`` /
``max_completion_tokens`` cut the tokens (finish reason ``length``), and audio
output (``modalities`` with ``"audio"``) turns the text into a transcript with
a synthetic tone. Tokens are ``re.findall(r"\\s*\\S+", text)``, trailing
whitespace kept on the last token so that the tokens always join to the text.

This module picks the rule and assembles the :class:`Completion`: tool calls,
reasoning, token limits, usage and logprobs. The words of rules 2, 3 and 5 to 7
come from :mod:`~compass_jupyter.testing.reply_text`, the audio from
:mod:`~compass_jupyter.testing.speech`; :mod:`~compass_jupyter.testing.wire`
shapes the result as a JSON response or as stream events.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .common import count_tokens, dumps, dumps_sorted, hash_int, ident, text_of, tokenize
from .reply_text import apply_stop, generated_text, last_user, media_summary, scripted_text, tool_results_text
from .scenario import Scenario
from .schema_values import proper_phrases, value_for_schema
from .speech import AudioReply, synth_speech

__all__ = ["CREATED", "ChoiceReply", "Completion", "ToolCall", "build"]

#: The fixed ``created`` timestamp of every response (the one in the API guide).
CREATED = 1741094330
_ALTERNATIVES = (
    "the a an and to of it is that in this you for on with as be at by we or so but not are was can will one all"
).split()
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-oss")
_EFFORT_FACTOR = {"none": 0.25, "minimal": 0.25, "low": 1, "medium": 2, "high": 4}


@dataclass
class ToolCall:
    """One function call of a reply; ``arguments`` is JSON text (or scripted text)."""

    id: str
    name: str
    arguments: str


@dataclass
class ChoiceReply:
    """One choice: its content tokens (None when content is null) and everything else."""

    index: int
    tokens: list[str] | None
    finish_reason: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: list[str] | None = None
    reasoning_tokens: int = 0
    audio: AudioReply | None = None
    citations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None

    @property
    def content(self) -> str | None:
        return None if self.tokens is None else "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        count = len(self.tokens or ()) + self.reasoning_tokens
        if self.audio is not None:
            count += len(tokenize(self.audio.transcript)) + self.audio.tokens
        for call in self.tool_calls:
            count += 2 + count_tokens(call.arguments.replace('"', " ").replace(",", " "))
        return count


@dataclass
class Completion:
    """A whole reply, ready to be shaped as a JSON response or as stream events."""

    id: str
    created: int
    model: str
    fingerprint: str
    choices: list[ChoiceReply]
    usage: dict[str, Any]
    include_usage: bool
    stream_usage: bool


def build(body: dict[str, Any], model: str, scenario: Scenario | None = None) -> Completion:
    """The reply to a validated request for ``model`` (see the module docstring)."""
    scenario = scenario or Scenario()
    # Content comes from the body without its transport fields, so that the streamed and the
    # whole reply to the same question agree; the id still tells the two requests apart.
    content_body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    key = _body_key(model, content_body)
    request_key = _body_key(model, body)
    messages: list[dict[str, Any]] = body["messages"]
    user = last_user(messages)
    user_text = text_of(user.get("content")) if user else ""
    media, image_count, prompt_audio = media_summary(user)
    choices = [_build_choice(body, model, scenario, key, i, user_text, media) for i in range(body.get("n") or 1)]
    prompt = _prompt_tokens(body) + 85 * image_count + prompt_audio
    completion = sum(c.completion_tokens for c in choices)
    usage = {
        "completion_tokens": completion,
        "completion_tokens_details": {
            "accepted_prediction_tokens": 0,
            "audio_tokens": sum(c.audio.tokens for c in choices if c.audio),
            "reasoning_tokens": sum(c.reasoning_tokens for c in choices),
            "rejected_prediction_tokens": 0,
        },
        "prompt_tokens": prompt,
        "prompt_tokens_details": {"audio_tokens": prompt_audio, "cached_tokens": 0},
        "total_tokens": prompt + completion,
    }
    options = body.get("stream_options") or {}
    return Completion(
        id="chatcmpl-" + ident(request_key, "id", length=29),
        created=CREATED,
        model=scenario.model or model,
        fingerprint="fp_" + hashlib.sha256(model.encode("utf-8")).hexdigest()[:10],
        choices=choices,
        usage=usage,
        include_usage=scenario.usage is not False,
        stream_usage=scenario.usage if scenario.usage is not None else options.get("include_usage") is True,
    )


def _body_key(model: str, body: dict[str, Any]) -> str:
    # The seed of every id and variation: the same model and body always give the same key.
    return hashlib.sha256((model + "\x1f" + dumps_sorted(body)).encode("utf-8")).hexdigest()


def _build_choice(
    body: dict[str, Any],
    model: str,
    scenario: Scenario,
    key: str,
    index: int,
    user_text: str,
    media: str,
) -> ChoiceReply:
    messages = body["messages"]
    finish = "stop"
    calls: list[ToolCall] = []
    citations: list[dict[str, Any]] | None = None
    text: str | None = None
    if scenario.tool_calls:
        calls = [
            ToolCall(
                id=c.get("id") or "call_" + ident(key, "call", index, k),
                name=c["name"],
                arguments=c["arguments"] if isinstance(c["arguments"], str) else dumps(c["arguments"]),
            )
            for k, c in enumerate(scenario.tool_calls)
        ]
    elif scenario.text is not None or scenario.tokens is not None:
        text = scripted_text(scenario)
    elif messages[-1].get("role") == "tool":
        text = tool_results_text(messages)
    else:
        calls = _auto_tool_calls(body, key, index, user_text)
        if not calls:
            text, citations = generated_text(body, model, key, index, user_text, media)

    reasoning, reasoning_count = _reasoning(body, model, key, user_text)
    if calls:
        choice = ChoiceReply(index, None, "tool_calls", tool_calls=calls)
    else:
        assert text is not None
        if scenario.split_utf8 and text.isascii():
            text += " (café ☕)"
        text, stopped = apply_stop(text, body.get("stop"))
        tokens = tokenize(text)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and len(tokens) > limit:
            tokens = tokens[:limit]
            finish = "length"
        content = "".join(tokens)
        if citations:
            citations = [c for c in citations if c["end"] <= len(content)] or None
        choice = ChoiceReply(index, tokens, finish, citations=citations)
        if "audio" in (body.get("modalities") or []):
            audio = body["audio"]
            choice.tokens = None
            choice.audio = AudioReply(
                id="audio_" + ident(key, "audio", index),
                format=audio["format"],
                transcript=content,
                expires_at=CREATED + 3600,
                pieces=synth_speech(tokens, audio["voice"]),
            )
        elif body.get("logprobs") is True:
            choice.logprobs = [
                _token_logprob(key, index, position, token, body.get("top_logprobs") or 0)
                for position, token in enumerate(tokens)
            ]
    choice.reasoning = reasoning
    choice.reasoning_tokens = reasoning_count
    if scenario.finish_reason is not None:
        choice.finish_reason = scenario.finish_reason
    return choice


def _auto_tool_calls(body: dict[str, Any], key: str, index: int, user_text: str) -> list[ToolCall]:
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or "auto"
    if not tools or choice == "none" or body["messages"][-1].get("role") != "user":
        return []
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    if isinstance(choice, dict):
        chosen = [by_name[choice["function"]["name"]]]
    else:
        positions = []
        for name, function in by_name.items():
            found = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", user_text, re.IGNORECASE)
            if found:
                positions.append((found.start(), function))
        chosen = [function for _, function in sorted(positions, key=lambda p: p[0])]
        if not chosen and choice == "required":
            chosen = [tools[0]["function"]]
    hints = proper_phrases(user_text)
    suffix = f" ({index + 1})" if index else ""
    return [
        ToolCall(
            id="call_" + ident(key, "call", index, k),
            name=function["name"],
            arguments=dumps(value_for_schema(function.get("parameters") or {"type": "object"}, hints, suffix=suffix)),
        )
        for k, function in enumerate(chosen)
    ]


def _reasoning(body: dict[str, Any], model: str, key: str, user_text: str) -> tuple[list[str] | None, int]:
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        words = count_tokens(user_text)
        thought = (
            f"The user wrote {words} word{'' if words == 1 else 's'}. A short, friendly answer "
            f"from the stand-in {model} will do."
        )
        tokens = tokenize(thought)
        return tokens, len(tokens)
    if model.lower().startswith(_REASONING_PREFIXES):
        base = 8 + hash_int(key, "reasoning") % 24
        factor = _EFFORT_FACTOR.get(body.get("reasoning_effort") or "medium", 2)
        return None, max(1, int(base * factor))
    return None, 0


def _prompt_tokens(body: dict[str, Any]) -> int:
    count = 3
    for message in body["messages"]:
        count += 3 + count_tokens(text_of(message.get("content")))
        if message.get("name"):
            count += 1
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                count += 3 + count_tokens(dumps(call["function"]))
    if body.get("tools"):
        count += count_tokens(dumps(body["tools"]).replace('"', " "))
    for doc in body.get("documents") or []:
        count += 3 + count_tokens(doc if isinstance(doc, str) else dumps(doc))
    return count


# --------------------------------------------------------------------------- logprobs


def _token_logprob(key: str, index: int, position: int, token: str, top: int) -> dict[str, Any]:
    """Deterministic logprobs for one token: the chosen token is the most likely one, and the
    probabilities of a token and its alternatives add up to at most 100%, as a model's do."""
    seed = hash_int(key, "logprob", index, position)
    chosen = -(1 + seed % 15000) / 10000  # in [-1.5, -0.0001]
    entry: dict[str, Any] = {"token": token, "logprob": chosen, "bytes": list(token.encode("utf-8"))}
    alternatives = [{"token": token, "logprob": chosen, "bytes": entry["bytes"]}] if top else []
    prefix = token[: len(token) - len(token.lstrip())]
    start = seed % len(_ALTERNATIVES)
    words = [prefix + w for w in _ALTERNATIVES[start:] + _ALTERNATIVES[:start] if prefix + w != token]
    p_chosen = math.exp(chosen)
    # The rest of the mass, shared out in decreasing shares (each at most half of what is left),
    # never above the chosen token's own probability.
    left = (1 - p_chosen) * 0.98
    values = []
    for j in range(max(0, top - 1)):
        share = left * (0.2 + 0.3 * (hash_int(seed, j) % 10000) / 10000)
        left -= share
        values.append(min(share, p_chosen * 0.95))
    values = sorted(values, reverse=True)
    for word, value in zip(words, values):
        logprob = round(math.log(max(value, 1e-9)), 4)
        alternatives.append({"token": word, "logprob": logprob, "bytes": list(word.encode("utf-8"))})
    entry["top_logprobs"] = alternatives
    return entry
