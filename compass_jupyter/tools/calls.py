"""Running the tool calls a model asked for.

:func:`run_tool` executes one call and never raises for anything the model got
wrong: a bad call becomes a :class:`ToolRun` whose ``content`` tells the model
how to fix it, so the conversation can go on. Arguments are converted to the
function's type hints (with the helpers of :mod:`.schema`).
"""

from __future__ import annotations

import asyncio
import collections.abc
import concurrent.futures
import dataclasses
import enum
import inspect
import json
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._exceptions import ToolError
from .schema import (
    ARRAY_ORIGINS,
    KEY_QUALIFIERS,
    OBJECT_ORIGINS,
    Unsupported,
    class_hints,
    short_repr,
    to_json,
    type_hints,
)

__all__ = ["ToolRun", "run_tool", "run_tool_calls"]


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
    return ToolRun(result=result, content=_content(result), error=None, duration=time.perf_counter() - start)


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


def _call_arguments(func: Callable[..., Any], name: str, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
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
                    f"{exc.pos}): {short_repr(text, 200)}. Send the arguments as one JSON object, "
                    'e.g. {"city": "Paris"}.'
                ) from None
    else:
        args = arguments
    if not isinstance(args, Mapping):
        raise _BadCall(
            f"The arguments for {name!r} must be a JSON object of named parameters, "
            f"not {type(args).__name__} {short_repr(args)}."
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
    missing = [p.name for p in named.values() if p.default is inspect.Parameter.empty and p.name not in args]
    unexpected = [] if accepts_extra else [k for k in args if k not in named]
    if missing or unexpected:
        problems = []
        if missing:
            problems.append("missing required " + ", ".join(repr(m) for m in missing))
        if unexpected:
            problems.append("unexpected " + ", ".join(repr(u) for u in unexpected))
        takes = ", ".join(p if named[p].default is inspect.Parameter.empty else f"{p} (optional)" for p in named)
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
        return type_hints(func, getattr(func, "__name__", "?"))
    except ToolError:
        return {}


def _convert(value: Any, tp: Any) -> Any:
    """Give ``value`` the Python type its hint names where JSON cannot carry it.

    Only forms JSON has no way to express are converted (Enum members, dataclass
    instances, tuples and sets); scalars stay exactly as the model sent them.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated or getattr(origin, "_name", None) in KEY_QUALIFIERS:
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
            raise _BadCall(f"{json.dumps(value, default=repr)} is not one of the allowed values: {allowed}.") from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(value, Mapping):
        try:
            hints = class_hints(tp)
        except Unsupported:
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
        if origin in ARRAY_ORIGINS and args:
            items = [_convert(v, args[0]) for v in value]
            if origin in (set, frozenset, collections.abc.Set, collections.abc.MutableSet):
                return (frozenset if origin is frozenset else set)(items)
            return items
        if tp in (set, frozenset):
            return tp(value)
    if isinstance(value, dict) and origin in OBJECT_ORIGINS and len(args) == 2:
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
        return json.dumps(result, ensure_ascii=False, allow_nan=False, default=to_json)
    except (TypeError, ValueError):
        return repr(result)
