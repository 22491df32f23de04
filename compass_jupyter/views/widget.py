"""Live reply views built from ipywidgets: one streaming reply, and several models side by side.

They follow the protocol of :mod:`compass_jupyter.views`: each is the turn's
observer (``Session.chat(..., observer=view)``: ``on_delta(delta)`` while a reply
arrives, plus ``on_tool``, ``on_round``, ``cancelled``), shows ``warning``s, and
ends with ``finish(reply)`` or ``fail(reply, error)``. ``show()`` displays a view; the
first render does it too.

Why they look the way they do:

- Markdown is rendered in the kernel (see :mod:`compass_jupyter.rendering`) into ``HTMLMath``
  widgets, which the front end typesets. Every widget update re-sends its whole
  value, so a growing text is split into *settled* blocks (rendered once, never
  re-sent) and a short *tail*, the only part re-sent while streaming.
- Updates are coalesced by time: a delta less than ``interval`` seconds after
  the last render only changes the state; the next delta (or the end) renders
  it. A fast model thus gets about 20 renders a second.
- What a saved notebook keeps (as the plain view does): the live output ends
  empty and the finished reply is displayed as a new output, the same widget
  with ``text/html`` and ``text/plain`` renderings of the reply beside it. Front
  ends without widget state (nbconvert, GitHub) show the HTML; nbval compares
  the same first (empty) and final outputs that a front end saved.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..rendering.compare import KEPT, compare_bundle
from ..rendering.markup import escape
from ..rendering.notices import warnings_html
from ..rendering.parts import tool_calls_html, tool_calls_of
from ..rendering.reply import choice_extras_html, is_spoken, reply_html_bundle
from ..rendering.status import banner_html, status_html
from ..reply import Reply, ToolCall
from ..turn import CompareObserver, TurnObserver
from .text_panel import TextPanel, widgets

if TYPE_CHECKING:
    from IPython.display import DisplayHandle

    from ..stream import Delta

__all__ = ["LiveReplyView", "CompareView", "widgets_available"]

MIN_INTERVAL = 0.045  # seconds between renders: at most ~22 updates a second
STATUS_INTERVAL = 0.25  # seconds between status-line updates while streaming
_EMPTY = {"text/plain": ""}


def widgets_available() -> bool:
    """True inside a Jupyter kernel with ipywidgets installed (a front end can show widgets).

    A terminal IPython (no kernel) or a missing ipywidgets means the plain view.
    Whether the *front end* has a widget manager cannot be known from the kernel;
    the finished output carries HTML and text fallbacks for those that do not.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class _ChoiceView:
    """One choice: reasoning (collapsed, created when some arrives), text, extras."""

    def __init__(self, fmt: str) -> None:
        w = widgets()
        self.fmt = fmt
        self.text = TextPanel(fmt)
        self.reasoning: TextPanel | None = None
        self.accordion: Any = None
        self.extras = w.HTML(value="", layout=w.Layout(width="100%"))
        self.box = w.VBox([self.text.box, self.extras], layout=w.Layout(width="100%"))
        self.box.add_class("compass-choice")

    def add_reasoning(self, piece: str) -> None:
        if self.reasoning is None:
            w = widgets()
            self.reasoning = TextPanel("markdown", css_class="compass-reasoning-text")
            self.accordion = w.Accordion(children=[self.reasoning.box], selected_index=None)
            self.accordion.set_title(0, "Reasoning")
            self.accordion.add_class("compass-reasoning")
            self.box.children = (self.accordion,) + tuple(self.box.children)
        self.reasoning.append(piece)

    def render(self) -> None:
        self.text.render()
        if self.reasoning is not None and self.reasoning.dirty:
            self.reasoning.render()
            self.accordion.set_title(0, f"Reasoning ({len(self.reasoning.text):,} characters)")

    def finish(self, choice: Any) -> None:
        self.text.finish(choice.audio.transcript if is_spoken(choice) else choice.text)
        if choice.reasoning:
            if self.reasoning is None:
                self.add_reasoning("")
            assert self.reasoning is not None
            self.reasoning.finish(choice.reasoning)
            self.accordion.set_title(0, f"Reasoning ({len(choice.reasoning):,} characters)")
        value = choice_extras_html(choice)
        if value != self.extras.value:
            self.extras.value = value

    def close(self) -> None:
        self.box.close()


class LiveReplyView(TurnObserver):
    """A reply that renders while it streams: text, tool calls, choices, status line.

    ``view = LiveReplyView()``; pass it as ``Session.chat(..., observer=view)`` (or
    ``view.on_delta`` as ``Client.chat``'s ``on_delta``); ``view.stop()`` stops the
    turn at its next chunk; end with ``view.finish(reply)`` or
    ``view.fail(reply_or_None, error)``.

    ``fmt``: markdown, text, code or json. ``live=False`` shows nothing until
    the end. ``interval``: least seconds between two renders. ``warn``: where
    warnings go (default: a line in the view). ``view.widget`` is the
    ipywidgets container.
    """

    def __init__(
        self,
        *,
        fmt: str = "markdown",
        live: bool = True,
        interval: float = MIN_INTERVAL,
        clock: Callable[[], float] = time.perf_counter,
        warn: Callable[[str], None] | None = None,
        title: str | None = None,
        embedded: bool = False,
        defer: bool = False,
    ) -> None:
        w = widgets()
        self.fmt = fmt
        self.live = live
        self.interval = interval
        self._clock = clock
        self._warn = warn
        self._embedded = embedded  # a column of a CompareView: never displayed on its own
        self._defer = defer  # on_delta only records; flush()/flush_due() render (worker threads)
        self._lock = threading.RLock()
        self._started = clock()
        self._first_at: float | None = None
        self._last_render = float("-inf")
        self._status_at = float("-inf")
        self._dirty = False
        self._pieces = 0
        self._reply: Reply | None = None
        self._model: str | None = None
        self._choices: dict[int, _ChoiceView] = {}
        self._calls: list[ToolCall] = []
        self._tools_shown = ""
        self._warned: list[str] = []
        self._handle: DisplayHandle | None = None
        self._final: dict[str, Any] | None = None  # the plain renderings, once finished
        self._done = False
        self._stop = threading.Event()
        self.renders = 0  # renders while streaming (for benchmarks and tests)

        self._title = w.HTML(value=f'<div style="font-weight:600">{escape(title)}</div>' if title else "")
        self._title.add_class("compass-title")
        self._warnings = w.HTML(value="", layout=w.Layout(width="100%"))
        self._tools = w.HTML(value="", layout=w.Layout(width="100%"))
        self._tools.add_class("compass-tools")
        self._body = w.VBox([], layout=w.Layout(width="100%"))
        self._tab: Any = None
        self._banner = w.HTML(value="", layout=w.Layout(width="100%"))
        self._status = w.HTML(value=status_html(state="waiting"), layout=w.Layout(width="100%"))
        self._status.add_class("compass-status-line")
        children = [self._warnings, self._tools, self._body, self._banner, self._status]
        if title:
            children.insert(0, self._title)
        self.widget = w.VBox(children, layout=w.Layout(width="100%", min_width="0"))
        self.widget.add_class("compass-live-reply")

    # -- display -----------------------------------------------------------------
    def show(self) -> LiveReplyView:
        """Display the live view in the current output (once); after the end, the finished view."""
        if self._embedded:
            return self
        from IPython.display import display

        if self._final is not None:
            display({**self.widget._repr_mimebundle_(), **self._final}, raw=True)
        elif self._handle is None:
            bundle = dict(self.widget._repr_mimebundle_())
            bundle.update(_EMPTY)  # the first state nbval compares: empty, as the saved one ends
            self._handle = display(bundle, raw=True, display_id=True)
        return self

    def _ipython_display_(self) -> None:
        self.show()

    def _publish(self, bundle: dict[str, Any]) -> None:
        """End the live output and display the finished view with its plain renderings."""
        self._final = bundle
        if self._embedded:
            return
        from IPython.display import display

        if self._handle is not None:
            self._handle.update(dict(_EMPTY), raw=True)
            self._handle = None
        display({**self.widget._repr_mimebundle_(), **bundle}, raw=True)

    # -- streaming ---------------------------------------------------------------
    def on_delta(self, delta: Delta) -> None:
        """Take one delta; render when the last render is at least ``interval`` old."""
        with self._lock:
            if self._done:
                return
            if delta.reply is not self._reply:
                if self._reply is not None and self._choices:
                    self._new_round()
                self._reply = delta.reply
                # A new request (a tool round, a retry): its timing and counts start afresh, as its status will.
                self._first_at, self._pieces = None, 0
            self._model = delta.reply.model or self._model
            for message in delta.reply.warnings:
                self.warning(message)
            content = False
            if delta.choice is not None:
                view = self._choice(delta.choice)
                if delta.text:
                    view.text.append(delta.text)
                    content = True
                elif delta.transcript and not delta.reply.choices[delta.choice].text:
                    view.text.append(delta.transcript)  # a spoken reply: its transcript is the text
                    content = True
                if delta.reasoning:
                    view.add_reasoning(delta.reasoning)
                    content = True
                if delta.tool_call is not None:
                    self._remember(delta.tool_call)
                    content = True
                content = content or bool(delta.audio)
            if content:
                self._pieces += 1
                if self._first_at is None:
                    self._first_at = self._clock()
            self._dirty = True
            if self._defer:
                return
            if content and self._pieces == 1 and self.live:
                self._render(self._clock())  # the first token shows at once, whatever came before it
            else:
                self._render_if_due()

    def on_tool(self, call: ToolCall) -> None:
        """A tool ran: show its result now."""
        with self._lock:
            self._remember(call)
            if self.live and not self._defer and not self._done:
                self._render(self._clock())

    def on_round(self, reply: Reply) -> None:
        """A tool round ended: its calls are about to run."""
        with self._lock:
            for call in reply.tool_calls:
                self._remember(call)

    def stop(self) -> None:
        """Stop the turn at its next chunk (from any thread, e.g. a Stop button); the partial reply is kept."""
        self._stop.set()

    def cancelled(self) -> bool:
        return self._stop.is_set()

    def warning(self, message: str) -> None:
        """Show a warning about this turn once, however often the engine repeats it."""
        with self._lock:
            if message in self._warned:
                return
            self._warned.append(message)
            if self._warn is not None:
                self._warn(message)
            else:
                self._warnings.value = warnings_html(self._warned)

    def flush(self) -> None:
        """Render whatever arrived since the last render, now."""
        with self._lock:
            if not self._done and self._dirty:
                self._render(self._clock())

    def flush_due(self) -> None:
        """Render what arrived if the last render is at least ``interval`` old (for poll loops)."""
        with self._lock:
            if not self._done:
                self._render_if_due()

    def _render_if_due(self) -> None:
        if not self.live or not self._dirty:
            return
        now = self._clock()
        if now - self._last_render >= self.interval:
            self._render(now)

    def _remember(self, call: ToolCall) -> None:
        if all(call is not seen for seen in self._calls):
            self._calls.append(call)

    def _choice(self, index: int) -> _ChoiceView:
        view = self._choices.get(index)
        if view is not None:
            return view
        view = self._choices[index] = _ChoiceView(self.fmt)
        wanted = int((self._reply.request if self._reply is not None else {}).get("n") or 1)
        if len(self._choices) > 1 or wanted > 1:
            w = widgets()
            if self._tab is None:
                self._tab = w.Tab(layout=w.Layout(width="100%"))
                self._tab.add_class("compass-choices")
                self._body.children = (self._tab,)
            order = sorted(self._choices)
            self._tab.children = tuple(self._choices[i].box for i in order)
            for position, i in enumerate(order):
                self._tab.set_title(position, f"Choice {i + 1}")
        else:
            self._body.children = (view.box,)
        return view

    def _new_round(self) -> None:
        # The model answers again after a tool round: the text starts over, the calls stay listed.
        for view in self._choices.values():
            view.close()
        self._choices.clear()
        self._tab = None
        self._body.children = ()

    def _render(self, now: float) -> None:
        if self.live:
            self.show()
        self._last_render = now
        self._dirty = False
        self.renders += 1
        for view in self._choices.values():
            view.render()
        self._render_tools(running=True)
        if now - self._status_at < STATUS_INTERVAL and self._pieces > 1:
            return  # the counts can wait; the text is what a person watches
        self._status_at = now
        ttft = self._ttft()
        window = None if self._first_at is None else now - self._first_at
        rate = self._pieces / window if window and window > 0.2 and self._pieces > 1 else None
        self._status.value = status_html(
            model=self._model,
            state="streaming" if self._pieces else "waiting",
            tokens=self._pieces,
            ttft=ttft,
            # From the request's start, as the finished reply's total: its first token, then the stream since.
            elapsed=None if ttft is None or window is None else ttft + window,
            tokens_per_s=rate,
        )

    def _ttft(self) -> float | None:
        """Seconds to the first token, as the engine measured it (the number the finished reply keeps).

        The engine sets ``reply.latency.ttft`` the moment the token arrives, timed from when the
        request went out. This view is made before that (before the request is checked, a
        local model started), so its own clock would count that set-up too; it is the
        fallback only for a reply that carries no measurement.
        """
        if self._first_at is None:
            return None
        measured = self._reply.latency.ttft if self._reply is not None else None
        return measured if measured is not None else self._first_at - self._started

    def _render_tools(self, *, running: bool) -> None:
        value = tool_calls_html(self._calls, running=running)
        if value != self._tools_shown:  # re-sending would close a <details> someone opened
            self._tools_shown = value
            self._tools.value = value

    # -- end ---------------------------------------------------------------------
    def finish(self, reply: Reply) -> None:
        """Show the finished reply: final text, tool calls, logprobs, audio, status line."""
        with self._lock:
            self._show_final(reply, None)
            self._publish(self._fallback(reply, None))

    def fail(self, reply: Reply | None, error: BaseException | str) -> None:
        """Keep what arrived, marked partial, with what went wrong; nothing if nothing arrived."""
        with self._lock:
            reply = reply if reply is not None else self._reply
            if reply is None and not self._calls:
                self._done = True
                if self._handle is not None:  # the error itself is the caller's to show
                    self._handle.update(dict(_EMPTY), raw=True)
                    self._handle = None
                return
            if reply is None:
                reply = Reply(model=self._model)
            reply.incomplete = True
            if isinstance(error, KeyboardInterrupt):
                reply.interrupted = True
            self._show_final(reply, error)
            self._publish(self._fallback(reply, error))

    def _calls_with(self, reply: Reply) -> list[ToolCall]:
        calls = list(self._calls)
        for call in tool_calls_of(reply):
            if all(call is not seen for seen in calls):
                calls.append(call)
        return calls

    def _show_final(self, reply: Reply, error: BaseException | str | None) -> None:
        self._done = True
        if reply is not self._reply and self._reply is not None and self._choices and reply.choices:
            self._new_round()  # a different reply than the one streamed: start its views afresh
        self._reply = reply
        self._model = reply.model or self._model
        for message in reply.warnings:
            self.warning(message)
        for choice in reply.choices:
            self._choice(choice.index).finish(choice)
        if self._tab is not None:
            for position, choice in enumerate(reply.choices):
                self._tab.set_title(position, f"Choice {choice.index + 1} · {choice.finish_reason or '–'}")
        self._calls = self._calls_with(reply)
        self._render_tools(running=False)
        banner = banner_html(reply, error)
        if banner != self._banner.value:
            self._banner.value = banner
        self._status.value = status_html(reply)

    def _fallback(self, reply: Reply, error: BaseException | str | None) -> dict[str, Any]:
        warnings = self._warned if self._warn is None else []
        return reply_html_bundle(reply, self.fmt, tool_calls=self._calls, error=error, warnings=warnings)


class CompareView(CompareObserver):
    """Several models' replies side by side, live: one column per model.

    The turn's observer: ``Session.compare(..., observer=view)``. ``view.observer(model)``
    is that model's column (called on a worker thread, it only records);
    ``view.poll()`` renders from the thread that owns the display; ``view.stop()``
    stops every reply at its next chunk. End with ``view.finish(replies)`` or
    ``view.fail(error)``.
    """

    def __init__(
        self,
        models: Sequence[str],
        *,
        fmt: str = "markdown",
        live: bool = True,
        pick: int | None = 0,
        interval: float = MIN_INTERVAL,
        clock: Callable[[], float] = time.perf_counter,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        w = widgets()
        self.models = list(models)
        self.fmt = fmt
        self.live = live
        self.pick = pick
        self._warn = warn
        self._warned: list[str] = []
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._handle: DisplayHandle | None = None
        self._done = False
        self._stop = threading.Event()
        self.columns = [
            LiveReplyView(
                fmt=fmt,
                title=model + (KEPT if pick == i else ""),
                interval=interval,
                clock=clock,
                warn=self.warning,
                embedded=True,
                defer=True,
            )
            for i, model in enumerate(self.models)
        ]
        self._warnings = w.HTML(value="", layout=w.Layout(width="100%"))
        count = max(1, len(self.columns))
        self._grid = w.GridBox(
            [c.widget for c in self.columns],
            layout=w.Layout(grid_template_columns=f"repeat({count}, minmax(0, 1fr))", grid_gap="0 16px", width="100%"),
        )
        self._grid.add_class("compass-compare-view")
        self.widget = w.VBox([self._warnings, self._grid], layout=w.Layout(width="100%"))

    def column(self, model: str) -> LiveReplyView:
        return self.columns[self.models.index(model)]

    def observer(self, model: str) -> TurnObserver:
        return self.column(model)

    def stop(self) -> None:
        """Stop every model's reply at its next chunk (from any thread); the partial replies are kept."""
        self._stop.set()

    def cancelled(self) -> bool:
        return self._stop.is_set()

    def warning(self, message: str) -> None:
        """Show a warning about this turn once (the columns report theirs here too).

        Columns hear of warnings on worker threads; those wait for the next ``poll``.
        """
        with self._lock:
            if message in self._warned or message in self._pending:
                return
            self._pending.append(message)
        if threading.current_thread() is threading.main_thread():
            self._emit_warnings()

    def _emit_warnings(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            self._warned += pending
        for message in pending:
            if self._warn is not None:
                self._warn(message)
        if pending and self._warn is None:
            self._warnings.value = warnings_html(self._warned)

    def show(self) -> CompareView:
        if self._handle is None:
            from IPython.display import display

            self._handle = display({**self.widget._repr_mimebundle_(), **_EMPTY}, raw=True, display_id=True)
        return self

    def _ipython_display_(self) -> None:
        self.show()

    def poll(self) -> None:
        """Render the columns that changed, each at most every ``interval`` seconds."""
        self._emit_warnings()
        if not self.live or self._done:
            return
        if self._handle is None and any(c._dirty for c in self.columns):
            self.show()
        for column in self.columns:
            column.flush_due()

    def finish(self, replies: Sequence[Reply]) -> None:
        """Show every model's finished reply (one that broke off is marked partial)."""
        for column, reply in zip(self.columns, replies):
            if reply.incomplete:
                column.fail(reply, reply.error or "")
            else:
                column.finish(reply)
        self._publish(list(replies), None)

    def fail(self, error: BaseException | str, *, interrupted: bool = False) -> None:
        """Show whatever each model had sent, the unfinished ones marked partial."""
        if all(c._reply is None for c in self.columns):
            self._emit_warnings()
            self._done = True
            if self._handle is not None:  # nothing arrived; the error is the caller's to show
                self._handle.update(dict(_EMPTY), raw=True)
                self._handle = None
            return
        replies = []
        for model, column in zip(self.models, self.columns):
            reply = column._reply or Reply(model=model)
            if reply.choices and all(c.finish_reason for c in reply.choices) and not reply.incomplete:
                column.finish(reply)
            else:
                reply.interrupted = reply.interrupted or interrupted
                column.fail(reply, error)
            replies.append(reply)
        self._publish(replies, error)

    def _publish(self, replies: list[Reply], error: BaseException | str | None) -> None:
        from IPython.display import display

        self._emit_warnings()
        self._done = True
        warnings = self._warned if self._warn is None else []
        bundle = compare_bundle(replies, self.fmt, kept=self.pick, warnings=warnings, asked=self.models)
        bundle.pop("text/markdown")  # the HTML says the same, front ends prefer it (as for one reply)
        if self._handle is not None:
            self._handle.update(dict(_EMPTY), raw=True)
            self._handle = None
        display({**self.widget._repr_mimebundle_(), **bundle}, raw=True)
