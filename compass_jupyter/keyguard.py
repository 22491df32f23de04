"""Keeping an API key out of everything the package shows or keeps.

A server is not trusted to keep the key to itself: some echo it in an error
("Incorrect API key provided: sk-abc…"), whole or in part, in a status body, in
an error event mid-stream, or even in a reply. :func:`scrub` replaces the whole
key with its mask and any run of :data:`MIN_PIECE` or more of its characters
with ``****``, so neither the key nor the part its mask hides can be read back.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable

__all__ = ["LONG_KEY", "MIN_PIECE", "mask_key", "scrub", "scrub_reply", "scrub_value"]

MIN_PIECE = 8  # shorter runs are common in ordinary text; the mask itself shows 3 + 4 characters
LONG_KEY = 16  # keys this long are secret-shaped: their pieces are hidden too, and they are hidden in replies
_HIDDEN = "****"


def mask_key(key: str | None) -> str:
    """Show enough of a key to recognise it, never enough to use it."""
    if not key:
        return "(not set)"
    if len(key) < 12:
        return _HIDDEN
    return f"{key[:3]}...{key[-4:]}"


@functools.lru_cache(maxsize=8)
def _pieces(key: str) -> re.Pattern[str]:
    # Every MIN_PIECE-long window of the key; a match is then widened to the longest run.
    windows = sorted({key[i : i + MIN_PIECE] for i in range(len(key) - MIN_PIECE + 1)})
    return re.compile("|".join(map(re.escape, windows)))


def _scrub_one(text: str, key: str, min_key: int, pieces: bool) -> str:
    if len(key) < min_key:
        return text
    text = text.replace(key, mask_key(key))
    if not pieces or len(key) < LONG_KEY:
        return text  # a short key's pieces are ordinary words; only the whole key is hidden
    pattern = _pieces(key)
    if pattern.search(text) is None:
        return text
    out: list[str] = []
    pos = 0
    for match in pattern.finditer(text):
        start, end = match.span()
        if start < pos:
            continue
        offset = key.find(match.group())
        # Widen the run on both sides while the text keeps following the key.
        while start > pos and offset > 0 and text[start - 1] == key[offset - 1]:
            start, offset = start - 1, offset - 1
        while end < len(text) and offset + (end - start) < len(key) and text[end] == key[offset + end - start]:
            end += 1
        out += [text[pos:start], _HIDDEN]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def scrub(text: str, keys: Iterable[str | None], *, min_key: int = 4, pieces: bool = True) -> str:
    """``text`` with each key of at least ``min_key`` characters (and any long piece of a long one) hidden.

    Messages from a server hide pieces too (that is how servers echo keys). A model's reply
    passes ``min_key=LONG_KEY, pieces=False``: only a whole, secret-length key is hidden there,
    so a test key made of words (``nbval-stand-in-key``) does not blank out words of an answer.
    """
    for key in sorted({k for k in keys if k}, key=len, reverse=True):
        text = _scrub_one(text, key, min_key, pieces)
    return text


def scrub_value(value: Any, keys: Iterable[str | None], *, min_key: int = 4, pieces: bool = True) -> Any:
    """A copy of a parsed JSON value with every string scrubbed (keys of objects too)."""
    keys = [k for k in keys if k]
    if not keys:
        return value

    def walk(item: Any, depth: int) -> Any:
        if isinstance(item, str):
            return scrub(item, keys, min_key=min_key, pieces=pieces)
        if depth > 200:  # deeper than any real error body
            return "(nested too deeply to show)"
        if isinstance(item, dict):
            return {scrub(str(k), keys, min_key=min_key, pieces=pieces): walk(v, depth + 1) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, depth + 1) for v in item]
        return item

    return walk(value, 0)


def scrub_reply(reply: Any, keys: Iterable[str | None]) -> Any:
    """A Reply with the keys (of secret length only, whole) hidden wherever a server put them, in place.

    Only whole keys of :data:`LONG_KEY` characters or more: a reply's own words may
    contain any short string, and hiding pieces of a key there would garble text.
    """
    keys = tuple(keys)

    def hide(text: str) -> str:
        return scrub(text, keys, min_key=LONG_KEY, pieces=False)

    for choice in reply.choices:
        for name in ("text", "reasoning", "refusal"):
            value = getattr(choice, name)
            if value:
                setattr(choice, name, hide(value))
        for call in choice.tool_calls:
            call.arguments_json = hide(call.arguments_json)
            call.id, call.name = hide(call.id), hide(call.name)
        if choice.audio is not None and choice.audio.transcript:
            choice.audio.transcript = hide(choice.audio.transcript)
    reply.warnings = [hide(w) for w in reply.warnings]
    for name in ("id", "model", "system_fingerprint", "error"):
        value = getattr(reply, name)
        if isinstance(value, str):
            setattr(reply, name, hide(value))
    if reply.raw is not None:
        reply.raw = scrub_value(reply.raw, keys, min_key=LONG_KEY, pieces=False)
    return reply
