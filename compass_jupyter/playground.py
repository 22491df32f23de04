"""The widget playground: pick a model, set parameters, chat, compare, copy the settings as a cell.

``cj.Playground()`` as the last value of a cell shows it. It talks through the
kernel's own :func:`~compass_jupyter.conversation.session`, so a conversation
started with ``%%compass`` or ``cj.chat`` continues here and the other way round,
and ``%compass history`` lists what was said here.

Why it is built the way it is:

- Every parameter has a "send" box. Touching the value ticks it; only ticked
  parameters are sent, so the server's defaults apply to everything else.
- A parameter the catalog documents only for other models is disabled for the
  chosen model (its tooltip says why) and is not sent even if ticked.
- Send must not block the kernel: a widget callback only runs while the kernel is
  idle, and a Stop button must still work while a reply streams. So Send schedules
  a task on the kernel's running asyncio loop, and the task runs the blocking
  request in a worker thread. Stop sets the request's cancel event; the stream
  ends at its next chunk and the partial reply is kept, marked interrupted.
- Replies render with the same live view as ``%%compass``. Widget values set
  from the worker thread reach the front end (ipykernel's iopub is thread-safe);
  rebuilding the transcript is moved to the loop's thread.
- Without a running loop (plain Python, a script) the request runs in a thread
  and :meth:`Playground.send` returns a ``concurrent.futures.Future``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from . import catalog, snippets
from ._exceptions import CompassError, ValidationError
from .settings import config
from .conversation import Cancelled, Session, session
from .fields import REASONING_EFFORTS
from .rendering.markup import MUTED, escape
from .rendering.notices import note_html, notice_html
from .rendering.transcript import message_html

if TYPE_CHECKING:
    from .reply import Reply
    from .stream import Delta, Observer

__all__ = ["Playground", "AUDIO_OUTPUT_MODELS", "unsupported_reason"]

AUDIO_OUTPUT_MODELS: tuple[str, ...] = tuple(m for m, info in catalog.MODELS.items() if info.audio_output)
RESPONSE_FORMAT_TYPES = ("text", "json_object")
MAX_COMPARE = 4

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _worker_pool() -> concurrent.futures.ThreadPoolExecutor:
    # Own named threads, so a stuck request is recognisable in a thread dump.
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="compass-playground")
        return _executor


def unsupported_reason(field: str, model: str) -> str | None:
    """Why the playground does not send ``field`` to ``model`` (None: it does).

    ``field`` is a request field, or ``"audio"`` for voice and audio format. An
    unknown model gets None: the catalog cannot judge what it accepts.
    """
    info = catalog.get(model)
    if info is None:
        return None
    if field == "audio":
        if info.audio_output:
            return None
        return (
            f"Voice and audio format apply only to models with audio output "
            f"({', '.join(AUDIO_OUTPUT_MODELS)}); the playground does not send them to {info.id}."
        )
    allowed = catalog.RESERVED_PARAMS.get(field)
    if allowed is None or info.id in allowed:
        return None
    problems = catalog.reserved_param_problems(info.id, {field: True})
    head = problems[0].split("; ")[0] if problems else f"{field} is not documented for {info.id}"
    return f"{head}; the playground does not send it to {info.id}."


def _widgets() -> Any:
    import ipywidgets

    return ipywidgets


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()) or ():
        _close_tree(child)
    widget.close()


@dataclass
class _Param:
    """One request field: its "send" box, the inputs for its value, and what it adds to the request."""

    name: str
    label: str
    send: Any
    inputs: list[Any]
    value: Callable[[], dict[str, Any]]
    help: str
    catalog_field: str | None = None  # checked against the catalog for the chosen model
    caption: Any = None
    row: Any = None

    @property
    def input(self) -> Any:
        return self.inputs[0] if self.inputs else self.send

    def set_available(self, reason: str | None) -> None:
        tip = reason or self.help
        for widget in [self.send, *self.inputs]:
            widget.disabled = reason is not None
            widget.tooltip = tip
        # Not on the row: a Box view reads a "description" it does not have when given a tooltip.
        # A checkbox with a description shows that as its title, and a slider puts its tooltip on a
        # hidden label, so the name is an HTML span whose title is ours.
        dim = ";opacity:.5" if reason else ""
        self.caption.value = f'<span title="{escape(tip)}" style="cursor:help{dim}">{escape(self.label)}</span>'


@dataclass
class _Turn:
    """A request the playground is running, and the widgets that show it."""

    text: str
    view: Any
    cancel: threading.Event
    user_widget: Any
    reply_widget: Any
    known: list[dict[str, Any]]  # the messages before the turn (kept alive, so their ids stay unique)
    compare: bool = False
    bound: bool = False
    notes: list[str] = field(default_factory=list)


class Playground:
    """A widget app on this kernel's conversation: model, parameters, chat, compare, copy as cell.

    Display it as the last value of a cell (or call :meth:`show`). Besides the
    buttons it can be driven from Python: :meth:`set` a parameter,
    :meth:`fields` lists what would be sent, :meth:`send`, :meth:`stop`,
    :meth:`compare`, :meth:`reset`, :meth:`copy_as_cell`.
    """

    def __init__(self, *, model: str | None = None) -> None:
        w = _widgets()
        self._closed = False
        self._turn: _Turn | None = None
        self.task: asyncio.Task[Any] | concurrent.futures.Future[Any] | None = None  # the latest request
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.current_thread()  # the thread that owns the display
        self._render_lock = threading.RLock()
        self._cache: dict[int, tuple[dict[str, Any], Any, bool]] = {}  # id(message) -> (message, widget, ours)
        self._subscribed: Session | None = None
        self._system_seen = ""
        self._last_message = ""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass

        default = model or str(config.get("model"))
        ids = list(catalog.MODELS)
        if default not in ids:
            ids.insert(0, default)
        self.model = w.Dropdown(options=ids, value=default, description="Model", layout=w.Layout(width="330px"))
        self.model.add_class("compass-pg-model")
        self.stream = w.Checkbox(value=True, description="stream", indent=False, layout=w.Layout(width="90px"))
        self.stream.tooltip = "Stream the reply as it is written (audio output then needs format pcm16)."
        self.params: dict[str, _Param] = {}
        self._build_params()

        self.system = w.Textarea(
            placeholder="System prompt: the conversation's one system message",
            rows=3,
            layout=w.Layout(width="100%"),
        )
        self.system.add_class("compass-pg-system")
        self.message = w.Textarea(placeholder="Message", rows=4, layout=w.Layout(width="100%"))
        self.message.add_class("compass-pg-message")

        button = self._button
        self.send_button = button("Send", "paper-plane", "Send the message as the next turn of the conversation", "primary")
        self.stop_button = button("Stop", "stop", "Stop the reply at its next chunk; the partial reply is kept", "warning")
        self.stop_button.disabled = True
        self.reset_button = button("Reset", "refresh", "Start a new conversation, keeping the system message (%compass reset)")
        self.copy_button = button("Copy as cell", "copy", "The %%compass cell and the Python call that send this message with these settings")
        self.send_button.on_click(self._guard(lambda _: self.send()))
        self.stop_button.on_click(self._guard(lambda _: self.stop()))
        self.reset_button.on_click(self._guard(lambda _: self.reset()))
        self.copy_button.on_click(self._guard(lambda _: self.copy_as_cell()))

        self.compare_models = w.SelectMultiple(
            options=ids, value=(), rows=6, description="Compare", layout=w.Layout(width="300px")
        )
        self.compare_models.add_class("compass-pg-compare-models")
        self.compare_models.tooltip = f"Pick two to {MAX_COMPARE} models (Ctrl- or Cmd-click), then press Compare."
        self.compare_button = button(
            "Compare", "columns", "Send the message to every picked model, side by side; the history keeps the first reply"
        )
        self.compare_button.on_click(self._guard(lambda _: self.compare()))

        self.status = w.HTML(value="", layout=w.Layout(width="100%"))
        self.status.add_class("compass-pg-status")
        self.notice = w.HTML(value="", layout=w.Layout(width="100%"))
        self.notice.add_class("compass-pg-notice")
        self.transcript = w.VBox([], layout=w.Layout(width="100%"))
        self.transcript.add_class("compass-pg-transcript")
        self._empty = w.HTML(
            value=(
                f'<div style="{MUTED};font-style:italic;padding:6px 0">No messages yet. Type one below and '
                "press Send; %%compass cells and cj.chat continue the same conversation.</div>"
            )
        )

        self.before_text = w.Textarea(rows=3, layout=w.Layout(width="100%", display="none"))
        self.before_text.add_class("compass-pg-before")
        self.cell_text = w.Textarea(rows=4, layout=w.Layout(width="100%"))
        self.cell_text.add_class("compass-pg-cell")
        self.python_text = w.Textarea(rows=8, layout=w.Layout(width="100%"))
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
            layout=w.Layout(display="none", width="100%"),
        )
        self.copy_box.add_class("compass-pg-copy")

        settings = w.VBox(
            [
                w.HBox([self.model, self.stream]),
                *[p.row for p in self.params.values()],
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
        title = w.HTML(
            '<div style="font-size:15px;font-weight:600;margin-bottom:4px">Compass playground</div>'
        )
        self.widget = w.VBox(
            [title, w.HBox([settings, chat], layout=w.Layout(width="100%", flex_flow="row wrap"))],
            layout=w.Layout(width="100%"),
        )
        self.widget.add_class("compass-playground")

        self.model.observe(lambda _: self._refresh(), names="value")
        self._refresh()
        self._sync_system(self._session())
        self._render()

    # -- building ------------------------------------------------------------------
    @staticmethod
    def _button(label: str, icon: str, tooltip: str, style: str = "") -> Any:
        w = _widgets()
        button = w.Button(description=label, icon=icon, tooltip=tooltip, button_style=style, layout=w.Layout(width="auto"))
        button.add_class("compass-pg-" + label.lower().replace(" ", "-"))
        return button

    def _build_params(self) -> None:
        w = _widgets()
        box = {"width": "240px"}

        def slider(low: float, high: float, step: float, value: float) -> Any:
            return w.FloatSlider(
                value=value,
                min=low,
                max=high,
                step=step,
                readout_format=".2f",
                continuous_update=False,
                layout=w.Layout(**box),
            )

        def number(name: str, widget: Any) -> Callable[[], dict[str, Any]]:
            # Slider arithmetic leaves 0.30000000000000004 behind; nobody means that.
            return lambda: {name: round(float(widget.value), 4)}

        temperature = slider(0, 2, 0.05, 1.0)
        top_p = slider(0, 1, 0.01, 1.0)
        presence = slider(-2, 2, 0.1, 0.0)
        frequency = slider(-2, 2, 0.1, 0.0)
        max_tokens = w.BoundedIntText(value=256, min=1, max=10_000_000, layout=w.Layout(width="120px"))
        stop = w.Textarea(placeholder="END, \\n\\n", rows=1, layout=w.Layout(**box))
        n = w.IntSlider(value=1, min=1, max=8, continuous_update=False, layout=w.Layout(**box))
        seed = w.IntText(value=0, layout=w.Layout(width="120px"))
        top_logprobs = w.IntSlider(value=5, min=0, max=20, continuous_update=False, layout=w.Layout(**box))
        response_format = w.Dropdown(options=RESPONSE_FORMAT_TYPES, value="json_object", layout=w.Layout(width="140px"))
        effort = w.Dropdown(options=REASONING_EFFORTS, value="medium", layout=w.Layout(width="140px"))
        voice = w.Dropdown(options=catalog.VOICES, value=catalog.VOICES[0], layout=w.Layout(width="110px"))
        audio_format = w.Dropdown(options=catalog.AUDIO_FORMATS, value="pcm16", layout=w.Layout(width="100px"))

        add = self._add_param
        add("temperature", [temperature], number("temperature", temperature), "temperature, 0 to 2: higher is more random")
        add("top_p", [top_p], number("top_p", top_p), "top_p, 0 to 1: nucleus sampling")
        add("max_tokens", [max_tokens], lambda: {"max_tokens": int(max_tokens.value)}, "max_tokens: the longest reply")
        add(
            "presence_penalty",
            [presence],
            number("presence_penalty", presence),
            "presence_penalty, -2 to 2: positive values favour new topics",
            catalog_field="presence_penalty",
        )
        add(
            "frequency_penalty",
            [frequency],
            number("frequency_penalty", frequency),
            "frequency_penalty, -2 to 2: positive values discourage repeating",
        )
        add(
            "stop",
            [stop],
            lambda: self._stop_field(stop.value),
            "stop: up to 4 sequences, separated by commas or newlines; \\n is a newline, \\, a comma",
        )
        add("n", [n], lambda: {"n": int(n.value)}, "n, 1 to 8: how many choices; every choice is shown")
        add(
            "random_seed",
            [seed],
            lambda: {"random_seed": int(seed.value)},
            "random_seed: the same seed asks for the same sampling",
            label="seed",
        )
        add("logprobs", [], lambda: {"logprobs": True}, "logprobs: the probability of each token, shown as a table")
        add(
            "top_logprobs",
            [top_logprobs],
            lambda: {"top_logprobs": int(top_logprobs.value)},
            "top_logprobs, 0 to 20: alternatives listed per token (needs logprobs)",
        )
        add(
            "response_format",
            [response_format],
            lambda: {"response_format": {"type": response_format.value}},
            "response_format: json_object asks for a JSON reply",
            catalog_field="response_format",
        )
        add(
            "reasoning_effort",
            [effort],
            lambda: {"reasoning_effort": effort.value},
            "reasoning_effort: how long a reasoning model thinks",
            catalog_field="reasoning_effort",
        )
        add(
            "audio",
            [voice, audio_format],
            lambda: {"modalities": ["text", "audio"], "audio": {"voice": voice.value, "format": audio_format.value}},
            "A spoken reply in this voice and format (streaming needs pcm16)",
            label="audio out",
            catalog_field="audio",
        )
        self.params["logprobs"].send.observe(lambda _: self._refresh(), names="value")

    def _add_param(
        self,
        name: str,
        inputs: list[Any],
        value: Callable[[], dict[str, Any]],
        help_text: str,
        *,
        label: str | None = None,
        catalog_field: str | None = None,
    ) -> None:
        w = _widgets()
        send = w.Checkbox(value=False, indent=False, layout=w.Layout(width="24px", min_width="24px"))
        send.add_class(f"compass-pg-send-{name}")
        caption = w.HTML(layout=w.Layout(width="126px", min_width="126px"))
        caption.add_class(f"compass-pg-label-{name}")
        param = _Param(
            name=name,
            label=label or name,
            send=send,
            inputs=inputs,
            value=value,
            help=help_text,
            catalog_field=catalog_field,
            caption=caption,
        )
        for widget in inputs:
            widget.add_class(f"compass-pg-{name}")
            widget.observe(self._touched(param), names="value")
        param.row = w.HBox([send, caption, *inputs], layout=w.Layout(align_items="center"))
        self.params[name] = param

    @staticmethod
    def _touched(param: _Param) -> Callable[[Any], None]:
        def tick(change: Any) -> None:
            if not param.send.disabled:
                param.send.value = True

        return tick

    @staticmethod
    def _stop_field(text: str) -> dict[str, Any]:
        stops = snippets.parse_stop(text)
        return {"stop": stops} if stops else {}

    # -- what would be sent ---------------------------------------------------------
    def _reason(self, param: _Param, models: Sequence[str]) -> str | None:
        if param.catalog_field is not None:
            for model in models:
                reason = unsupported_reason(param.catalog_field, model)
                if reason:
                    return reason
        if param.name == "top_logprobs":
            logprobs = self.params["logprobs"]
            if not logprobs.send.value or self._reason(logprobs, models):
                return "top_logprobs needs logprobs: tick logprobs first."
        return None

    def fields(self, models: Sequence[str] | None = None) -> dict[str, Any]:
        """The request fields the ticked, available parameters send (to every one of ``models``)."""
        models = list(models) if models else [self.model.value]
        out: dict[str, Any] = {}
        for param in self.params.values():
            if param.send.value and self._reason(param, models) is None:
                out.update(param.value())
        return out

    def set(self, **values: Any) -> Playground:
        """Set parameters by request field name and tick them, e.g. ``set(temperature=0.3, stop="END")``.

        ``logprobs=True/False`` ticks or unticks logprobs; ``audio=("alloy", "pcm16")``
        (or ``{"voice": ..., "format": ...}``) sets voice and format; ``None`` unticks a
        parameter (it is not sent). A parameter the model is not documented for stays
        ticked but disabled, and is sent once a model that takes it is chosen.
        """
        for name, value in values.items():
            if name == "seed":
                name = "random_seed"
            if name == "model":
                self.model.value = value
                continue
            param = self.params.get(name)
            if param is None:
                raise ValidationError(
                    f"The playground has no parameter {name!r}. Use one of {', '.join(self.params)} (or model)."
                )
            if value is None or (name == "logprobs" and value is False):
                param.send.value = False
                continue
            if name == "audio":
                voice, fmt = (value["voice"], value["format"]) if isinstance(value, Mapping) else value
                param.inputs[0].value, param.inputs[1].value = voice, fmt
            elif name == "response_format":
                param.input.value = value["type"] if isinstance(value, Mapping) else value
            elif name == "logprobs":
                pass  # the box is the value
            elif name == "stop":
                param.input.value = value if isinstance(value, str) else snippets.stop_text(value)
            else:
                param.input.value = value
            param.send.value = True
        return self

    def _refresh(self) -> None:
        model = self.model.value
        for param in self.params.values():
            param.set_available(self._reason(param, [model]))
        info = catalog.get(model)
        if info is None:
            close = catalog.nearest(model)
            hint = f" Nearest known: {', '.join(close)}." if close else ""
            self.model.tooltip = f"{model} is not in the Compass reference, so every parameter is offered.{hint}"
        else:
            self.model.tooltip = f"{info.id} ({info.family}): {info.notes}" if info.notes else f"{info.id} ({info.family})"

    def _system_argument(self) -> str | None:
        # Pass the system only when it differs from the conversation's, so an untouched box changes nothing.
        value = self.system.value
        return value if value != (self._session().system or "") else None

    # -- sending --------------------------------------------------------------------
    def send(self) -> asyncio.Task[Any] | concurrent.futures.Future[Any] | None:
        """Send the message box as the next turn (the Send button).

        Returns the running task (inside a kernel) or future (plain Python), or
        None when nothing was sent (a request is running, or the box is empty).
        """
        from .views.widget import LiveReplyView

        start = self._start_checks()
        if start is None:
            return None
        text, system, stream = start
        model = self.model.value
        fields = self.fields()
        fmt = "json" if (fields.get("response_format") or {}).get("type") == "json_object" else "markdown"
        view = LiveReplyView(fmt=fmt, embedded=True)  # shown inside the transcript, never as an output of its own
        turn = self._begin(text, view, f"Waiting for {model}…")

        def work() -> Reply:
            return self._session().chat(
                text,
                model=model,
                stream=stream,
                system=system,
                cancel=turn.cancel,
                on_delta=view.on_delta,
                on_tool=getattr(view, "on_tool", None),
                **fields,
            )

        return self._run(turn, work)

    def compare(self) -> asyncio.Task[Any] | concurrent.futures.Future[Any] | None:
        """Send the message box to every model picked in the compare list, side by side (the Compare button)."""
        models = list(self.compare_models.value)
        if not 2 <= len(models) <= MAX_COMPARE:
            self._notify(
                "error",
                f"Compare needs two to {MAX_COMPARE} models, and {len(models)} are picked. "
                "Pick them in the Compare list (Ctrl- or Cmd-click picks several), then press Compare.",
            )
            return None
        start = self._start_checks()
        if start is None:
            return None
        text, system, stream = start
        fields = self.fields(models)
        left_out = [
            f"{p.name} ({self._reason(p, models)})"
            for p in self.params.values()
            if p.send.value and p.catalog_field and self._reason(p, models) and not self._reason(p, [self.model.value])
        ]
        fmt = "json" if (fields.get("response_format") or {}).get("type") == "json_object" else "markdown"
        view = _embedded_compare_view(models, fmt)
        turn = self._begin(text, view, f"Waiting for {', '.join(models)}…", compare=True)
        if left_out:
            turn.notes.append("Not sent in this comparison: " + "; ".join(left_out))
        observers = view.observers() if callable(view.observers) else view.observers

        def stoppable(observer: Observer) -> Observer:
            def observe(delta: Delta) -> None:
                if turn.cancel.is_set():
                    raise Cancelled(delta.reply)
                observer(delta)

            return observe

        def work() -> list[Reply]:
            return self._session().compare(
                text,
                models=models,
                stream=stream,
                system=system,
                observers={m: stoppable(o) for m, o in observers.items()},
                poll=view.poll,
                **fields,
            )

        return self._run(turn, work)

    def stop(self) -> None:
        """Stop the running reply at its next chunk (the Stop button); the partial reply is kept."""
        turn = self._turn
        if turn is None:
            return
        turn.cancel.set()
        self.stop_button.disabled = True
        self.status.value = note_html("Stopping at the next chunk…")

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
    def _start_checks(self) -> tuple[str, str | None, bool] | None:
        if self._closed:
            return None
        if self._turn is not None:
            self._notify("error", "A reply is still arriving: wait for it or press Stop before sending again.")
            return None
        text = self.message.value
        if not text.strip():
            self._notify("error", "The message box is empty: type a message, then press Send.")
            return None
        return text, self._system_argument(), bool(self.stream.value)

    def _begin(self, text: str, view: Any, status: str, *, compare: bool = False) -> _Turn:
        w = _widgets()
        self._notify(None)
        user = w.HTMLMath(value=message_html({"role": "user", "content": text}))
        turn = _Turn(
            text=text,
            view=view,
            cancel=threading.Event(),
            user_widget=user,
            reply_widget=w.VBox(
                [view.widget],
                layout=w.Layout(border_left="3px solid #4c78a8", padding="0 0 0 10px", margin="6px 0", width="100%"),
            ),
            known=list(self._session().messages),
            compare=compare,
        )
        self._turn = turn
        self._last_message = text
        self.message.value = ""
        self._set_busy(True, status)
        self._render()
        return turn

    def _run(self, turn: _Turn, work: Callable[[], Any]) -> asyncio.Task[Any] | concurrent.futures.Future[Any]:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._loop = loop
            self.task = loop.create_task(self._drive(turn, work))
            return self.task

        # No loop to come back to: run and finish on a worker thread.
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run_here() -> None:
            try:
                result = work()
            except Exception as exc:
                self._finish(turn, None, exc)
                future.set_result(None)
            else:
                self._finish(turn, result, None)
                future.set_result(result)

        self.task = future
        threading.Thread(target=run_here, name="compass-playground-turn", daemon=True).start()
        return future

    async def _drive(self, turn: _Turn, work: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # ipykernel keeps the output's parent in context variables
        try:
            result = await loop.run_in_executor(_worker_pool(), context.run, work)
        except Exception as exc:
            self._finish(turn, None, exc)
            return None
        except BaseException:  # the task was cancelled (kernel shutting down): leave the panel usable
            self._finish(turn, None, None)
            raise
        self._finish(turn, result, None)
        return result

    def _finish(self, turn: _Turn, result: Any, error: BaseException | None) -> None:
        self._render()  # binds the turn's messages to its widgets while the turn is still current
        try:
            if error is not None:
                self._failed(turn, error)
            elif result is not None:
                self._done(turn, result)
        except Exception as exc:  # a view that cannot render must not leave the panel stuck
            self._notify("error", f"The reply could not be shown ({type(exc).__name__}: {exc}).")
        finally:
            if self._turn is turn:
                self._turn = None
            self._set_busy(False, "")
            self._render()

    def _done(self, turn: _Turn, result: Any) -> None:
        replies = result if isinstance(result, list) else [result]
        turn.view.finish(result)  # the view shows the replies' warnings itself
        notes = list(turn.notes)
        if any(r.interrupted for r in replies):
            notes.insert(
                0,
                "Stopped: the partial reply is kept and marked interrupted; it is not sent with later messages.",
            )
        self._notify("warning" if notes else None, " ".join(notes))

    def _failed(self, turn: _Turn, error: BaseException) -> None:
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

    # -- the transcript -----------------------------------------------------------------
    def _session(self) -> Session:
        current = session()
        if current is not self._subscribed:
            self._subscribed = current
            ref = weakref.ref(self)

            def listener(changed: Session) -> None:
                playground = ref()
                if playground is not None and not playground._closed and changed is playground._subscribed:
                    playground._changed()

            current.on_change(listener)
        return current

    def _changed(self) -> None:
        if threading.current_thread() is self._thread or self._loop is None or self._loop.is_closed():
            self._sync_system(self._session())
            self._render()
            return
        self._loop.call_soon_threadsafe(self._changed_here)

    def _changed_here(self) -> None:
        if not self._closed:
            self._sync_system(self._session())
            self._render()

    def _sync_system(self, current: Session) -> None:
        value = current.system or ""
        if self.system.value == self._system_seen:  # not edited since the last sync: follow the conversation
            self.system.value = value
        self._system_seen = value

    def _bind(self, turn: _Turn, messages: list[dict[str, Any]]) -> None:
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

    def _render(self) -> None:
        """Rebuild the transcript from the conversation (cached widgets are reused)."""
        if self._closed:
            return
        w = _widgets()
        with self._render_lock:
            current = self._session()
            messages = list(current.messages)
            turn = self._turn
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
            if tuple(children) != tuple(self.transcript.children):
                self.transcript.children = tuple(children)

    # -- display ---------------------------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(self.widget._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/plain"] = "Compass playground (it needs a front end with ipywidgets: JupyterLab or Notebook 7)"
        return bundle

    def show(self) -> Playground:
        """Display the playground in the current cell's output."""
        from IPython.display import display

        display(self)
        return self

    def close(self) -> None:
        """Remove the playground's widgets; the conversation stays."""
        if self._turn is not None:
            self._turn.cancel.set()
        self._closed = True
        _close_tree(self.widget)

    def __repr__(self) -> str:
        return f"<Playground model={self.model.value!r} fields={self.fields()!r}>"


def _embedded_compare_view(models: list[str], fmt: str) -> Any:
    """A CompareView that the playground places in its transcript instead of displaying it."""
    from .views.widget import CompareView

    if "embedded" in inspect.signature(CompareView).parameters:
        return CompareView(models, fmt=fmt, embedded=True)

    class EmbeddedCompareView(CompareView):  # type: ignore[misc, valid-type]
        # This CompareView displays itself when it starts and when it ends; here its widget is
        # already in the transcript, so both would only add stray outputs.
        def show(self) -> Any:
            return self

        def _publish(self, replies: list[Reply], error: Any) -> None:
            self._done = True
            for reply, model in zip(replies, self.models):
                reply.model = reply.model or model

    return EmbeddedCompareView(models, fmt=fmt)
