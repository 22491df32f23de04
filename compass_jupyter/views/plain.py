"""The no-widget live view: markdown updated in place while a reply streams.

Updates are coalesced without a timer: a delta re-renders only when at least
``interval`` seconds (50 ms: at most 20 updates a second) passed since the last
render, and the end always renders everything. Each render re-sends the whole
text, so this keeps a fast model from flooding the front end's iopub channel.

What a saved notebook keeps: the live output starts empty and ends empty again,
and the finished reply is displayed as a *new* output. Front ends and nbclient
apply the updates; nbval does not, and sees the same first state (empty) and the
same final output, so a streamed cell compares cleanly.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from .. import render

if TYPE_CHECKING:
    from IPython.display import DisplayHandle

    from ..reply import Reply, ToolCall
    from ..stream import Delta, Observer

__all__ = ["MIN_INTERVAL", "PlainCompareView", "PlainLiveView"]

MIN_INTERVAL = 0.05  # seconds between renders while streaming (<= 20 updates/s)
_EMPTY = {"text/plain": ""}


def _display(bundle: dict[str, Any], *, live: bool = False) -> DisplayHandle | None:
    from IPython.display import display

    return display(bundle, raw=True, display_id=True if live else None)


def _stderr(message: str) -> None:
    sys.stderr.write(f"Warning: {message}\n")
    sys.stderr.flush()


class _LiveOutput:
    """One output updated in place, opened on first use and emptied at the end."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self.clock = clock
        self.handle: DisplayHandle | None = None
        self.last = float("-inf")
        self.renders = 0

    def due(self) -> bool:
        return self.clock() - self.last >= self.interval

    def render(self, bundle: dict[str, Any]) -> None:
        if self.handle is None:
            self.handle = _display(dict(_EMPTY), live=True)
        assert self.handle is not None
        self.handle.update(bundle, raw=True)
        self.last = self.clock()
        self.renders += 1

    def close(self) -> None:
        if self.handle is not None:
            self.handle.update(dict(_EMPTY), raw=True)
            self.handle = None


class PlainLiveView:
    """Streams one reply as markdown, then leaves one final markdown output (reply + summary line)."""

    def __init__(
        self,
        *,
        fmt: str = "markdown",
        live: bool = True,
        interval: float = MIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] = _stderr,
    ) -> None:
        self.fmt = fmt
        self.live = live
        self.warn = warn
        self.reply: Reply | None = None
        self.calls: list[ToolCall] = []
        self._output = _LiveOutput(interval, clock)
        self._warned: set[str] = set()

    @property
    def renders(self) -> int:
        return self._output.renders

    # -- observer ----------------------------------------------------------------------
    def on_delta(self, delta: Delta) -> None:
        self.reply = delta.reply
        self._warn(delta.reply.warnings)
        if self.live and self._output.due():
            self._render()

    def on_tool(self, call: ToolCall) -> None:
        if all(call is not seen for seen in self.calls):
            self.calls.append(call)
        if self.live:
            self._render()

    def on_round(self, reply: Reply) -> None:
        for call in reply.tool_calls:
            if all(call is not seen for seen in self.calls):
                self.calls.append(call)

    # -- end -----------------------------------------------------------------------------
    def finish(self, reply: Reply) -> None:
        self.reply = reply
        self._warn(reply.warnings)
        self._output.close()
        _display(self._final_bundle(reply))

    def fail(self, reply: Reply | None, error: BaseException | str) -> None:
        """A turn that ended in an error: keep what arrived (marked partial), if anything did."""
        reply = reply if reply is not None else self.reply
        self._output.close()
        if reply is None:
            return
        self._warn(reply.warnings)
        if reply.choices or reply.interrupted or self.calls:
            reply.incomplete = True
            _display(render.reply_bundle(reply, self.fmt, tool_calls=self._calls_with(reply)))

    # -- rendering -----------------------------------------------------------------------
    def _calls_with(self, reply: Reply) -> list[ToolCall]:
        calls = list(self.calls)
        for call in render.tool_calls_of(reply):
            if all(call is not seen for seen in calls):
                calls.append(call)
        return calls

    def _render(self) -> None:
        reply = self.reply
        if reply is None:
            if not self.calls:
                return
            from ..reply import Reply

            reply = Reply()
        calls = self._calls_with(reply)
        self._output.render(
            {
                "text/markdown": render.live_markdown(reply, self.fmt, tool_calls=calls),
                "text/plain": reply.text,
            }
        )

    def _final_bundle(self, reply: Reply) -> dict[str, Any]:
        calls = self._calls_with(reply)
        if self.fmt == "json":
            bundle = render.json_bundle(reply, tool_calls=calls)
            if bundle is not None:
                return bundle
            try:
                reply.json()
            except ValueError as exc:
                self.warn(f"{exc}. The reply is shown as text; ask for JSON in the prompt, or drop --format json.")
            return render.reply_bundle(reply, "markdown", tool_calls=calls)
        return render.reply_bundle(reply, self.fmt, tool_calls=calls)

    def warning(self, message: str) -> None:
        """Show a warning about this turn once, however often the engine repeats it."""
        if message not in self._warned:
            self._warned.add(message)
            self.warn(message)

    def _warn(self, warnings: list[str]) -> None:
        for message in warnings:
            self.warning(message)


class PlainCompareView:
    """Several models' replies: one live markdown while they arrive, then a side-by-side grid."""

    def __init__(
        self,
        models: list[str],
        *,
        fmt: str = "markdown",
        live: bool = True,
        pick: int = 0,
        interval: float = MIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] = _stderr,
    ) -> None:
        self.models = list(models)
        self.warn = warn
        self.fmt = fmt
        self.live = live
        self.pick = pick
        self.latest: dict[str, Reply] = {}
        self._lock = threading.Lock()
        self._dirty = False
        self._output = _LiveOutput(interval, clock)
        self._warned: set[str] = set()

    @property
    def renders(self) -> int:
        return self._output.renders

    def observer(self, model: str) -> Observer:
        # Called on a worker thread: only record; poll() renders on the display's thread.
        def observe(delta: Delta) -> None:
            with self._lock:
                self.latest[model] = delta.reply
                self._dirty = True

        return observe

    def observers(self) -> dict[str, Observer]:
        return {model: self.observer(model) for model in self.models}

    def poll(self) -> None:
        with self._lock:
            replies = dict(self.latest)
            dirty, self._dirty = self._dirty, False
        for reply in replies.values():
            self._warn(reply.warnings)
        if not (self.live and dirty):
            return
        if not self._output.due():
            with self._lock:
                self._dirty = True  # try again at the next poll
            return
        self._output.render(self._live_bundle(replies))

    def _live_bundle(self, replies: dict[str, Reply]) -> dict[str, Any]:
        sections, texts = [], []
        for model in self.models:
            reply = replies.get(model)
            text = "" if reply is None else "\n\n".join(c.text for c in list(reply.choices))
            state = "waiting…" if reply is None else "receiving…"
            body = render.format_body(text, self.fmt) if text else ""
            sections.append(f"**{model}** · <sub>{state}</sub>\n\n{body}".rstrip())
            texts.append(f"== {model} ==\n{text}")
        return {"text/markdown": "\n\n---\n\n".join(sections), "text/plain": "\n\n".join(texts)}

    def finish(self, replies: list[Reply]) -> None:
        for reply in replies:
            self._warn(reply.warnings)
        self._output.close()
        _display(render.compare_bundle(replies, self.fmt, kept=self.pick))

    def fail(self, error: BaseException | str, *, interrupted: bool = False) -> None:
        """Show whatever each model had sent, marked partial."""
        from ..reply import Reply

        self._output.close()
        with self._lock:
            latest = dict(self.latest)
        if not latest:
            return
        replies = []
        for model in self.models:
            reply = latest.get(model) or Reply(model=model)
            if not reply.choices or not all(c.finish_reason for c in reply.choices):
                reply.incomplete = True
                reply.interrupted = reply.interrupted or interrupted
            replies.append(reply)
        _display(render.compare_bundle(replies, self.fmt, kept=self.pick))

    def warning(self, message: str) -> None:
        """Show a warning about this turn once, however often the engine repeats it."""
        if message not in self._warned:
            self._warned.add(message)
            self.warn(message)

    def _warn(self, warnings: list[str]) -> None:
        for message in warnings:
            self.warning(message)
