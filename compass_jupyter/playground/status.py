"""The panel's status line while a turn runs: who is being waited for, who is writing, and who answered.

A request names the model it asks for; the server may answer with another id
(a dated version such as ``gpt-4o-2024-08-06``, or the local model's), which
the reply carries from its first chunk. :class:`TurnStatus` wraps each
model's observer, so the line moves from "Waiting for gpt-4o…" to the model
that answered and what it is doing as soon as a chunk says so, and is frozen
once Stop is pressed or the turn ends (so a late chunk cannot overwrite
"Stopping…").

Observers are called on whichever thread reads the reply (the loop's, or a
worker's when the request cannot run on the loop); the line is set under a
lock and only when its words change.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Sequence

from ..turn import TurnObserver

if TYPE_CHECKING:
    from ..reply import Reply, ToolCall
    from ..stream import Delta

__all__ = ["TurnStatus"]

_WAITING, _CONNECTED, _REASONING, _WRITING, _TOOLS = "waiting", "connected", "reasoning", "writing", "tools"


class TurnStatus:
    """The status line of one turn asking ``models``; ``show(text)`` puts it in the panel."""

    def __init__(self, models: Sequence[str], show: Callable[[str], None]) -> None:
        self._show = show
        self._lock = threading.Lock()
        self._frozen = False
        self._states: dict[str, tuple[str, str]] = {m: (_WAITING, m) for m in models}  # asked -> (state, answered)
        self._shown = ""

    def watch(self, model: str, observer: TurnObserver) -> TurnObserver:
        """``observer`` for ``model``'s reply, telling this status line what arrives."""
        return _Watching(self, model, observer)

    def text(self) -> str:
        """The words of the line now."""
        with self._lock:
            return self._text()

    def show(self) -> None:
        """Put the current words in the panel (the turn has started)."""
        with self._lock:
            self._update()

    def freeze(self) -> None:
        """Change the line no more (Stop was pressed, or the turn ended)."""
        with self._lock:
            self._frozen = True

    def saw(self, model: str, delta: Delta) -> None:
        """A chunk of ``model``'s reply arrived."""
        reply = delta.reply
        if delta.text or delta.transcript or delta.tool_call is not None or delta.audio:
            state = _WRITING
        elif delta.reasoning:
            state = _REASONING
        else:
            state = _CONNECTED
        self._set(model, state, reply)

    def tools(self, model: str, reply: Reply) -> None:
        """``model`` asked for tool calls, which are running."""
        self._set(model, _TOOLS, reply)

    def _set(self, model: str, state: str, reply: Reply) -> None:
        with self._lock:
            old_state, answered = self._states.get(model, (_WAITING, model))
            if old_state == _WRITING and state in (_CONNECTED, _REASONING):
                state = _WRITING  # a usage or finish chunk after the text: still the same reply
            self._states[model] = (state, reply.model or answered)
            self._update()

    def _update(self) -> None:
        if self._frozen:
            return
        text = self._text()
        if text != self._shown:
            self._shown = text
            self._show(text)

    def _text(self) -> str:
        if len(self._states) == 1:
            ((asked, (state, answered)),) = self._states.items()
            return _single(state, answered)
        parts = [f"{answered}: {_SHORT[state]}" for state, answered in self._states.values()]
        return " · ".join(parts) + "…"


_SHORT = {
    _WAITING: "waiting",
    _CONNECTED: "answered, no words yet",
    _REASONING: "reasoning",
    _WRITING: "writing",
    _TOOLS: "running tools",
}


def _single(state: str, model: str) -> str:
    if state == _WAITING:
        return f"Waiting for {model}…"
    if state == _CONNECTED:
        return f"{model} answered; waiting for its first words…"
    if state == _REASONING:
        return f"{model} is reasoning…"
    if state == _TOOLS:
        return f"Running the tools {model} called…"
    return f"{model} is writing…"


class _Watching(TurnObserver):
    """One model's observer, reporting to the status line what it passes on."""

    def __init__(self, status: TurnStatus, model: str, inner: TurnObserver) -> None:
        self._status, self._model, self._inner = status, model, inner

    def on_delta(self, delta: Delta) -> None:
        self._inner.on_delta(delta)
        self._status.saw(self._model, delta)

    def on_tool(self, call: ToolCall) -> None:
        self._inner.on_tool(call)

    def on_round(self, reply: Reply) -> None:
        self._inner.on_round(reply)
        self._status.tools(self._model, reply)

    def cancelled(self) -> bool:
        return self._inner.cancelled()
