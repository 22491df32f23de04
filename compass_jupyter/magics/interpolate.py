"""``{name}`` in a cell body -> the value of ``name`` in the user namespace.

Exactly :class:`string.Formatter` semantics over the namespace: names,
attributes and indices (``{df.shape}``, ``{rows[0]}``), conversions and format
specs (``{x!r}``, ``{pi:.2f}``); ``{{`` and ``}}`` are literal braces. The
values are inserted once: braces inside a value are not looked at again. Any
problem is a :class:`ValidationError` that names the field and says how to write
literal braces, so pasted code or JSON costs no request.
"""

from __future__ import annotations

import string
from typing import Any, Mapping, Sequence

from .._exceptions import ValidationError

__all__ = ["interpolate"]

_LITERAL_HINT = "If the braces are meant literally (code, JSON), double them: {{ and }}."


class _NamespaceFormatter(string.Formatter):
    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int):
            raise ValidationError(
                f"The cell has an empty or numbered field {{{'' if key == 0 else key}}}: fields name a variable, "
                f"e.g. {{text}}. {_LITERAL_HINT}"
            )
        try:
            return kwargs[key]
        except KeyError:
            raise ValidationError(
                f"The cell uses {{{key}}}, but no variable {key!r} is defined in the notebook, so nothing was sent. "
                f"Define {key} in a cell above (and run it). {_LITERAL_HINT}"
            ) from None

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        try:
            return super().get_field(field_name, args, kwargs)
        except ValidationError:
            raise
        except Exception as exc:  # AttributeError, KeyError, IndexError, TypeError from the user's objects
            raise ValidationError(
                f"The cell's field {{{field_name}}} could not be filled in ({type(exc).__name__}: {exc}), so nothing "
                f"was sent. Check the expression. {_LITERAL_HINT}"
            ) from None

    def format_field(self, value: Any, format_spec: str) -> Any:
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                f"The format spec {format_spec!r} does not apply to a {type(value).__name__} ({exc}), so nothing was "
                f"sent. Fix the part after the colon. {_LITERAL_HINT}"
            ) from None

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        try:
            return super().convert_field(value, conversion)
        except ValueError as exc:
            raise ValidationError(f"{exc}: use !r, !s or !a. {_LITERAL_HINT}") from None


_FORMATTER = _NamespaceFormatter()


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """``text`` with every ``{field}`` replaced from ``namespace`` (once), ``{{``/``}}`` made literal."""
    if "{" not in text and "}" not in text:
        return text
    try:
        list(_FORMATTER.parse(text))  # structure first: an unmatched brace is the likeliest mistake
    except ValueError as exc:
        raise ValidationError(
            f"The cell has a brace that does not pair up ({exc}), so nothing was sent. "
            f"Write {{name}} to insert a variable; {_LITERAL_HINT}"
        ) from None
    try:
        return _FORMATTER.vformat(text, (), namespace)
    except ValidationError:
        raise
    except ValueError as exc:  # e.g. switching between automatic and manual field numbering
        raise ValidationError(f"The cell's braces could not be filled in ({exc}), so nothing was sent. {_LITERAL_HINT}") from None
