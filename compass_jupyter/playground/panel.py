"""The playground panel: its layout and buttons, and what Send, Stop, Reset, Compare and Copy as cell do.

The panel puts together the parameter controls (:mod:`.controls`), the
transcript (:mod:`.transcript`) and compare mode (:mod:`.compare`), and runs
each turn off the kernel's loop (:mod:`.running`), sending through a client that
Stop can close at once. A turn begins by showing the message and a live reply
view in the transcript, keeps the status line current (:mod:`.status`), and
ends by re-enabling the buttons and saying in one notice what went wrong or
what was left out; a turn that added nothing to the conversation (a failure, or
Stop before the first words) puts the message back in the box to resend.

Every box of the right-hand column stretches to the column (``width: auto`` in
a flex column) rather than taking ``width: 100%``: ipywidgets give each widget
a side margin, and 100% plus that margin overflows the cell by a few pixels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import ipywidgets as w

from .. import catalog, snippets
from .._exceptions import CompassError
from ..conversation import Session, default_client
from ..rendering.notices import note_html, notice_html
from ..settings import config
from .compare import MAX_COMPARE, EmbeddedCompareView, compare_work, pick_problem
from .controls import Controls, Param, reply_format
from .running import Running, StoppableClient, run
from .snapshot import snapshot_bundle
from .status import TurnStatus
from .transcript import Transcript, Turn

if TYPE_CHECKING:
    from ..reply import Reply

__all__ = ["Playground"]


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()) or ():
        _close_tree(child)
    widget.close()


# The right-hand column's boxes: stretched by the flex column, so that their side margins stay inside it.
_STRETCH = {"width": "auto", "align_self": "stretch"}


def _session_client(current: Session) -> Any:
    """The client ``current.chat`` would send through, as Session.chat picks it (may start the local model)."""
    if current.client is None:
        from ..local_model import ensure_backend

        ensure_backend()
    return current.client or default_client()


def _button(label: str, icon: str, tooltip: str, style: str = "") -> Any:
    button = w.Button(description=label, icon=icon, tooltip=tooltip, button_style=style, layout=w.Layout(width="auto"))
    button.add_class("compass-pg-" + label.lower().replace(" ", "-"))
    return button


class Playground:
    """A widget app on this kernel's conversation: model, parameters, chat, compare, copy as cell.

    Display it as the last value of a cell (or call :meth:`show`). Besides the
    buttons it can be driven from Python: :meth:`set` a parameter,
    :meth:`fields` lists what would be sent, :meth:`send`, :meth:`stop`,
    :meth:`compare`, :meth:`reset`, :meth:`copy_as_cell`, and :meth:`snapshot`
    gives the static form its saved output shows where the widget cannot be drawn.
    """

    def __init__(self, *, model: str | None = None) -> None:
        self.task: Running | None = None  # the latest request
        self._system_seen = ""
        self._last_message = ""
        self._conversation = Transcript(self._sync_system)
        self.transcript = self._conversation.widget

        default = model or str(config.get("model"))
        ids = list(catalog.MODELS)
        if default not in ids:
            ids.insert(0, default)
        self.model = w.Dropdown(options=ids, value=default, description="Model", layout=w.Layout(width="330px"))
        self.model.add_class("compass-pg-model")
        self.stream = w.Checkbox(value=True, description="stream", indent=False, layout=w.Layout(width="90px"))
        self.stream.tooltip = "Stream the reply as it is written (audio output then needs format pcm16)."
        self._controls = Controls(lambda: self.model.value)
        self.params: dict[str, Param] = self._controls.params

        self.system = w.Textarea(
            placeholder="System prompt: the conversation's one system message",
            rows=3,
            layout=w.Layout(**_STRETCH),
        )
        self.system.add_class("compass-pg-system")
        self.message = w.Textarea(placeholder="Message", rows=4, layout=w.Layout(**_STRETCH))
        self.message.add_class("compass-pg-message")

        self.send_button = _button(
            "Send", "paper-plane", "Send the message as the next turn of the conversation", "primary"
        )
        self.stop_button = _button(
            "Stop", "stop", "Stop the reply now (the connection is closed); what arrived is kept", "warning"
        )
        self.stop_button.disabled = True
        self.reset_button = _button(
            "Reset", "refresh", "Start a new conversation, keeping the system message (%compass reset)"
        )
        self.copy_button = _button(
            "Copy as cell", "copy", "The %%compass cell and the Python call that send this message with these settings"
        )
        self.send_button.on_click(self._guard(lambda _: self.send()))
        self.stop_button.on_click(self._guard(lambda _: self.stop()))
        self.reset_button.on_click(self._guard(lambda _: self.reset()))
        self.copy_button.on_click(self._guard(lambda _: self.copy_as_cell()))

        self.compare_models = w.SelectMultiple(
            options=ids, value=(), rows=6, description="Compare", layout=w.Layout(width="300px")
        )
        self.compare_models.add_class("compass-pg-compare-models")
        self.compare_models.tooltip = f"Pick two to {MAX_COMPARE} models (Ctrl- or Cmd-click), then press Compare."
        self.compare_button = _button(
            "Compare",
            "columns",
            "Send the message to every picked model, side by side; the history keeps the first reply",
        )
        self.compare_button.on_click(self._guard(lambda _: self.compare()))

        self.status = w.HTML(value="", layout=w.Layout(**_STRETCH))
        self.status.add_class("compass-pg-status")
        self.notice = w.HTML(value="", layout=w.Layout(**_STRETCH))
        self.notice.add_class("compass-pg-notice")
        self._build_copy_box()

        settings = w.VBox(
            [
                w.HBox([self.model, self.stream]),
                *self._controls.rows,
                w.HBox([self.compare_models, self.compare_button], layout=w.Layout(align_items="flex-end")),
            ],
            layout=w.Layout(width="440px", min_width="440px", padding="0 16px 0 0"),
        )
        settings.add_class("compass-pg-settings")
        buttons = w.HBox([self.send_button, self.stop_button, self.reset_button, self.copy_button])
        chat = w.VBox(
            [self.system, self.transcript, self.message, buttons, self.status, self.notice, self.copy_box],
            # A zero basis lets the chat take the room beside the settings instead of wrapping below them.
            layout=w.Layout(flex="1 1 0%", min_width="320px"),
        )
        chat.add_class("compass-pg-chat")
        title = w.HTML('<div style="font-size:15px;font-weight:600;margin-bottom:4px">Compass playground</div>')
        self.widget = w.VBox(
            [title, w.HBox([settings, chat], layout=w.Layout(width="100%", flex_flow="row wrap"))],
            layout=w.Layout(width="100%"),
        )
        self.widget.add_class("compass-playground")

        self.model.observe(lambda _: self._refresh(), names="value")
        self._refresh()
        self._sync_system(self._session())
        self._render()

    def _build_copy_box(self) -> None:
        self.before_text = w.Textarea(rows=3, layout=w.Layout(display="none", **_STRETCH))
        self.before_text.add_class("compass-pg-before")
        self.cell_text = w.Textarea(rows=4, layout=w.Layout(**_STRETCH))
        self.cell_text.add_class("compass-pg-cell")
        self.python_text = w.Textarea(rows=8, layout=w.Layout(**_STRETCH))
        self.python_text.add_class("compass-pg-python")
        self._copies: dict[int, str] = {}
        for area in (self.before_text, self.cell_text, self.python_text):
            area.observe(self._keep_copy, names="value")
        self.before_label = w.HTML(layout=w.Layout(display="none"))
        self.copy_box = w.VBox(
            [
                w.HTML(note_html("Select the text and copy it (Ctrl+A, Ctrl+C).")),
                self.before_label,
                self.before_text,
                w.HTML("<b>%%compass cell</b>"),
                self.cell_text,
                w.HTML("<b>Python</b>"),
                self.python_text,
            ],
            layout=w.Layout(display="none", **_STRETCH),
        )
        self.copy_box.add_class("compass-pg-copy")

    # -- the parameters ---------------------------------------------------------------
    def fields(self, models: Sequence[str] | None = None) -> dict[str, Any]:
        """The request fields the ticked, available parameters send (to every one of ``models``)."""
        return self._controls.fields(list(models) if models else [self.model.value])

    def set(self, **values: Any) -> Playground:
        """Set parameters by request field name (or option name) and tick them, e.g. ``set(stop="END")``.

        ``logprobs=True/False`` ticks or unticks logprobs; ``audio=("alloy", "pcm16")``
        (or ``{"voice": ..., "format": ...}``) sets voice and format; ``None`` unticks a
        parameter (it is not sent); ``model=`` picks the model. A parameter the model is
        not documented for stays ticked but disabled, and is sent once a model that
        takes it is chosen.
        """
        for name, value in values.items():
            if name == "model":
                self.model.value = value
            else:
                self._controls.assign(name, value)
        return self

    def _refresh(self) -> None:
        self._controls.refresh()
        model = self.model.value
        info = catalog.get(model)
        if info is None:
            close = catalog.nearest(model)
            hint = f" Nearest known: {', '.join(close)}." if close else ""
            self.model.tooltip = f"{model} is not in the Compass reference, so every parameter is offered.{hint}"
        else:
            self.model.tooltip = (
                f"{info.id} ({info.family}): {info.notes}" if info.notes else f"{info.id} ({info.family})"
            )

    def _system_argument(self) -> str | None:
        # Pass the system only when it differs from the conversation's, so an untouched box changes nothing.
        value = self.system.value
        return value if value != (self._session().system or "") else None

    # -- the buttons ------------------------------------------------------------------
    def send(self) -> Running | None:
        """Send the message box as the next turn (the Send button).

        Returns the running task (inside a kernel) or future (plain Python), or
        None when nothing was sent (a request is running, or the box is empty).
        """
        from ..views.widget import LiveReplyView

        start = self._start_checks()
        if start is None:
            return None
        text, system, stream = start
        model = self.model.value
        fields = self.fields()
        # Embedded: shown inside the transcript, never as an output of its own.
        view = LiveReplyView(fmt=reply_format(fields), embedded=True)
        turn = self._begin(text, view, [model])
        assert turn.status is not None
        observer = turn.status.watch(model, view)  # the view's stop() also ends the turn between chunks
        client = turn.client

        def work() -> Reply:
            return self._session().chat(
                text,
                model=model,
                stream=stream,
                system=system,
                observer=observer,
                client=client,  # the session's own, except that Stop closes its connection at once
                **fields,
            )

        return self._run(turn, work)

    def compare(self) -> Running | None:
        """Send the message box to every model picked in the compare list, side by side (the Compare button)."""
        models = list(self.compare_models.value)
        problem = pick_problem(models)
        if problem:
            self._notify("error", problem)
            return None
        start = self._start_checks()
        if start is None:
            return None
        text, system, stream = start
        fields = self.fields(models)
        left_out = self._controls.left_out(models, self.model.value)
        view = EmbeddedCompareView(models, fmt=reply_format(fields))
        turn = self._begin(text, view, models, compare=True)
        view.status = turn.status
        if left_out:
            turn.notes.append("Not sent in this comparison: " + "; ".join(left_out))
        work = compare_work(
            self._session,
            text,
            models=models,
            stream=stream,
            system=system,
            fields=fields,
            view=view,
            client=turn.client,
        )
        return self._run(turn, work)

    def stop(self) -> None:
        """Stop the running reply now (the Stop button): its connection is closed; what arrived is kept.

        Before the first words arrived nothing is added to the conversation and the
        message goes back to the box. A client that sends through a given
        ``httpx.Client`` cannot be closed from here: its reply stops at the next chunk.
        """
        turn = self._turn
        if turn is None:
            return
        if turn.status is not None:
            turn.status.freeze()  # a chunk read before the connection closed must not bring the old line back
        at_once = turn.client.stop() if turn.client is not None else False
        if not at_once:
            # A client that cannot be closed from here: its reply ends at the next chunk. (Otherwise
            # the flag is left alone, so that the closed request is kept by the store as interrupted,
            # as the closing reports it, rather than cut short by the flag between two chunks.)
            turn.view.stop()
        self.stop_button.disabled = True
        self.status.value = note_html("Stopping…" if at_once else "Stopping at the next chunk…")

    def reset(self) -> None:
        """Start a new conversation, keeping the system message (the Reset button; like ``%compass reset``)."""
        if self._turn is not None:
            self._notify("error", "A reply is still arriving: press Stop (or wait for it), then Reset.")
            return
        self._notify(None)
        self._session().reset(keep_system=True)
        self._render()

    def copy_as_cell(self) -> tuple[str, str]:
        """Show (and return) the ``%%compass`` cell and the Python code that send this message with these settings.

        The message is the one in the box, or the last one sent when the box is empty.
        """
        message = self.message.value or self._last_message
        model, fields, system, stream = self.model.value, self.fields(), self.system.value or None, self.stream.value
        cells = snippets.magic_cells(model, fields, system, message, stream=stream)
        python = snippets.python_snippet(model, fields, system, message, stream=stream)
        before = cells[0] if len(cells) > 1 else ""
        self._show_copy(self.before_text, before)
        self.before_text.layout.display = "" if before else "none"
        self.before_label.layout.display = "" if before else "none"
        self.before_label.value = (
            "<b>Python cell to run first</b> (the system message has line breaks, which the option line cannot hold)"
            if before
            else ""
        )
        self._show_copy(self.cell_text, cells[-1])
        self._show_copy(self.python_text, python)
        self.copy_box.layout.display = ""
        return cells[-1], python

    def _show_copy(self, area: Any, text: str) -> None:
        self._copies[id(area)] = text
        area.rows = min(14, max(2, text.count("\n") + 1))
        area.value = text

    def _keep_copy(self, change: Any) -> None:
        # Read-only without JavaScript: an edit is put back at once.
        wanted = self._copies.get(id(change["owner"]))
        if wanted is not None and change["new"] != wanted:
            change["owner"].value = wanted

    # -- running a turn ---------------------------------------------------------------
    @property
    def _turn(self) -> Turn | None:
        return self._conversation.turn

    def _start_checks(self) -> tuple[str, str | None, bool] | None:
        if self._conversation.closed:
            return None
        if self._turn is not None:
            self._notify("error", "A reply is still arriving: wait for it or press Stop before sending again.")
            return None
        text = self.message.value
        if not text.strip():
            self._notify("error", "The message box is empty: type a message, then press Send.")
            return None
        return text, self._system_argument(), bool(self.stream.value)

    def _begin(self, text: str, view: Any, models: list[str], *, compare: bool = False) -> Turn:
        self._notify(None)
        turn = self._conversation.new_turn(text, view, compare=compare)
        turn.client = StoppableClient(lambda: _session_client(self._session()))
        turn.status = TurnStatus(models, self._show_status)
        self._last_message = text
        self.message.value = ""
        self._set_busy(True, "")
        turn.status.show()
        self._render()
        return turn

    def _show_status(self, text: str) -> None:
        self.status.value = note_html(text) if text else ""

    def _run(self, turn: Turn, work: Callable[[], Any]) -> Running:
        self.task = run(work, lambda result, error: self._finish(turn, result, error))
        loop = getattr(self.task, "get_loop", None)
        if loop is not None:
            self._conversation.loop = loop()  # session changes from the worker thread are shown from here
        return self.task

    def _finish(self, turn: Turn, result: Any, error: BaseException | None) -> None:
        self._render()  # binds the turn's messages to its widgets while the turn is still current
        try:
            if error is not None:
                self._failed(turn, error)
            elif result is not None:
                self._done(turn, result)
        except Exception as exc:  # a view that cannot render must not leave the panel stuck
            self._notify("error", f"The reply could not be shown ({type(exc).__name__}: {exc}).")
        finally:
            if turn.status is not None:
                turn.status.freeze()
            if self._conversation.turn is turn:
                self._conversation.turn = None
            self._set_busy(False, "")
            self._render()

    def _done(self, turn: Turn, result: Any) -> None:
        replies = result if isinstance(result, list) else [result]
        turn.view.finish(result)  # the view shows the replies' warnings itself
        notes = list(turn.notes)
        if any(r.interrupted for r in replies):
            if turn.bound:
                stopped = (
                    "Stopped: the partial reply is kept and marked interrupted; it is not sent with later messages."
                )
            else:
                # Nothing reached the conversation: the message goes back to the box, as after a failure.
                stopped = "Stopped before the first words arrived: nothing was added to the conversation, and the message is back in the box."
                if not self.message.value:
                    self.message.value = turn.text
            notes.insert(0, stopped)
        self._notify("warning" if notes else None, " ".join(notes))

    def _failed(self, turn: Turn, error: BaseException) -> None:
        if turn.compare:
            turn.view.fail(error)
        else:
            turn.view.fail(getattr(error, "reply", None), error)
        if isinstance(error, CompassError):
            message = str(error)
        else:
            message = f"Unexpected {type(error).__name__}: {error}. Nothing else was changed; try again."
        self._notify("error", message)
        self._render()
        if not turn.bound:
            # Nothing reached the conversation: give the message back to fix and send again.
            if not self.message.value:
                self.message.value = turn.text

    def _set_busy(self, busy: bool, status: str) -> None:
        for button in (self.send_button, self.compare_button, self.reset_button):
            button.disabled = busy
        self.stop_button.disabled = not busy
        self.status.value = note_html(status) if status else ""

    def _notify(self, kind: str | None, message: str = "") -> None:
        if kind is None or not message:
            self.notice.value = ""
            return
        self.notice.value = notice_html(kind, message, css_class=f"compass-pg-{kind}")

    def _guard(self, handler: Callable[[Any], Any]) -> Callable[[Any], None]:
        # An exception in a widget callback lands in the browser's log, where nobody looks.
        def call(button: Any) -> None:
            try:
                handler(button)
            except Exception as exc:
                message = str(exc) if isinstance(exc, CompassError) else f"Unexpected {type(exc).__name__}: {exc}."
                self._notify("error", message)

        return call

    # -- the conversation -------------------------------------------------------------
    def _session(self) -> Session:
        return self._conversation.session()

    def _render(self) -> None:
        self._conversation.render()

    def _sync_system(self, current: Session) -> None:
        value = current.system or ""
        if self.system.value == self._system_seen:  # not edited since the last sync: follow the conversation
            self.system.value = value
        self._system_seen = value

    # -- display ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, str]:
        """The playground as static ``text/html`` and ``text/plain``: settings and conversation as they are now.

        Its saved output shows this where the widget cannot be drawn (a notebook
        read without a kernel, on GitHub, in nbconvert).
        """
        try:
            fields = self.fields()
        except CompassError:
            fields = {}  # a value the request would refuse: the send boxes say which
        current = self._session()
        return snapshot_bundle(
            model=str(self.model.value),
            stream=bool(self.stream.value),
            fields=fields,
            compare=list(self.compare_models.value),
            system=self.system.value or current.system,
            messages=list(current.messages),
            transcript=current.transcript(),
            draft=self.message.value,
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # The widget view where a live kernel can draw it; the snapshot for every other reader.
        bundle: dict[str, Any] = dict(self.snapshot())
        bundle.update(
            {
                k: v
                for k, v in (self.widget._repr_mimebundle_(include=include, exclude=exclude) or {}).items()
                if k != "text/plain"
            }
        )
        return bundle

    def show(self) -> Playground:
        """Display the playground in the current cell's output."""
        from IPython.display import display

        display(self)
        return self

    def close(self) -> None:
        """Remove the playground's widgets; the conversation stays."""
        if self._turn is not None:
            self.stop()
        self._conversation.closed = True
        _close_tree(self.widget)

    def __repr__(self) -> str:
        return f"<Playground model={self.model.value!r} fields={self.fields()!r}>"
