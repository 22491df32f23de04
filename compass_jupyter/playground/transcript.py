"""The playground's transcript: the kernel session's messages as widgets, and the turn that is running.

The transcript follows :func:`~compass_jupyter.conversation.session`: a message
said in a ``%%compass`` cell or with ``cj.chat`` appears here, because a
listener on the session rebuilds the transcript when it changes. Widgets are
kept per message, so a rebuild re-sends nothing that did not change.

A running turn is shown with its own widgets (the live reply view) until its
messages reach the session; then those messages are bound to the turn's
widgets, so the live view stays where it is instead of being replaced.

Session listeners are called on whichever thread changed the session (a
request's worker thread too); the rebuild is moved to the loop's thread, which
owns the display.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import ipywidgets as w

from ..conversation import Session, session
from ..rendering.markup import MUTED
from ..rendering.transcript import message_html

if TYPE_CHECKING:
    from .running import StoppableClient
    from .status import TurnStatus

__all__ = ["Transcript", "Turn"]


@dataclass
class Turn:
    """A request the playground is running, and the widgets that show it."""

    text: str
    view: Any
    user_widget: Any
    reply_widget: Any
    known: list[dict[str, Any]]  # the messages before the turn (kept alive, so their ids stay unique)
    compare: bool = False
    bound: bool = False
    notes: list[str] = field(default_factory=list)
    client: StoppableClient | None = None  # what the turn sends through
    status: TurnStatus | None = None  # the panel's status line while the turn runs


class Transcript:
    """The ``widget`` that shows the session's conversation, kept in step with it."""

    def __init__(self, on_change: Callable[[Session], None]) -> None:
        self._on_change = on_change  # told first when the session changes (the panel syncs its system box)
        self.turn: Turn | None = None
        self.closed = False
        self.loop: asyncio.AbstractEventLoop | None = None
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        self._thread = threading.current_thread()  # the thread that owns the display
        self._lock = threading.RLock()
        self._cache: dict[int, tuple[dict[str, Any], Any, bool]] = {}  # id(message) -> (message, widget, ours)
        self._subscribed: Session | None = None
        self.widget = w.VBox([], layout=w.Layout(width="100%"))
        self.widget.add_class("compass-pg-transcript")
        self._empty = w.HTML(
            value=(
                f'<div style="{MUTED};font-style:italic;padding:6px 0">No messages yet. Type one below and '
                "press Send; %%compass cells and cj.chat continue the same conversation.</div>"
            )
        )

    def session(self) -> Session:
        """The kernel's current session, listened to (a reset or a new session is followed)."""
        current = session()
        if current is not self._subscribed:
            self._subscribed = current
            # Weakly: the session outlives a playground whose cell was cleared.
            ref = weakref.ref(self)

            def listener(changed: Session) -> None:
                transcript = ref()
                if transcript is not None and not transcript.closed and changed is transcript._subscribed:
                    transcript._changed()

            current.on_change(listener)
        return current

    def new_turn(self, text: str, view: Any, *, compare: bool = False) -> Turn:
        """A turn sending ``text``, its reply shown in ``view``; it becomes the running turn."""
        user = w.HTMLMath(value=message_html({"role": "user", "content": text}))
        self.turn = Turn(
            text=text,
            view=view,
            user_widget=user,
            reply_widget=w.VBox(
                [view.widget],
                # Stretched, not 100% wide; the 2px on the right hold the side margin of the live
                # view's full-width lines, which would otherwise stick out of the cell.
                layout=w.Layout(
                    border_left="3px solid #4c78a8",
                    padding="0 2px 0 10px",
                    margin="6px 0",
                    width="auto",
                    align_self="stretch",
                ),
            ),
            known=list(self.session().messages),
            compare=compare,
        )
        return self.turn

    def _changed(self) -> None:
        if threading.current_thread() is self._thread or self.loop is None or self.loop.is_closed():
            self._changed_here()
            return
        self.loop.call_soon_threadsafe(self._changed_here)

    def _changed_here(self) -> None:
        if not self.closed:
            self._on_change(self.session())
            self.render()

    def _bind(self, turn: Turn, messages: list[dict[str, Any]]) -> None:
        """Once the turn's messages are in the conversation, show them with the turn's own widgets."""
        known = {id(m) for m in turn.known}
        new = [m for m in messages if id(m) not in known]
        for i, message in enumerate(new):
            if message.get("role") == "user" and message.get("content") == turn.text:
                rest = new[i + 1 :]
                replies = [m for m in rest if m.get("role") == "assistant"]
                if not replies:
                    return
                self._cache[id(message)] = (message, turn.user_widget, True)
                for other in rest:
                    # Tool rounds of the turn are part of its view.
                    shown = turn.reply_widget if other is replies[-1] else None
                    self._cache[id(other)] = (other, shown, True)
                    if other is replies[-1]:
                        break
                turn.bound = True
                return

    def render(self) -> None:
        """Rebuild the transcript from the conversation (cached widgets are reused)."""
        if self.closed:
            return
        with self._lock:
            messages = list(self.session().messages)
            turn = self.turn
            if turn is not None and not turn.bound:
                self._bind(turn, messages)
            children: list[Any] = []
            keep: dict[int, tuple[dict[str, Any], Any, bool]] = {}
            for message in messages:
                entry = self._cache.get(id(message))
                if entry is None or entry[0] is not message:
                    entry = (message, w.HTMLMath(value=message_html(message)), False)
                keep[id(message)] = entry
                if entry[1] is not None:
                    children.append(entry[1])
            for key, (_, widget, ours) in self._cache.items():
                if key not in keep and widget is not None and not ours:
                    widget.close()
            self._cache = keep
            if turn is not None and not turn.bound:
                children += [turn.user_widget, turn.reply_widget]
            if not children:
                children = [self._empty]
            if tuple(children) != tuple(self.widget.children):
                self.widget.children = tuple(children)
