"""Is this value strict JSON that can be sent? One job: answer before anything is sent.

httpx encodes a request body with ``json.dumps(..., allow_nan=False)`` and then
UTF-8, so a body that breaks JSON's rules fails inside httpx with a bare
``ValueError``/``TypeError``/``UnicodeEncodeError`` (and a deep one with a
``RecursionError`` in whatever touches it first). :func:`check_json` finds the
same problems up front and says which field holds them:

- NaN and Infinity: JSON has no such numbers.
- Types JSON cannot represent (sets, numpy scalars, objects, bytes ...); dict
  keys other than str, int, float, bool or None.
- Nesting deeper than :data:`MAX_JSON_DEPTH` lists/dicts (or a value that
  contains itself): no real request field comes near it, and deeper values only
  risk ``RecursionError`` in the encoder, in ``repr`` and on the server.
- Integers too long for Python's int-to-text limit, and strings with lone
  surrogates (UTF-8 cannot encode them).

The walk is iterative, so checking a hostile value cannot itself overflow the stack.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

from ._exceptions import CompassError, ValidationError

__all__ = ["MAX_JSON_DEPTH", "check_json"]

MAX_JSON_DEPTH = 64  # lists and dicts inside one field's value; the deepest real field (a JSON Schema) needs ~10

_KEY_TYPES = (str, int, float, type(None))  # what json.dumps accepts as an object key (bool is an int)

# A node waiting to be checked: (value, depth, parent link); a link is (parent link, key), for the path.
_Link = tuple[Any, Any] | None


def _path(where: str, link: _Link) -> str:
    keys: list[Any] = []
    while link is not None:
        link, key = link
        keys.append(key)
    out = where
    for key in reversed(keys):
        if isinstance(key, int) and not isinstance(key, bool):
            out += f"[{key}]"
        elif isinstance(key, str) and key.isidentifier():
            out += f".{key}"
        else:
            text = repr(key)
            out += f"[{text if len(text) <= 40 else text[:37] + '...'}]"
    return out


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _refuse(message: str) -> NoReturn:
    # Paths quote the user's dict keys, and a key could be anything: never let the API key through.
    from .settings import redact

    try:
        message = redact(message)
    except CompassError:  # a broken COMPASS_API_KEY setting: nothing configured to hide
        pass
    raise ValidationError(message)


def _check_scalar(value: Any, where: str, link: _Link) -> bool:
    """True if ``value`` is a JSON scalar; refuses the near-misses; False for containers and others."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                _refuse(
                    f"{_path(where, link)} holds a lone surrogate character at position {exc.start} (text decoded "
                    "with errors='surrogateescape', or a broken emoji), which UTF-8 cannot encode, so nothing was "
                    "sent. Clean the text first, e.g. text.encode('utf-8', 'replace').decode('utf-8')."
                )
        return True
    if isinstance(value, int):
        if value.bit_length() > 64:
            try:
                int.__repr__(value)  # what json.dumps calls; Python caps it at 4300 digits
            except ValueError:
                _refuse(
                    f"{_path(where, link)} is a whole number with {value.bit_length():,} bits, too long to write as "
                    "JSON text, so nothing was sent. Send it as a string (str(x) after sys.set_int_max_str_digits), "
                    "or a smaller number."
                )
        return True
    if isinstance(value, float):
        if not math.isfinite(value):
            _refuse(
                f"{_path(where, link)} is {value!r}, and JSON has no NaN or Infinity (Python's json module "
                "accepts them, the API does not), so nothing was sent. Give a finite number, or None to "
                "leave the value out."
            )
        return True
    return False


def check_json(value: Any, where: str) -> None:
    """Raise :class:`ValidationError` naming ``where`` (and the path inside it) unless ``value`` is strict JSON."""
    # id -> deepest depth at which that container was already expanded. A container shared by many
    # parents is walked once per depth, not once per path (a DAG of [x, x] pairs would otherwise
    # take 2**64 steps); one that contains itself is revisited deeper each time and hits the depth cap.
    expanded: dict[int, int] = {}
    stack: list[tuple[Any, int, _Link]] = [(value, 1, None)]
    while stack:
        item, depth, link = stack.pop()
        if _check_scalar(item, where, link):
            continue
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, (list, tuple)):
            children = enumerate(item)
        else:
            hint = (
                "x.item() or x.tolist()"
                if type(item).__module__.startswith("numpy")
                else "dict(x), list(x), str(x) or int(x)"
            )
            _refuse(
                f"{_path(where, link)} is a {_type_name(item)}, which JSON cannot represent, so nothing was sent. "
                f"Convert it to a str, number, bool, None, list or dict first (e.g. {hint})."
            )
        if depth > MAX_JSON_DEPTH:
            _refuse(
                f"{where} is nested more than {MAX_JSON_DEPTH} levels deep (lists and dicts inside each other, "
                "or a value that contains itself), so nothing was sent; no request field needs that. "
                "Flatten it, or send the deep part as one string."
            )
        if expanded.get(id(item), 0) >= depth:
            continue
        expanded[id(item)] = depth
        is_dict = isinstance(item, dict)
        for key, child in children:
            if is_dict and not (isinstance(key, _KEY_TYPES) and _check_scalar(key, where, (link, key))):
                _refuse(
                    f"{_path(where, link)} has a key of type {_type_name(key)}; JSON object keys must be strings "
                    "(or numbers, written as strings), so nothing was sent. Use str(key) for the keys."
                )
            stack.append((child, depth + 1, (link, key)))
