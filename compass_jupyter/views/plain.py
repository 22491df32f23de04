"""The no-widget live view: markdown updated in place while a reply streams.

Updates are coalesced without a timer: a delta re-renders only when at least
``interval`` seconds (50 ms: at most 20 updates a second) passed since the last
render, and the end always renders everything. A display update re-sends its
whole value, so the live output shows a long reply's last ``LIVE_TAIL``
characters only (under a "… (k characters above)" line); the final output has
all of it. Each update is thus at most a few KB, and what a reply sends to the
front end grows linearly with its length instead of with its square.

What a saved notebook keeps: the live output starts empty and ends empty again,
and the finished reply is displayed as a *new* output. Front ends and nbclient
apply the updates; nbval does not, and sees the same first state (empty) and the
same final output, so a streamed cell compares cleanly.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from ..rendering.compare import compare_bundle, compare_live_bundle
from ..rendering.parts import tool_calls_of
from ..rendering.reply import json_bundle, live_markdown, reply_bundle
from ..turn import CompareObserver, TurnObserver

if TYPE_CHECKING:
    from IPython.display import DisplayHandle

    from ..reply import Reply, ToolCall
    from ..stream import Delta

__all__ = ["LIVE_TAIL", "MIN_INTERVAL", "PlainCompareView", "PlainLiveView"]

MIN_INTERVAL = 0.05  # seconds between renders while streaming (<= 20 updates/s)
_EMPTY = {"text/plain": ""}

# How much of a streaming text the live output shows: its last 3,000 characters,
# about a screenful. A display update re-sends its whole value, so re-sending the
# whole text at every update made the traffic grow with the square of the length:
# ~8 GB of iopub messages for a 100,000-token reply at 100 tokens/s, each one
# re-rendered whole by the browser. Why a tail rather than the whole text ever less
# often (an interval growing with the length would also keep the bytes linear):
# that freezes a long reply for seconds at a time, while a user wants to see it
# moving, and the beginning of a long reply is read once it has ended, from the
# final output, which has all of it. A tail also keeps the growing end next to the
# cell instead of below the screen. So: replies shorter than this look as before;
# longer ones show their end at the same 20 updates a second, each at most ~7 KB
# (markdown and plain text): bytes grow with the number of updates (~0.13 MB/s at
# most), i.e. linearly with the reply, never with its square.
LIVE_TAIL = 3_000
_MIN_SHARE = 500  # characters shown of each text when several share the tail (n > 1, compare)


def _above(hidden: int, fmt: str) -> str:
    note = f"… ({hidden:,} characters above)"
    return f"*{note}*" if fmt == "markdown" else note


class _Fences:
    """Which fenced code block a growing text is in at a line start, scanned incrementally.

    Only what was added since the last call is scanned (a ``str.find`` for the two
    fence markers; only lines with nothing but indentation before one count, as in
    CommonMark), so following a reply costs time linear in its length overall. The
    same text is recognised by its first and last scanned characters, not compared
    whole, so that a call costs nothing in proportion to the length.
    """

    _MARK = 64  # characters compared at each end of the scanned part

    def __init__(self) -> None:
        self.scanned = 0  # text[:scanned], complete lines, has been scanned
        self.marks = ("", "")
        self.fence: tuple[str, int, str] | None = None  # (character, length, opening line)

    def _marks(self, text: str, end: int) -> tuple[str, str]:
        return text[: min(end, self._MARK)], text[max(0, end - self._MARK) : end]

    def open_at(self, text: str, end: int) -> str | None:
        """The line that opened the fenced block ``text[end]`` falls in, or None outside one."""
        end = text.rfind("\n", 0, end) + 1  # complete lines only
        if end < self.scanned or self._marks(text, self.scanned) != self.marks:
            self.scanned, self.fence = 0, None  # another text (a new round): from its start
        starts: set[int] = set()
        for marker in ("```", "~~~"):
            at = text.find(marker, self.scanned, end)
            while at != -1:
                line_start = text.rfind("\n", 0, at) + 1
                if not text[line_start:at].strip():
                    starts.add(line_start)
                at = text.find(marker, at + 3, end)
        fence = self.fence
        for line_start in sorted(starts):
            line = text[line_start : text.find("\n", line_start, end)].strip()
            char = line[0]
            run = len(line) - len(line.lstrip(char))
            if fence is None:
                if char == "~" or "`" not in line[run:]:  # a backtick fence's info string has no backtick
                    fence = (char, run, line)
            elif char == fence[0] and run >= fence[1] and not line[run:].strip():
                fence = None
        self.fence, self.scanned, self.marks = fence, end, self._marks(text, end)
        return None if fence is None else fence[2]


def _tail(text: str, limit: int, fmt: str = "text", fences: _Fences | None = None) -> str:
    """``text`` as the live output shows it: all of it, or its last ``limit`` characters
    from a line start (unless the last lines are very long) under a note of how many are
    above. In markdown, a fenced code block cut in two is opened again above the tail
    (``fences`` keeps the scan of the same growing text from one call to the next)."""
    if len(text) <= limit:
        return text
    start = len(text) - limit
    newline = text.find("\n", start - 1, start + limit // 2)
    if newline != -1:
        start = newline + 1
    tail = text[start:]
    if fmt == "markdown":
        fence = (fences or _Fences()).open_at(text, start)
        if fence is not None:
            tail = f"{fence}\n{tail}"
    return f"{_above(start, fmt)}\n\n{tail}"


def _live_reply(reply: Reply, fmt: str, fences: dict[Any, _Fences]) -> Reply:
    """``reply`` with each streaming text (text, reasoning, spoken transcript) cut to its tail.

    The same object when nothing is long (most replies); else a shallow copy.
    """
    limit = max(LIVE_TAIL // max(1, len(reply.choices)), _MIN_SHARE)

    def long(value: str | None) -> bool:
        return value is not None and len(value) > limit

    def cut(value: str, fmt: str, key: tuple[int, str]) -> str:
        return _tail(value, limit, fmt, fences.setdefault(key, _Fences()))

    shown, changed = [], False
    for c in list(reply.choices):
        if long(c.text) or long(c.reasoning) or (c.audio is not None and long(c.audio.transcript)):
            changes: dict[str, Any] = {"text": cut(c.text, fmt, (c.index, "text"))}
            if c.reasoning is not None:
                changes["reasoning"] = cut(c.reasoning, "markdown", (c.index, "reasoning"))
            if c.audio is not None:  # the live output shows no player: the transcript only
                transcript = cut(c.audio.transcript, fmt, (c.index, "transcript"))
                changes["audio"] = replace(c.audio, data=b"", transcript=transcript)
            c, changed = replace(c, **changes), True
        shown.append(c)
    return replace(reply, choices=shown) if changed else reply


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


class PlainLiveView(TurnObserver):
    """Streams one reply as markdown, then leaves one final markdown output (reply + summary line).

    The observer of the turn: ``Session.chat(text, observer=view)``.
    """

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
        self._fences: dict[Any, _Fences] = {}
        self._stop = threading.Event()

    @property
    def renders(self) -> int:
        return self._output.renders

    # -- observer ----------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the turn at its next chunk (from any thread); the partial reply is kept."""
        self._stop.set()

    def cancelled(self) -> bool:
        return self._stop.is_set()

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
            _display(reply_bundle(reply, self.fmt, tool_calls=self._calls_with(reply)))

    # -- rendering -----------------------------------------------------------------------
    def _calls_with(self, reply: Reply) -> list[ToolCall]:
        calls = list(self.calls)
        for call in tool_calls_of(reply):
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
        # The body of the tails, and the status line of the whole reply.
        shown = _live_reply(reply, self.fmt, self._fences)
        markdown = live_markdown(reply, self.fmt, tool_calls=self._calls_with(reply), body=shown)
        self._output.render({"text/markdown": markdown, "text/plain": _tail(reply.text, LIVE_TAIL)})

    def _final_bundle(self, reply: Reply) -> dict[str, Any]:
        calls = self._calls_with(reply)
        if self.fmt == "json":
            bundle = json_bundle(reply, tool_calls=calls)
            if bundle is not None:
                return bundle
            try:
                reply.json()
            except ValueError as exc:
                self.warn(f"{exc}. The reply is shown as text; ask for JSON in the prompt, or drop --format json.")
            return reply_bundle(reply, "markdown", tool_calls=calls)
        return reply_bundle(reply, self.fmt, tool_calls=calls)

    def warning(self, message: str) -> None:
        """Show a warning about this turn once, however often the engine repeats it."""
        if message not in self._warned:
            self._warned.add(message)
            self.warn(message)

    def _warn(self, warnings: list[str]) -> None:
        for message in warnings:
            self.warning(message)


class _Column(TurnObserver):
    """One model's observer in a PlainCompareView: records on the worker thread, renders nothing."""

    def __init__(self, view: PlainCompareView, model: str) -> None:
        self.view, self.model = view, model

    def on_delta(self, delta: Delta) -> None:
        view = self.view
        with view._lock:
            view.latest[self.model] = delta.reply
            view._dirty = True


class PlainCompareView(CompareObserver):
    """Several models' replies: one live markdown while they arrive, then side by side (``compare_bundle``).

    The observer of the turn: ``Session.compare(text, models=..., observer=view)``.
    """

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
        self._fences: dict[str, _Fences] = {}
        self._stop = threading.Event()

    @property
    def renders(self) -> int:
        return self._output.renders

    def observer(self, model: str) -> TurnObserver:
        # Called on a worker thread: only record; poll() renders on the display's thread.
        return _Column(self, model)

    def stop(self) -> None:
        """Stop every model's reply at its next chunk (from any thread); the partial replies are kept."""
        self._stop.set()

    def cancelled(self) -> bool:
        return self._stop.is_set()

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
        limit = max(LIVE_TAIL // max(1, len(self.models)), _MIN_SHARE)  # see LIVE_TAIL
        columns: list[tuple[str, str | None]] = []
        for model in self.models:
            reply = replies.get(model)
            text = None if reply is None else "\n\n".join(c.text for c in list(reply.choices))
            if text is not None:
                text = _tail(text, limit, self.fmt, self._fences.setdefault(model, _Fences()))
            columns.append((model, text))
        return compare_live_bundle(columns, self.fmt)

    def finish(self, replies: list[Reply]) -> None:
        for reply in replies:
            self._warn(reply.warnings)
        self._output.close()
        _display(compare_bundle(replies, self.fmt, kept=self.pick, asked=self.models))

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
        _display(compare_bundle(replies, self.fmt, kept=self.pick, asked=self.models))

    def warning(self, message: str) -> None:
        """Show a warning about this turn once, however often the engine repeats it."""
        if message not in self._warned:
            self._warned.add(message)
            self.warn(message)

    def _warn(self, warnings: list[str]) -> None:
        for message in warnings:
            self.warning(message)
