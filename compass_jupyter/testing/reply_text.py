"""The text of a stand-in reply when no scenario scripts tool calls (rules 2, 3, 5, 6, 7).

Which rule applies is decided in :mod:`compass_jupyter.testing.content`; this
module writes the words: a scenario's text or ``tokens`` filler, the summary of
trailing tool results, a JSON reply built from the request's schema, a quote of
the first Cohere document, or the default ``Stand-in <model> here. You said:
...`` with what media was received. It also reads the last user message and
cuts a text at a ``stop`` sequence.
"""

from __future__ import annotations

import re
from typing import Any

from .checks import audio_part_info, image_part_info
from .common import dumps, hash_int, text_of, tokenize
from .scenario import Scenario
from .schema_values import proper_phrases, value_for_schema

__all__ = [
    "apply_stop",
    "generated_text",
    "last_user",
    "media_summary",
    "scripted_text",
    "tool_results_text",
]

_OPENINGS = (
    "Stand-in {model} here.",
    "This is the stand-in {model}.",
    "Stand-in {model} answering.",
    "Hello from the stand-in {model}.",
)
_FILLER = (
    "the stand-in streams words at a steady pace so that a benchmark can measure "
    "how fast a client parses events and renders text without any model in the loop"
).split()


def _one_line(text: str, limit: int) -> str:
    """``text`` on one line (runs of whitespace made one space), cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def last_user(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last message with role ``user``, or None."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message
    return None


def media_summary(message: dict[str, Any] | None) -> tuple[str, int, int]:
    """('1 image (image/png, 12 bytes) and ...', image count, prompt audio tokens)."""
    if message is None or not isinstance(message.get("content"), list):
        return "", 0, 0
    images: list[str] = []
    clips: list[str] = []
    audio_tokens = 0
    for part in message["content"]:
        if part.get("type") == "image_url":
            kind, size = image_part_info("", part)
            images.append(kind if size is None else f"{kind}, {size} bytes")
        elif part.get("type") == "input_audio":
            fmt, size = audio_part_info("", part)
            clips.append(f"{fmt}, {size} bytes")
            # About 10 tokens per second of 24 kHz 16-bit audio.
            audio_tokens += max(1, size // 4800)
    groups = []
    if images:
        groups.append(f"{len(images)} image{'s' if len(images) > 1 else ''} ({'; '.join(images)})")
    if clips:
        groups.append(f"{len(clips)} audio clip{'s' if len(clips) > 1 else ''} ({'; '.join(clips)})")
    return " and ".join(groups), len(images), audio_tokens


def scripted_text(scenario: Scenario) -> str:
    """Rule 2: the scenario's ``text``, or exactly ``tokens`` tokens cycling through it (or filler)."""
    if scenario.tokens is None:
        return scenario.text or ""
    base = tokenize(scenario.text) if scenario.text else None
    words = []
    for i in range(scenario.tokens):
        if base:
            word = base[i % len(base)]
            if i >= len(base) and not word[:1].isspace():
                word = " " + word
        else:
            position = i % len(_FILLER)
            word = _FILLER[position] + ("." if position == len(_FILLER) - 1 else "")
            if position == 0:
                word = word.capitalize()
            word = word if i == 0 else " " + word
        words.append(word)
    return "".join(words)


def tool_results_text(messages: list[dict[str, Any]]) -> str:
    """Rule 3: ``Based on <tool name>: <result>``, one line per trailing tool message."""
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(message)
    results.reverse()
    names: dict[str, str] = {}
    for message in messages:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                names[call["id"]] = call["function"]["name"]
    lines = []
    for message in results:
        name = message.get("name") or names.get(message.get("tool_call_id", ""), "the tool")
        lines.append(f"Based on {name}: {_one_line(text_of(message.get('content')), 300)}")
    return "\n".join(lines)


def _opening(body: dict[str, Any], model: str, key: str, index: int) -> str:
    # Temperature 0 (or none) keeps the sentence fixed; above 0 it varies by seed or body.
    temperature = body.get("temperature")
    variant = 0
    if temperature is not None and temperature > 0:
        seed = body.get("random_seed", body.get("seed"))
        variant = hash_int("seed", seed, index) if seed is not None else hash_int(key, "variant", index)
    return _OPENINGS[variant % len(_OPENINGS)].format(model=model)


_QUOTED_KEY = re.compile(r"[\"“']([A-Za-z_][A-Za-z0-9_ ]{0,39})[\"”']")


def _asked_object(user_text: str, snippet: str, model: str, index: int) -> dict[str, Any]:
    """JSON mode's object: the keys the prompt names in quotes (``the keys "city" and "country"``).

    Each gets a string from the prompt's capitalised phrases (as tool arguments do), so a
    tutorial that asks for keys sees those keys. A prompt that names none gets ``model`` and
    ``echo``, which at least show what was asked.
    """
    keys = list(dict.fromkeys(_QUOTED_KEY.findall(user_text)))
    suffix = f" ({index + 1})" if index else ""
    if keys:
        schema = {"type": "object", "properties": {key: {"type": "string"} for key in keys}, "required": keys}
        hints = [phrase for phrase in proper_phrases(user_text) if not phrase.isupper()]  # not "JSON"
        value: dict[str, Any] = value_for_schema(schema, hints, suffix=suffix)
        return value
    value = {"model": model, "echo": snippet}
    if index:
        value["choice"] = index + 1
    return value


def generated_text(
    body: dict[str, Any], model: str, key: str, index: int, user_text: str, media: str
) -> tuple[str, list[dict[str, Any]] | None]:
    """Rules 5 to 7: (the text of choice ``index``, Cohere ``citations`` or None)."""
    snippet = _one_line(user_text, 200)
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_object" else None
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    if schema is not None:
        suffix = f" ({index + 1})" if index else ""
        return dumps(value_for_schema(schema, proper_phrases(user_text), suffix=suffix)), None
    if fmt.get("type") == "json_object":
        return dumps(_asked_object(user_text, snippet, model, index)), None
    parts = [_opening(body, model, key, index)]
    citations = None
    documents = body.get("documents")
    if documents:
        quote, doc_id = _document_quote(documents[0], 0)
        head = " ".join(parts) + " The documents say: “"
        start = len(head)
        citations = [{"start": start, "end": start + len(quote), "text": quote, "document_ids": [doc_id]}]
        parts.append(f"The documents say: “{quote}”")
    elif snippet:
        parts.append(f"You said: “{snippet}”")
    if media:
        parts.append(f"I received {media}.")
    if not snippet and not media and not documents:
        parts.append("There was no user message to answer.")
    text = " ".join(parts)
    if index:
        text += f" (choice {index + 1})"
    return text, citations


def _document_quote(doc: Any, position: int) -> tuple[str, str]:
    doc_id = f"doc_{position}"
    if isinstance(doc, dict):
        doc_id = doc.get("id") or doc_id
        data = doc.get("data")
        if isinstance(data, dict):
            text = next(
                (data[k] for k in ("text", "snippet", "content", "title") if isinstance(data.get(k), str)),
                None,
            )
            if text is None:
                text = next((v for v in data.values() if isinstance(v, str)), dumps(data))
        else:
            text = str(data)
    else:
        text = doc
    return _one_line(text, 200), doc_id


def apply_stop(text: str, stop: Any) -> tuple[str, bool]:
    """(``text`` cut before the first ``stop`` sequence it contains, whether it was cut)."""
    sequences = [stop] if isinstance(stop, str) else stop or []
    cuts = [text.find(s) for s in sequences if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True
