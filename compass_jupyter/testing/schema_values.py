"""Values that satisfy a JSON schema, for tool-call arguments and JSON replies.

The stand-in fills a tool's ``parameters`` (and a ``json_schema`` response
format) with :func:`value_for_schema`; free strings take the capitalised
phrases of the user's text (:func:`proper_phrases`), so that "weather in
Paris" calls ``get_weather`` with ``{"city": "Paris"}``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["proper_phrases", "value_for_schema"]


def proper_phrases(text: str) -> list[str]:
    """Runs of capitalised words that do not start a sentence ("San Francisco", "Paris")."""
    phrases: list[str] = []
    current: list[str] = []
    previous_end = 0
    sentence_start = True
    for match in re.finditer(r"[^\W\d_][\w'’-]*", text):
        between = text[previous_end : match.start()]
        if re.search(r"[.!?:\n]", between):
            sentence_start = True
        word = match.group()
        capital = word[0].isupper() and word != "I" and not sentence_start
        if capital and current and between.strip() == "":
            current.append(word)
        else:
            if current:
                phrases.append(" ".join(current))
            current = [word] if capital else []
        sentence_start = False
        previous_end = match.end()
    if current:
        phrases.append(" ".join(current))
    return phrases


def value_for_schema(schema: Any, hints: list[str] | None = None, *, suffix: str = "") -> Any:
    """A value that satisfies ``schema`` by type, the way the stand-in fills arguments.

    ``enum`` -> first value; ``const`` / ``default`` -> that value; string -> the
    next of ``hints`` (capitalised phrases from the user text) or ``"example"``
    (``format`` date / date-time / email / uri get a valid sample); integer -> 1,
    number -> 1.5 (moved into ``minimum``/``maximum``); boolean -> true; array ->
    one item; object -> its required properties plus optional ones that have an
    ``enum``, ``const`` or ``default``. ``$ref`` to ``#/$defs/...`` and
    ``anyOf``/``oneOf`` (first non-null branch) are followed. ``suffix`` is
    appended to free strings so that several choices differ.
    """
    hints = hints or []
    used = [0]  # how many hints the strings took so far

    def walk(node: Any, depth: int) -> Any:
        if not isinstance(node, dict) or depth > 12:
            return "example"
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = schema
            for key in ref[2:].split("/"):
                target = target.get(key, {}) if isinstance(target, dict) else {}
            return walk(target, depth + 1)
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return node["enum"][0]
        if "default" in node:
            return node["default"]
        for key in ("anyOf", "oneOf", "allOf"):
            branches = node.get(key)
            if isinstance(branches, list) and branches:
                usable = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
                return walk((usable or branches)[0], depth + 1)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in node else "array" if "items" in node else "string"
        if kind == "object":
            required = node.get("required") or []
            return {
                name: walk(sub, depth + 1)
                for name, sub in (node.get("properties") or {}).items()
                if name in required or (isinstance(sub, dict) and ("enum" in sub or "const" in sub or "default" in sub))
            }
        if kind == "array":
            item = walk(node.get("items", {}), depth + 1)
            count = node.get("minItems", 1)
            return [item] * (count if isinstance(count, int) and count > 0 else 1)
        if kind == "integer":
            return int(_bounded(node, 1))
        if kind == "number":
            return _bounded(node, 1.5)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string_for(node, hints, used, suffix)

    return walk(schema, 0)


def _bounded(schema: dict[str, Any], value: float) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if isinstance(low, (int, float)) and value <= low:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, (int, float)) and value >= high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return value


def _string_for(schema: dict[str, Any], hints: list[str], state: list[int], suffix: str) -> str:
    samples = {
        "date": "2025-01-01",
        "date-time": "2025-01-01T00:00:00Z",
        "time": "12:00:00",
        "email": "user@example.com",
        "uri": "https://example.com",
        "url": "https://example.com",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    if schema.get("format") in samples:
        return samples[schema["format"]]
    if hints:
        value = hints[state[0] % len(hints)]
        state[0] += 1
    else:
        value = "example"
    value += suffix
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and max_length >= 0:
        value = value[:max_length]
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        value = value.ljust(min_length, "x")
    return value
