"""``{name}`` in a text -> a value from a namespace: the cell magic's body and ``cj.map``'s template.

:class:`string.Formatter` semantics over the namespace: names, attributes and
indices (``{df.shape}``, ``{rows[0]}``), conversions and format specs
(``{x!r}``, ``{pi:.2f}``); ``{{`` and ``}}`` are literal braces. The values are
inserted once: braces inside a value are not looked at again. Any problem is a
:class:`ValidationError` that names the field as written and says how to write
literal braces, so pasted code or JSON costs no request.

Two rules keep a text from reading more than plain values:

- No name, attribute or index key in a field may start with an underscore.
  string.Formatter would otherwise walk dunders
  (``{get_ipython.__func__.__globals__[os].environ[COMPASS_API_KEY]}``) and put
  the API key into the message. The whole text is checked before any field is
  resolved, so a refused text runs no attribute getter at all.
- A field whose value contains the configured API key is refused (defence in
  depth for plain paths such as ``{os.environ}`` in a notebook that imported os).

:class:`Template` checks a text once and fills it many times (``cj.map`` fills
one template per row); :func:`interpolate` does both at once. ``subject`` names
the text in messages: ``"cell"`` for ``%%compass``, ``"template"`` for ``cj.map``.
This module imports neither IPython nor httpx.
"""

from __future__ import annotations

import _string  # CPython's field-name splitter: the very one string.Formatter.get_field uses
import re
import string
from typing import Any, Mapping, Sequence

from ._exceptions import CompassError, ValidationError

__all__ = ["MAX_SPEC_NUMBER", "Template", "interpolate"]

_LITERAL_HINT = "If the braces are meant literally (code, JSON), double them: {{ and }}."
# A width or precision above this is a typo or a memory bomb ({x:999999999} builds a 1 GB string).
MAX_SPEC_NUMBER = 10_000
# string.Formatter.vformat allows a field inside a format spec ({x:{width}}), not one level more.
_FORMATTER_DEPTH = 2


def _short(spec: str) -> str:
    # A spec may hold a resolved {field} (any variable's text): quote only its start.
    return repr(spec) if len(spec) <= 40 else repr(spec[:37] + "...")


def _written(field_name: str, conversion: str | None, spec: str) -> str:
    """The field as the text wrote it (string.Formatter renumbers {} to 0 before we see it)."""
    return "{" + field_name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"


def _python_path(first: str, rest: list[tuple[bool, int | str]]) -> str:
    """The field as a Python expression, for the "assign it to a variable first" hint."""
    out = first
    for is_attr, key in rest:
        out += f".{key}" if is_attr else f"[{key!r}]"
    return out


def _check_field(field_name: str, written: str, subject: str) -> str:
    """Refuse positional fields and any underscore name, attribute or index key; return the root name."""
    try:
        first, rest_iter = _string.formatter_field_name_split(field_name)
        rest = list(rest_iter)  # the iterator parses lazily, so a malformed field fails here
    except ValueError as exc:
        raise ValidationError(
            f"The {subject}'s field {written} is malformed ({exc}), so nothing was sent. "
            f"Write {{name}}, {{name.attribute}} or {{name[0]}}. {_LITERAL_HINT}"
        ) from None
    if isinstance(first, int) or first == "":
        raise ValidationError(
            f"The {subject} has an empty or numbered field {written}, so nothing was sent: fields name a variable, "
            f"e.g. {{text}}. {_LITERAL_HINT}"
        )
    parts: list[str] = [first] + [key for _, key in rest if isinstance(key, str)]
    hidden = next((part for part in parts if part.startswith("_")), None)
    if hidden is None:
        return first
    expression = _python_path(first, rest)
    raise ValidationError(
        f"The {subject}'s field {written} uses {hidden!r}, which starts with an underscore, so nothing was sent: "
        "fields may only use plain names, attributes and keys, because underscore names lead into "
        "the interpreter's internals (and from there to secrets such as the API key). Assign the value to a "
        f"plain variable in a cell above (value = {expression}) and write {{value}}. {_LITERAL_HINT}"
    )


def _check_structure(text: str, subject: str, names: list[str], depth: int = _FORMATTER_DEPTH) -> None:
    """Every field of ``text`` (and of the format specs inside it), checked before any is filled in.

    The root name of each field is appended to ``names`` (in order, repeats kept).
    """
    for _literal, field_name, spec, conversion in string.Formatter().parse(text):
        if field_name is None:
            continue
        written = _written(field_name, conversion, spec or "")
        if depth <= 0:
            raise ValidationError(
                f"The {subject}'s field {written} sits inside a format spec inside a format spec, which Python's "
                f"formatting does not allow, so nothing was sent. Compute the value in a cell above. {_LITERAL_HINT}"
            )
        names.append(_check_field(field_name, written, subject))
        if spec and ("{" in spec or "}" in spec):
            _check_structure(spec, subject, names, depth - 1)


def _configured_key() -> str | None:
    try:
        from .settings import config

        key = config.get("api_key")
    except CompassError:  # an empty or broken COMPASS_API_KEY: nothing to protect here
        return None
    # Very short "keys" would refuse ordinary text; real keys are far longer.
    return key if isinstance(key, str) and len(key) >= 8 else None


class _NamespaceFormatter(string.Formatter):
    """One per fill: it remembers the field being filled in, for the messages."""

    def __init__(self, subject: str, key: str | None) -> None:
        super().__init__()
        self._subject = subject
        self._field = "{}"
        self._key = key

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        subject = self._subject
        if isinstance(key, int):  # refused by _check_structure already; kept so no path can reach args
            raise ValidationError(
                f"The {subject} has a numbered field {self._field}: fields name a variable. {_LITERAL_HINT}"
            )
        try:
            return kwargs[key]
        except KeyError:
            if subject == "cell":
                problem = f"no variable {key!r} is defined in the notebook"
                fix = f"Define {key} in a cell above (and run it)."
            else:
                problem, fix = f"the row has no {key!r}", f"Give every row a {key!r}."
            raise ValidationError(
                f"The {subject} uses {self._field}, but {problem}, so nothing was sent. {fix} {_LITERAL_HINT}"
            ) from None

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        self._field = "{" + field_name + "}"
        try:
            return super().get_field(field_name, args, kwargs)
        except ValidationError:
            raise
        except Exception as exc:  # AttributeError, KeyError, IndexError, TypeError from the user's objects
            raise ValidationError(
                f"The {self._subject}'s field {self._field} could not be filled in ({type(exc).__name__}: {exc}), "
                f"so nothing was sent. Check the expression. {_LITERAL_HINT}"
            ) from None

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        try:
            return super().convert_field(value, conversion)
        except ValueError as exc:
            raise ValidationError(
                f"{exc} in the {self._subject}'s field {self._field}: use !r, !s or !a. {_LITERAL_HINT}"
            ) from None
        except Exception as exc:  # the user's __repr__ / __str__ failed
            raise ValidationError(
                f"The {self._subject}'s field {self._field} could not be converted ({type(exc).__name__}), so "
                "nothing was sent. Convert the value in a cell above."
            ) from None

    def format_field(self, value: Any, format_spec: str) -> Any:
        subject = self._subject
        # len() first: int() of a run over 4300 digits is itself a ValueError.
        if format_spec and any(len(n) > 6 or int(n) > MAX_SPEC_NUMBER for n in re.findall(r"\d+", format_spec)):
            raise ValidationError(
                f"The format spec {_short(format_spec)} of the {subject}'s field {self._field} asks for a width or "
                f"precision over {MAX_SPEC_NUMBER:,}, so nothing was sent. Use a smaller number. {_LITERAL_HINT}"
            )
        try:
            result = super().format_field(value, format_spec)
        except (ValueError, TypeError) as exc:
            raise ValidationError(
                f"The format spec {_short(format_spec)} of the {subject}'s field {self._field} does not apply to a "
                f"{type(value).__name__} ({exc}), so nothing was sent. Fix the part after the colon. {_LITERAL_HINT}"
            ) from None
        except Exception as exc:  # the user's __format__ / __str__ failed
            raise ValidationError(
                f"The {subject}'s field {self._field} could not be formatted ({type(exc).__name__}), so nothing was "
                "sent. Format the value in a cell above."
            ) from None
        if self._key and self._key in result:
            raise ValidationError(
                f"The {subject}'s field {self._field} would put the Compass API key into the message, so nothing was "
                "sent. Leave the key out of the message; it is sent only as the api-key header."
            )
        return result


def _redacted(exc: ValidationError) -> ValidationError:
    """The same error with the key masked: a user object's exception text is quoted in some messages."""
    from .settings import redact

    try:
        return ValidationError(redact(str(exc)))
    except CompassError:
        return exc


class Template:
    """A text checked once (braces, underscore names) and filled from a namespace as often as needed.

    ``names`` are the root names its fields use, in order of first use
    (``{row.title}`` and ``{price:.2f}`` give ``row`` and ``price``).
    """

    __slots__ = ("text", "subject", "names", "_plain", "_key")

    def __init__(self, text: str, *, subject: str = "template") -> None:
        self.text, self.subject = text, subject
        self._plain = "{" not in text and "}" not in text
        found: list[str] = []
        if not self._plain:
            try:
                # An unmatched brace (the likeliest mistake) or a forbidden field: nothing resolved yet.
                _check_structure(text, subject, found)
            except ValueError as exc:
                raise ValidationError(
                    f"The {subject} has a brace that does not pair up ({exc}), so nothing was sent. "
                    f"Write {{name}} to insert a variable. {_LITERAL_HINT}"
                ) from None
            except ValidationError as exc:
                raise _redacted(exc) from None
        self.names: tuple[str, ...] = tuple(dict.fromkeys(found))
        self._key = _configured_key()

    def fill(self, namespace: Mapping[str, Any]) -> str:
        """The text with every ``{field}`` replaced from ``namespace`` (once), ``{{``/``}}`` made literal."""
        if self._plain:
            return self.text
        try:
            return _NamespaceFormatter(self.subject, self._key).vformat(self.text, (), namespace)
        except ValidationError as exc:
            raise _redacted(exc) from None
        except ValueError as exc:  # the structure check should leave none; kept so none becomes a traceback
            raise ValidationError(
                f"The {self.subject}'s braces could not be filled in ({exc}), so nothing was sent. {_LITERAL_HINT}"
            ) from None


def interpolate(text: str, namespace: Mapping[str, Any], *, subject: str = "cell") -> str:
    """``text`` with every ``{field}`` replaced from ``namespace`` (once), ``{{``/``}}`` made literal."""
    return Template(text, subject=subject).fill(namespace)
