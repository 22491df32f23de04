"""Python callables as Compass tools: a function's signature, hints and docstring -> its ``tools`` schema.

:func:`tool_schema` describes a function in the ``tools`` format of the
chat-completions API (a JSON Schema object built from its signature, type hints
and docstring); :func:`resolve_tools` turns a mix of callables and tool dicts
into the schemas to send and the functions that can be run. A function that
cannot be described is a :class:`~compass_jupyter.ToolError` before anything is
sent. The type helpers here are shared with :mod:`.calls`, which converts the
model's arguments back to those types.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from copy import deepcopy
from typing import Any

import docstring_parser

from .._exceptions import ToolError

__all__ = [
    "ARRAY_ORIGINS",
    "KEY_QUALIFIERS",
    "OBJECT_ORIGINS",
    "Unsupported",
    "class_hints",
    "resolve_tools",
    "short_repr",
    "to_json",
    "tool_schema",
    "type_hints",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HINT_FIX = "give it a type hint such as str/int/float/bool/Literal[...]/list[...]"
_SCALARS: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
ARRAY_ORIGINS = (
    list,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
    collections.abc.MutableSet,
    collections.abc.Collection,
    collections.abc.Iterable,
)
OBJECT_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
# Wrappers a TypedDict key may carry; compared by name so that the
# typing_extensions spellings (Python 3.10) are recognised too.
KEY_QUALIFIERS = {"Required", "NotRequired", "ReadOnly"}


class Unsupported(Exception):
    """An annotation with no JSON Schema counterpart; the message says which."""


# --------------------------------------------------------------------------- schemas


def tool_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """Describe ``func`` as a chat-completions tool.

    Raises :class:`ToolError` when the function cannot be described (no usable
    name, ``*args``/``**kwargs``, an annotation with no JSON counterpart).
    """
    name = _tool_name(func)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ToolError(
            f"Tool {name!r} cannot be used: Python cannot read its signature ({exc}). "
            "Wrap it in a small `def` with named, type-hinted parameters and pass that instead."
        ) from exc
    hints = type_hints(func, name)
    doc = _parse_doc(func)
    param_docs = _param_descriptions(doc)

    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in signature.parameters.values():
        has_default = param.default is not inspect.Parameter.empty
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            stars = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else "**"
            raise ToolError(
                f"Tool {name!r} cannot be used: parameter {stars}{param.name} takes any number "
                "of arguments, which a tool schema cannot describe. Replace it with named "
                f"parameters, e.g. `items: list[str]`, and {_HINT_FIX}."
            )
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            if has_default:
                # The model can only send arguments by name; this one keeps its default.
                continue
            raise ToolError(
                f"Tool {name!r} cannot be used: parameter {param.name!r} is positional-only "
                "(before `/`), but the model passes arguments by name. Remove the `/` or wrap "
                "the function in a `def` whose parameters can be named."
            )
        prop = _param_schema(name, param, hints)
        description = param_docs.get(param.name)
        if description and "description" not in prop:
            prop["description"] = description
        if has_default:
            default = _json_default(param.default)
            if default is not _NO_DEFAULT:
                prop["default"] = default
        else:
            required.append(param.name)
        properties[param.name] = prop

    function: dict[str, Any] = {"name": name}
    description = _function_description(doc)
    if description:
        function["description"] = description
    function["parameters"] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    return {"type": "function", "function": function}


def _tool_name(func: Callable[..., Any]) -> str:
    if not callable(func):
        raise ToolError(
            f"{func!r} is not callable, so it cannot be a tool. Pass a function, "
            'or a tool dict like {"type": "function", "function": {"name": ..., "parameters": ...}}.'
        )
    name = getattr(func, "__name__", None)
    if not isinstance(name, str):
        raise ToolError(
            f"{func!r} has no __name__, so it cannot be named as a tool. Wrap it in a "
            "`def` with the name the model should call (letters, digits, _ and -)."
        )
    if not _NAME_RE.match(name):
        raise ToolError(
            f"Tool name {name!r} is not allowed: tool names are 1 to 64 characters of "
            "letters, digits, _ and -. Define the function with `def some_name(...)` "
            "(a lambda cannot be a tool) or set `func.__name__` to such a name."
        )
    return name


def type_hints(func: Callable[..., Any], name: str) -> dict[str, Any]:
    if inspect.isclass(func):
        target: Any = func.__init__  # the parameters are __init__'s, not the class body's
    elif inspect.isfunction(func) or inspect.ismethod(func):
        target = func
    else:
        target = getattr(type(func), "__call__", func)  # noqa: B004  (a callable object: its class's __call__)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # NameError for an unresolved string annotation, and friends
        raise ToolError(
            f"Tool {name!r} cannot be used: its type hints cannot be evaluated ({exc}). "
            "Import the names the hints use at module level, or "
            f"{_HINT_FIX}."
        ) from exc


def _param_schema(name: str, param: inspect.Parameter, hints: Mapping[str, Any]) -> dict[str, Any]:
    if param.name in hints:
        try:
            return _schema_for(hints[param.name], ())
        except Unsupported as exc:
            raise ToolError(
                f"Tool {name!r} cannot be used: parameter {param.name!r} has the type "
                f"{exc}, which has no JSON form the model can send. Change the hint: "
                f"{_HINT_FIX}."
            ) from None
    if param.default is inspect.Parameter.empty or param.default is None:
        return {}  # no hint: the model may send any JSON value
    try:
        return _schema_for(type(param.default), ())
    except Unsupported:
        return {}


def _schema_for(tp: Any, seen: tuple[type, ...]) -> dict[str, Any]:
    """The JSON Schema of one annotation; ``seen`` guards recursive types."""
    if tp is Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if isinstance(tp, type) and tp in _SCALARS:
        return {"type": _SCALARS[tp]}
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:  # typing.NewType
        return _schema_for(supertype, seen)

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        annotated = _schema_for(args[0], seen)
        notes = [m.strip() for m in args[1:] if isinstance(m, str) and m.strip()]
        if notes:
            annotated["description"] = " ".join(notes)
        return annotated
    if getattr(origin, "_name", None) in KEY_QUALIFIERS:
        return _schema_for(args[0], seen)
    if origin is typing.Literal:
        return _literal_schema(tp, args)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _schema_for(options[0], seen)
        return {"anyOf": [_schema_for(a, seen) for a in options]}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema_for(args[0], seen)}
        if not args:
            return {"type": "array"}
        return {
            "type": "array",
            "prefixItems": [_schema_for(a, seen) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin in ARRAY_ORIGINS:
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = _schema_for(args[0], seen)
        if origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
            schema["uniqueItems"] = True
        return schema
    if origin in OBJECT_ORIGINS:
        if not args:
            return {"type": "object"}
        key, value = args
        if key is not str and key is not Any:
            raise Unsupported(f"{_type_name(tp)} (JSON object keys are always strings)")
        return {"type": "object", "additionalProperties": _schema_for(value, seen)}

    if isinstance(tp, type):
        if tp is tuple:
            return {"type": "array"}
        if tp in (list, set, frozenset) or tp in ARRAY_ORIGINS:
            return {"type": "array"}
        if tp is dict or tp in OBJECT_ORIGINS:
            return {"type": "object"}
        if issubclass(tp, enum.Enum):
            return _enum_schema(tp)
        if tp in seen:
            raise Unsupported(f"{tp.__name__} (it refers to itself)")
        if _is_typeddict(tp):
            return _typeddict_schema(tp, seen + (tp,))
        if dataclasses.is_dataclass(tp):
            return _dataclass_schema(tp, seen + (tp,))
    raise Unsupported(_type_name(tp))


def _type_name(tp: Any) -> str:
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return tp.__qualname__
    return repr(tp).replace("typing.", "")


def _json_type(values: Iterable[Any]) -> str | list[str] | None:
    kinds: list[str] = []
    for value in values:
        if isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int):
            kind = "integer"
        elif isinstance(value, float):
            kind = "number"
        elif isinstance(value, str):
            kind = "string"
        elif value is None:
            kind = "null"
        else:
            return None
        if kind not in kinds:
            kinds.append(kind)
    if "integer" in kinds and "number" in kinds:
        kinds.remove("integer")  # every integer is a JSON number
    return kinds[0] if len(kinds) == 1 else kinds


def _literal_schema(tp: Any, args: tuple[Any, ...]) -> dict[str, Any]:
    values = [a.value if isinstance(a, enum.Enum) else a for a in args]
    kind = _json_type(values)
    if kind is None:
        raise Unsupported(f"{_type_name(tp)} (Literal values must be str, int, float, bool or None)")
    return {"type": kind, "enum": values}


def _enum_schema(cls: type[enum.Enum]) -> dict[str, Any]:
    values = [member.value for member in cls]
    kind = _json_type(values)
    if kind is None:
        raise Unsupported(f"{cls.__qualname__} (its values must be str, int, float or bool)")
    schema: dict[str, Any] = {"type": kind, "enum": values}
    doc = cls.__doc__
    if doc and doc != enum.Enum.__doc__ and not doc.startswith("An enumeration"):
        schema["description"] = inspect.cleandoc(doc)
    return schema


def _is_typeddict(tp: type) -> bool:
    return issubclass(tp, dict) and hasattr(tp, "__required_keys__")


def _object_schema(
    cls: type, fields: Mapping[str, Any], required: Iterable[str], seen: tuple[type, ...]
) -> dict[str, Any]:
    docs = _param_descriptions(_parse_class_doc(cls))
    properties: dict[str, Any] = {}
    for field_name, hint in fields.items():
        prop = _schema_for(hint, seen)
        if docs.get(field_name) and "description" not in prop:
            prop["description"] = docs[field_name]
        properties[field_name] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [f for f in fields if f in set(required)],
        "additionalProperties": False,
    }
    description = _function_description(_parse_class_doc(cls))
    if description:
        schema["description"] = description
    return schema


def class_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # an unresolved string annotation in the class body
        raise Unsupported(f"{cls.__qualname__} (its field hints cannot be evaluated: {exc})") from None


def _typeddict_schema(cls: type, seen: tuple[type, ...]) -> dict[str, Any]:
    hints = class_hints(cls)
    required = set(cls.__required_keys__)  # type: ignore[attr-defined]
    for key, hint in hints.items():
        qualifier = getattr(typing.get_origin(hint), "_name", None)
        if qualifier == "Required":
            required.add(key)
        elif qualifier == "NotRequired":
            required.discard(key)
    return _object_schema(cls, hints, required, seen)


def _dataclass_schema(cls: type, seen: tuple[type, ...]) -> dict[str, Any]:
    hints = class_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    schema = _object_schema(cls, {f.name: hints.get(f.name, Any) for f in fields}, required, seen)
    for f in fields:
        if f.default is not dataclasses.MISSING:
            default = _json_default(f.default)
            if default is not _NO_DEFAULT:
                schema["properties"][f.name]["default"] = default
    return schema


_NO_DEFAULT = object()


def _json_default(value: Any) -> Any:
    """``value`` as JSON for a ``default`` key, or _NO_DEFAULT when it has no JSON form."""
    try:
        return json.loads(json.dumps(value, allow_nan=False, default=to_json))
    except (TypeError, ValueError):
        return _NO_DEFAULT


# ------------------------------------------------------------------------ docstrings


def _parse_doc(obj: Any) -> docstring_parser.Docstring | None:
    text = inspect.getdoc(obj)
    if not text:
        return None
    try:
        return docstring_parser.parse(text)
    except docstring_parser.ParseError:
        # A docstring that is not in a known style still describes the function.
        doc = docstring_parser.Docstring()
        doc.short_description = text.strip()
        return doc


def _parse_class_doc(cls: type) -> docstring_parser.Docstring | None:
    doc = cls.__doc__
    # dataclasses invent "Name(field: type, ...)" when the class has no docstring.
    if not doc or (dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}(")):
        return None
    if _is_typeddict(cls) and doc == dict.__doc__:
        return None
    return _parse_doc(cls)


def _function_description(doc: docstring_parser.Docstring | None) -> str:
    if doc is None:
        return ""
    short = (doc.short_description or "").strip()
    long = (doc.long_description or "").strip()
    if short and long:
        # A summary wrapped over two lines comes back split at the line break.
        joiner = "\n\n" if doc.blank_after_short_description else " "
        return f"{short}{joiner}{long}"
    return short or long


def _param_descriptions(doc: docstring_parser.Docstring | None) -> dict[str, str]:
    if doc is None:
        return {}
    found: dict[str, str] = {}
    for param in doc.params:
        arg_name = param.arg_name.lstrip("*")
        if param.description and arg_name not in found:
            found[arg_name] = param.description.strip()
    return found


# ------------------------------------------------------------------------- resolving


def to_json(value: Any) -> Any:
    """JSON form of values json.dumps does not know but a tool may well return."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    model_dump = getattr(value, "model_dump", None)  # pydantic v2 models
    if callable(model_dump):
        return model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def resolve_tools(
    items: Iterable[Callable[..., Any] | Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Callable[..., Any]]]:
    """Turn callables and tool dicts into ``tools`` schemas plus a name -> function map.

    Tool dicts have no Python function behind them: they are sent as given, and
    a call to one is reported by :func:`run_tool` as one that cannot run here.
    """
    if callable(items) or isinstance(items, (Mapping, str, bytes)):
        items = [items]  # a lone tool is a list of one
    schemas: list[dict[str, Any]] = []
    functions: dict[str, Callable[..., Any]] = {}
    origins: dict[str, str] = {}
    for item in items:
        if isinstance(item, Mapping):
            schema = _checked_tool_dict(item)
            origin = "a tool dict"
        elif callable(item):
            schema = tool_schema(item)
            qualname = getattr(item, "__qualname__", schema["function"]["name"])
            origin = f"function {qualname}"
        else:
            raise ToolError(
                f"{item!r} ({type(item).__name__}) cannot be a tool. Pass Python functions, "
                'or tool dicts like {"type": "function", "function": {"name": ..., "parameters": ...}}.'
            )
        name = schema["function"]["name"]
        if name in origins:
            raise ToolError(
                f"Two tools are named {name!r} ({origins[name]} and {origin}); the model could not "
                "tell them apart. Rename one (tool names must be unique)."
            )
        origins[name] = origin
        schemas.append(schema)
        if not isinstance(item, Mapping):
            functions[name] = item
    return schemas, functions


def _checked_tool_dict(item: Mapping[str, Any]) -> dict[str, Any]:
    tool = deepcopy(dict(item))
    if "type" not in tool and "name" in tool:
        # The bare function form ({"name", "parameters", ...}) is common in examples.
        tool = {"type": "function", "function": tool}
    if tool.get("type") != "function" or not isinstance(tool.get("function"), Mapping):
        raise ToolError(
            f"Tool dict {short_repr(item)} is not in tool form: Compass supports only function tools. "
            'Write it as {"type": "function", "function": {"name": ..., "description": ..., '
            '"parameters": {"type": "object", "properties": {...}}}}.'
        )
    function = tool["function"]
    name = function.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ToolError(
            f"Tool dict {short_repr(item)} has the name {name!r}; tool names are 1 to 64 characters "
            "of letters, digits, _ and -. Set function.name to such a name."
        )
    parameters = function.get("parameters")
    if parameters is not None and not (
        isinstance(parameters, Mapping) and parameters.get("type", "object") == "object"
    ):
        raise ToolError(
            f"Tool {name!r}: function.parameters must be a JSON Schema object such as "
            '{"type": "object", "properties": {"city": {"type": "string"}}}; '
            "omit it for a tool without parameters."
        )
    return tool


def short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
