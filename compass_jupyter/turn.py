"""One turn's call controls, kept apart from its request fields, and the observer of a turn.

``cj.chat(text, model=..., temperature=..., tools=[...])`` stays flat: the
keyword arguments are split in one place, :meth:`TurnControls.split`. The names
of :class:`TurnControls`' fields are the controls (how the turn is sent: model,
history, tools to run, ...); every other name is a request field, left to the
request's validation (which refuses an unknown name and suggests the nearest
documented one). The magics' ``--param`` refuses the same names, from
:func:`not_request_fields`.

A :class:`TurnObserver` watches one turn: ``on_delta`` for each chunk,
``on_round``/``on_tool`` in a tool loop, and ``cancelled()``, which the engine
asks between chunks: when it returns True the connection is closed and the
partial reply is kept (and recorded as interrupted), as an interrupt does. A
:class:`CompareObserver` watches compare mode: one TurnObserver per model
(called on worker threads) and ``poll()`` on the thread that called
``Session.compare``. Both are protocols with working defaults: subclass one and
override only what you need, or implement every method yourself.

This module imports neither httpx nor IPython (the magics import it at load).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, TypeVar, runtime_checkable

from ._exceptions import ValidationError

if TYPE_CHECKING:
    from .client import Client
    from .reply import Reply, ToolCall
    from .stream import Delta, Observer

__all__ = [
    "Cancelled",
    "CompareControls",
    "CompareObserver",
    "TurnControls",
    "TurnObserver",
    "not_request_fields",
]

_Controls = TypeVar("_Controls", bound="TurnControls")


class Cancelled(Exception):
    """Raised inside a stream to stop it (an observer's ``cancelled()``, a Stop button); carries the partial reply."""

    def __init__(self, reply: Reply | None = None) -> None:
        super().__init__("cancelled")
        self.reply = reply


def _set_with(how: str | None) -> dict[str, str | None]:
    # How the magic sets a control, for --param's refusal; None: --param may set it (it is also a request field).
    return {"set_with": how}


# Arguments of the client's own calls that are neither controls nor request fields: passed on
# as fields they would collide with the client's parameters (a bare TypeError), so they are
# refused where keyword arguments are split, with what to do instead.
_CLIENT_ARGUMENTS = {
    "messages": (
        "messages is not a request field here: the text is the user message and the session holds the "
        "history (history=False sends the text alone; Client.chat(messages) sends a list you build)."
    ),
    "on_delta": (
        "on_delta is not a request field: to watch a turn, pass observer=... "
        "(a compass_jupyter.turn.TurnObserver, whose on_delta sees every chunk)."
    ),
}


@dataclass(frozen=True, kw_only=True)
class TurnControls:
    """How one turn is sent, apart from the request fields (temperature, logprobs, ...).

    ``tools``: Python callables (run by the tool loop) or tool dicts; it becomes the
    request's ``tools`` field. ``extra_body``: fields the reference does not list,
    sent unchecked.
    """

    model: str | None = field(default=None, metadata=_set_with("-m/--model"))
    stream: bool = field(default=True, metadata=_set_with("--stream/--no-stream"))
    system: str | None = field(default=None, metadata=_set_with("-s/--system"))
    history: bool = field(default=True, metadata=_set_with("--no-history"))
    new: bool = field(default=False, metadata=_set_with("--new"))
    tools: Iterable[Callable[..., Any] | Mapping[str, Any]] | None = field(default=None, metadata=_set_with(None))
    images: list[str | Path] | None = field(default=None, metadata=_set_with("--image"))
    audio_in: str | Path | None = field(default=None, metadata=_set_with("--audio"))
    name: str | None = field(default=None, metadata=_set_with("--name"))
    client: Client | None = field(default=None, metadata=_set_with("a cj.Client with cj.chat(..., client=...)"))
    extra_body: Mapping[str, Any] | None = field(default=None, metadata=_set_with("cj.chat(..., extra_body={...})"))
    cache: str | None = field(default=None, metadata=_set_with("--cache"))

    @classmethod
    def names(cls) -> frozenset[str]:
        """The keyword arguments that are controls (this class's fields)."""
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def split(cls: type[_Controls], kwargs: Mapping[str, Any]) -> tuple[_Controls, dict[str, Any]]:
        """``(controls, request fields)`` from flat keyword arguments: the one place they are told apart."""
        names = cls.names()
        clash = sorted(_CLIENT_ARGUMENTS.keys() & kwargs.keys())
        if clash:
            raise ValidationError(_CLIENT_ARGUMENTS[clash[0]])
        controls = cls(**{k: v for k, v in kwargs.items() if k in names})
        return controls, {k: v for k, v in kwargs.items() if k not in names}


@dataclass(frozen=True, kw_only=True)
class CompareControls(TurnControls):
    """Compare mode's controls: the models, whose reply the history keeps, how often views are polled."""

    models: list[str] = field(default_factory=list, metadata=_set_with("-m a,b"))
    pick: int = field(default=0, metadata=_set_with("--pick"))
    poll_interval: float = field(default=0.04, metadata=_set_with("the Python API"))


def not_request_fields() -> dict[str, str]:
    """Names a request field cannot have, each with what sets it instead (for ``%%compass --param``)."""
    names = {f.name: f.metadata["set_with"] for f in fields(CompareControls) if f.metadata.get("set_with")}
    names["messages"] = "the cell body (and the session history)"
    names["observer"] = "the Python API"
    return names


@runtime_checkable
class TurnObserver(Protocol):
    """Watches one turn. Subclass it for the no-op defaults, or implement the four methods.

    Called on the thread that sends the request (a worker thread in compare mode).
    """

    def on_delta(self, delta: Delta) -> None:
        """One chunk arrived; ``delta.reply`` is the reply so far."""
        return None

    def on_tool(self, call: ToolCall) -> None:
        """A tool the model called has run: ``call.result`` (or ``call.error``) is set."""
        return None

    def on_round(self, reply: Reply) -> None:
        """The model answered with tool calls, which are about to run."""
        return None

    def cancelled(self) -> bool:
        """True to stop the turn at the next chunk (the partial reply is kept); asked between chunks."""
        return False


@runtime_checkable
class CompareObserver(Protocol):
    """Watches compare mode: one :class:`TurnObserver` per model, and ``poll()`` while the requests run."""

    def observer(self, model: str) -> TurnObserver:
        """The observer of ``model``'s reply (called on a worker thread)."""
        return _Silent()

    def poll(self) -> None:
        """Called every ``poll_interval`` seconds on the thread that called ``Session.compare``."""
        return None

    def cancelled(self) -> bool:
        """True to stop every model's reply at its next chunk (partial replies are kept)."""
        return False


class _Silent(TurnObserver):
    """The observer of a turn nobody watches."""


SILENT: TurnObserver = _Silent()


class _SilentCompare(CompareObserver):
    """The observer of a comparison nobody watches."""


SILENT_COMPARE: CompareObserver = _SilentCompare()


def watched(observer: TurnObserver, *, stop: Callable[[], bool] | None = None) -> Observer:
    """The client's ``on_delta`` for ``observer``: raises :class:`Cancelled` once it (or ``stop``) asks to stop."""

    def observe(delta: Delta) -> None:
        if observer.cancelled() or (stop is not None and stop()):
            raise Cancelled(delta.reply)
        observer.on_delta(delta)

    return observe
