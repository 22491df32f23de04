"""Python callables as Compass tools: schemas out, tool calls in.

:func:`tool_schema` describes a function in the ``tools`` format of the
chat-completions API (a JSON Schema object built from its signature, type hints
and docstring). :func:`run_tool` executes one call the model asked for and never
raises for anything the model got wrong: a bad call becomes a :class:`ToolRun`
whose ``content`` tells the model how to fix it, so the conversation can go on.
"""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import dataclasses
import enum
import inspect
import json
import re
import time
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from typing import Any

import docstring_parser

from ._exceptions import ToolError

__all__ = ["ToolRun", "resolve_tools", "run_tool", "run_tool_calls", "tool_schema"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HINT_FIX = "give it a type hint such as str/int/float/bool/Literal[...]/list[...]"
_SCALARS: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}
_ARRAY_ORIGINS = (
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
_OBJECT_ORIGINS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
# Wrappers a TypedDict key may carry; compared by name so that the
# typing_extensions spellings (Python 3.10) are recognised too.
_KEY_QUALIFIERS = {"Required", "NotRequired", "ReadOnly"}


class _Unsupported(Exception):
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
    hints = _type_hints(func, name)
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


def _type_hints(func: Callable[..., Any], name: str) -> dict[str, Any]:
    if inspect.isclass(func):
        target: Any = func.__init__  # the parameters are __init__'s, not the class body's
    elif inspect.isfunction(func) or inspect.ismethod(func):
        target = func
    else:
        target = getattr(type(func), "__call__", func)
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
        except _Unsupported as exc:
            raise ToolError(
                f"Tool {name!r} cannot be used: parameter {param.name!r} has the type "
                f"{exc}, which has no JSON form the model can send. Change the hint: "
                f"{_HINT_FIX}."
            ) from None
    if param.default is inspect.Parameter.empty or param.default is None:
        return {}  # no hint: the model may send any JSON value
    try:
        return _schema_for(type(param.default), ())
    except _Unsupported:
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
        schema = _schema_for(args[0], seen)
        notes = [m.strip() for m in args[1:] if isinstance(m, str) and m.strip()]
        if notes:
            schema["description"] = " ".join(notes)
        return schema
    if getattr(origin, "_name", None) in _KEY_QUALIFIERS:
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
    if origin in _ARRAY_ORIGINS:
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = _schema_for(args[0], seen)
        if origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
            schema["uniqueItems"] = True
        return schema
    if origin in _OBJECT_ORIGINS:
        if not args:
            return {"type": "object"}
        key, value = args
        if key is not str and key is not Any:
            raise _Unsupported(f"{_type_name(tp)} (JSON object keys are always strings)")
        return {"type": "object", "additionalProperties": _schema_for(value, seen)}

    if isinstance(tp, type):
        if tp is tuple:
            return {"type": "array"}
        if tp in (list, set, frozenset) or tp in _ARRAY_ORIGINS:
            return {"type": "array"}
        if tp is dict or tp in _OBJECT_ORIGINS:
            return {"type": "object"}
        if issubclass(tp, enum.Enum):
            return _enum_schema(tp)
        if tp in seen:
            raise _Unsupported(f"{tp.__name__} (it refers to itself)")
        if _is_typeddict(tp):
            return _typeddict_schema(tp, seen + (tp,))
        if dataclasses.is_dataclass(tp):
            return _dataclass_schema(tp, seen + (tp,))
    raise _Unsupported(_type_name(tp))


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
        raise _Unsupported(f"{_type_name(tp)} (Literal values must be str, int, float, bool or None)")
    return {"type": kind, "enum": values}


def _enum_schema(cls: type[enum.Enum]) -> dict[str, Any]:
    values = [member.value for member in cls]
    kind = _json_type(values)
    if kind is None:
        raise _Unsupported(f"{cls.__qualname__} (its values must be str, int, float or bool)")
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


def _class_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # an unresolved string annotation in the class body
        raise _Unsupported(f"{cls.__qualname__} (its field hints cannot be evaluated: {exc})") from None


def _typeddict_schema(cls: type, seen: tuple[type, ...]) -> dict[str, Any]:
    hints = _class_hints(cls)
    required = set(cls.__required_keys__)  # type: ignore[attr-defined]
    for key, hint in hints.items():
        qualifier = getattr(typing.get_origin(hint), "_name", None)
        if qualifier == "Required":
            required.add(key)
        elif qualifier == "NotRequired":
            required.discard(key)
    return _object_schema(cls, hints, required, seen)


def _dataclass_schema(cls: type, seen: tuple[type, ...]) -> dict[str, Any]:
    hints = _class_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
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
        return json.loads(json.dumps(value, allow_nan=False, default=_to_json))
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


def resolve_tools(
    items: Iterable[Callable[..., Any] | Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Callable[..., Any]]]:
    """Turn callables and tool dicts into ``tools`` schemas plus a name -> function map.

    Tool dicts have no Python function behind them: they are sent as given, and
    a call to one is reported by :func:`run_tool` as one that cannot run here.
    """
    if callable(items) or isinstance(items, (Mapping, str, bytes)):
        items = [items]  # type: ignore[list-item]  # a lone tool is a list of one
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
            f"Tool dict {_short(item)} is not in tool form: Compass supports only function tools. "
            'Write it as {"type": "function", "function": {"name": ..., "description": ..., '
            '"parameters": {"type": "object", "properties": {...}}}}.'
        )
    function = tool["function"]
    name = function.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ToolError(
            f"Tool dict {_short(item)} has the name {name!r}; tool names are 1 to 64 characters "
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


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class ToolRun:
    """The outcome of one tool call."""

    result: Any
    """The Python return value (None if the call failed)."""
    content: str
    """The ``content`` of the tool message sent back to the model."""
    error: str | None
    """``"ValueError: bad city"`` when the tool raised or the call was malformed."""
    duration: float
    """Seconds spent, including argument checks."""


def run_tool(
    functions: Mapping[str, Callable[..., Any]],
    name: str,
    arguments: Mapping[str, Any] | str | None,
) -> ToolRun:
    """Run the tool call ``name(arguments)``; any failure comes back as an error ToolRun."""
    start = time.perf_counter()

    def failed(message: str) -> ToolRun:
        return ToolRun(
            result=None,
            content=json.dumps({"error": message}, ensure_ascii=False),
            error=message,
            duration=time.perf_counter() - start,
        )

    func = functions.get(name)
    if func is None:
        known = ", ".join(sorted(functions)) or "none"
        return failed(
            f"There is no runnable tool named {name!r}. Tools that can be called: {known}. "
            "Call one of these by its exact name."
        )
    try:
        kwargs = _call_arguments(func, name, arguments)
    except _BadCall as exc:
        return failed(str(exc))

    try:
        result = func(**kwargs)
        if inspect.isawaitable(result):
            result = _wait_for(result)
    except Exception as exc:  # the tool's own failure is news for the model, not a crash
        return failed(f"{type(exc).__name__}: {exc}")
    return ToolRun(
        result=result, content=_content(result), error=None, duration=time.perf_counter() - start
    )


def run_tool_calls(
    functions: Mapping[str, Callable[..., Any]],
    calls: Sequence[tuple[str, str, Mapping[str, Any] | str | None]],
) -> list[ToolRun]:
    """Run ``(id, name, arguments)`` calls one after another, in the order given.

    Sequential on purpose: tools may touch the notebook's state, and the
    results must line up with the calls for the tool messages.
    """
    return [run_tool(functions, name, arguments) for _call_id, name, arguments in calls]


class _BadCall(Exception):
    """Arguments the model must fix; the message is written for the model."""


def _call_arguments(
    func: Callable[..., Any], name: str, arguments: Mapping[str, Any] | str | None
) -> dict[str, Any]:
    if arguments is None:
        args: Any = {}
    elif isinstance(arguments, (str, bytes)):
        text = arguments.decode() if isinstance(arguments, bytes) else arguments
        if not text.strip():
            args = {}  # some models send "" for a call without arguments
        else:
            try:
                args = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _BadCall(
                    f"The arguments for {name!r} are not valid JSON ({exc.msg} at position "
                    f"{exc.pos}): {_short(text, 200)}. Send the arguments as one JSON object, "
                    'e.g. {"city": "Paris"}.'
                ) from None
    else:
        args = arguments
    if not isinstance(args, Mapping):
        raise _BadCall(
            f"The arguments for {name!r} must be a JSON object of named parameters, "
            f"not {type(args).__name__} {_short(args)}."
        )
    args = dict(args)

    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return args  # nothing to check against; let the call itself decide
    params = signature.parameters
    accepts_extra = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {
        p.name: p
        for p in params.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    missing = [
        p.name
        for p in named.values()
        if p.default is inspect.Parameter.empty and p.name not in args
    ]
    unexpected = [] if accepts_extra else [k for k in args if k not in named]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append("missing required " + ", ".join(repr(m) for m in missing))
        if unexpected:
            problems.append("unexpected " + ", ".join(repr(u) for u in unexpected))
        takes = ", ".join(
            p if named[p].default is inspect.Parameter.empty else f"{p} (optional)" for p in named
        )
        raise _BadCall(
            f"Wrong arguments for {name!r}: {'; '.join(problems)}. "
            f"It takes: {takes or 'no arguments'}. Call it again with exactly these names."
        )

    hints = _hints_or_empty(func)
    for key, value in args.items():
        if key in hints:
            try:
                args[key] = _convert(value, hints[key])
            except _BadCall as exc:
                raise _BadCall(f"Argument {key!r} of {name!r}: {exc}") from None
    return args


def _hints_or_empty(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return _type_hints(func, getattr(func, "__name__", "?"))
    except ToolError:
        return {}


def _convert(value: Any, tp: Any) -> Any:
    """Give ``value`` the Python type its hint names where JSON cannot carry it.

    Only forms JSON has no way to express are converted (Enum members, dataclass
    instances, tuples and sets); scalars stay exactly as the model sent them.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated or getattr(origin, "_name", None) in _KEY_QUALIFIERS:
        return _convert(value, args[0])
    if value is None:
        return None
    if origin is typing.Union or origin is types.UnionType:
        for option in args:
            if option is type(None):
                continue
            try:
                return _convert(value, option)
            except _BadCall:
                continue
        return value
    if origin is typing.Literal:
        for arg in args:
            if isinstance(arg, enum.Enum) and arg.value == value:
                return arg
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(json.dumps(m.value) for m in tp)
            raise _BadCall(
                f"{json.dumps(value, default=repr)} is not one of the allowed values: {allowed}."
            ) from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        try:
            hints = _class_hints(tp)
        except _Unsupported:
            hints = {}
        try:
            return tp(**{k: _convert(v, hints.get(k, Any)) for k, v in value.items()})
        except TypeError as exc:
            raise _BadCall(f"{exc}.") from None
    if isinstance(value, list):
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0]) for v in value)
            if args and len(args) == len(value):
                return tuple(_convert(v, a) for v, a in zip(value, args))
            return tuple(value)
        if tp is tuple:
            return tuple(value)
        if origin in _ARRAY_ORIGINS and args:
            items = [_convert(v, args[0]) for v in value]
            if origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
                return (frozenset if origin is frozenset else set)(items)
            return items
        if tp in (set, frozenset):
            return tp(value)
    if isinstance(value, dict) and origin in _OBJECT_ORIGINS and len(args) == 2:
        return {k: _convert(v, args[1]) for k, v in value.items()}
    return value


def _wait_for(awaitable: Any) -> Any:
    async def finish() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(finish())
    # A loop already runs in this thread (ipykernel runs every cell inside one),
    # and a running loop cannot be re-entered to wait on the coroutine. A
    # short-lived thread gives it a loop of its own. The price: the coroutine must
    # not use objects bound to the kernel's loop (e.g. an AsyncClient made there).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, finish()).result()


def _content(result: Any) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(result, ensure_ascii=False, allow_nan=False, default=_to_json)
    except (TypeError, ValueError):
        return repr(result)


def _to_json(value: Any) -> Any:
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
