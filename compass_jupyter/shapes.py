"""Reading what a server sent without trusting its shape.

A server may send any JSON value in any position: ``{"choices": [null]}``, an
``index`` of ``"x"``, ``content`` that is a number or an object. Each reader here
takes one value and the path it was found at (``choices[0].delta.content``) and
returns it in the type the Reply needs, or raises :class:`ShapeError` naming the
path, what was expected and what came instead. The accumulator turns that into a
:class:`~compass_jupyter.StreamError` that keeps the partial reply, so no
``TypeError`` or ``AttributeError`` from server data reaches a cell.

``null`` (or a missing key) always means "not sent".
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["ShapeError", "obj", "seq", "text", "content_text", "integer", "number", "describe", "error_text"]


class ShapeError(Exception):
    """A value of the wrong JSON type at ``path``."""

    def __init__(self, path: str, expected: str, value: Any) -> None:
        super().__init__(f"{path} is {describe(value)}, not {expected}")
        self.path = path


def describe(value: Any, limit: int = 40) -> str:
    """``a number (5)``, ``an object``, ``a list of 3 items``: what a value is, briefly."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int) and abs(value) >= 10**40:
        return f"a number with {len(str(abs(value))) if abs(value) < 10**4000 else 'thousands of'} digits"
    if isinstance(value, (int, float)):
        shown = repr(value)
        return f"a number ({shown if len(shown) <= limit else shown[:limit] + '…'})"
    if isinstance(value, str):
        shown = value if len(value) <= limit else value[:limit] + "…"
        return f"the text {shown!r}"
    if isinstance(value, dict):
        return f"an object with {len(value)} key{'s' if len(value) != 1 else ''}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return "null" if value is None else type(value).__name__


def error_text(error: Any, limit: int = 400) -> str | None:
    """The human part of an ``error`` a server sent: its message (or detail, or msg), or the text itself.

    None when it has none (an object without those keys, a number): the caller shows the whole value.
    """
    if isinstance(error, dict):
        message = error.get("message") or error.get("detail") or error.get("msg")
        return str(message)[:limit] if message else None
    if isinstance(error, str):
        return error[:limit]
    return None


def obj(value: Any, path: str, *, item: bool = False) -> dict[str, Any]:
    """A JSON object; ``{}`` for null, except for an ``item`` of a list, where null is an error."""
    if value is None and not item:
        return {}
    if not isinstance(value, dict):
        raise ShapeError(path, "an object", value)
    return value


def seq(value: Any, path: str) -> list[Any]:
    """A JSON list; ``[]`` for null."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ShapeError(path, "a list", value)
    return value


def text(value: Any, path: str) -> str | None:
    """A string, or None for null."""
    if value is None or isinstance(value, str):
        return value
    raise ShapeError(path, "text", value)


def content_text(value: Any, path: str) -> str | None:
    """Message content: a string, or a list of text parts joined (some OpenAI-compatible servers send those)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        pieces = []
        for i, part in enumerate(value):
            where = f"{path}[{i}]"
            if isinstance(part, str):
                pieces.append(part)
                continue
            part = obj(part, where, item=True)
            kind = part.get("type", "text")
            if kind != "text":
                raise ShapeError(f"{where}.type", "'text' (the only content part a reply can hold)", kind)
            pieces.append(text(part.get("text"), f"{where}.text") or "")
        return "".join(pieces)
    raise ShapeError(path, "text or a list of text parts", value)


def integer(value: Any, path: str, *, low: int = 0, high: int | None = None) -> int | None:
    """A whole number in [low, high] (``3.0`` counts as 3), or None for null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ShapeError(path, "a whole number", value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ShapeError(path, "a whole number", value)
        value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ShapeError(path, f"a whole number {bounds}", value)
    return value


def number(value: Any, path: str) -> float | None:
    """A real number (JSON has no NaN, but Python's parser accepts it: refused), or None for null."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and math.isnan(value))
    ):
        raise ShapeError(path, "a number", value)
    try:
        return float(value)
    except OverflowError:  # an int with hundreds of digits
        raise ShapeError(path, "a number of a sane size", value) from None
