"""Small helpers every part of the stand-in shares: JSON text, tokens, hashes, error bodies.

They hold no state and know nothing of HTTP or of the reply rules, so every
other module of :mod:`compass_jupyter.testing` may import this one (and this
one imports none of them).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from typing import Any

__all__ = [
    "count_tokens",
    "dumps",
    "dumps_sorted",
    "error_body",
    "hash_int",
    "ident",
    "text_of",
    "tokenize",
]

_TOKEN_RE = re.compile(r"\s*\S+")
_ALNUM = string.ascii_letters + string.digits


def dumps(obj: Any) -> str:
    """Compact JSON with raw UTF-8 (as real servers send it)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def dumps_sorted(obj: Any) -> str:
    """Canonical JSON of a request body (the input of every id and variation)."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def tokenize(text: str) -> list[str]:
    """Split text into the stand-in's tokens; they always join back to ``text``.

    Tokens are ``re.findall(r"\\s*\\S+", text)``, with trailing whitespace kept
    on the last token.
    """
    tokens = _TOKEN_RE.findall(text)
    if not tokens:
        return [text] if text else []
    rest = text[sum(map(len, tokens)) :]
    if rest:
        tokens[-1] += rest
    return tokens


def count_tokens(text: str) -> int:
    """How many tokens :func:`tokenize` would make of ``text`` (for usage counts)."""
    return len(_TOKEN_RE.findall(text))


def _digest(parts: tuple[Any, ...]) -> bytes:
    # The unit separator keeps ("ab", "c") and ("a", "bc") apart.
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()


def hash_int(*parts: Any) -> int:
    """A stable 64-bit number from ``parts`` (the same parts give it in every process)."""
    return int.from_bytes(_digest(parts)[:8], "big")


def ident(*parts: Any, length: int = 24) -> str:
    """A stable alphanumeric id of ``length`` characters from ``parts``."""
    number = int.from_bytes(_digest(parts), "big")
    chars = []
    for _ in range(length):
        number, rem = divmod(number, len(_ALNUM))
        chars.append(_ALNUM[rem])
    return "".join(chars)


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def error_body(
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    error_type: str = "invalid_request_error",
) -> dict[str, Any]:
    """The OpenAI-style JSON error: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
