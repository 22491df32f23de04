"""Live views of a ``cj.map`` run: a widget panel, a plain line updated in place, or a terminal line.

Each is a :class:`~compass_jupyter.batch.progress.BatchObserver`, fed from the
thread that called ``cj.map`` (``start``, a few ``update``\\ s a second, ``finish``).
:func:`progress_view` chooses as the reply views do (the ``view`` setting):

- :class:`WidgetProgress` (a Jupyter kernel with ipywidgets): a bar, then done /
  failed / in flight / tokens in and out / elapsed / ETA, and the last error.
- :class:`PlainProgress` (a kernel without widgets: nbconvert, nbval,
  ``COMPASS_VIEW=plain``): the same as a line of text and HTML, updated in place.
- :class:`TerminalProgress` (no kernel: a terminal IPython, a script): a line on
  stderr rewritten in place when stderr is a terminal.

What a saved notebook keeps, as with replies: the live output starts empty and
ends empty, and the summary is displayed as a new output (with the widget, for
the panel), so nbval compares the same first and last states as a front end saved.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from ..batch.progress import BatchObserver, ProgressState, Summary
from ..rendering.progress import progress_html, progress_line, summary_bundle, summary_text

if TYPE_CHECKING:
    from IPython.display import DisplayHandle

__all__ = ["PlainProgress", "TerminalProgress", "WidgetProgress", "progress_view"]

WIDGET_INTERVAL = 0.25  # seconds between two renders of the panel: a live count, a light front end
PLAIN_INTERVAL = 0.5
_EMPTY = {"text/plain": ""}


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_view() -> BatchObserver:
    """The view for a run here, per the ``view`` setting and what the front end can show."""
    from . import use_widgets

    if use_widgets():
        return WidgetProgress()
    if _in_kernel():
        return PlainProgress()
    return TerminalProgress()


def _display(bundle: dict[str, Any], **kwargs: Any) -> DisplayHandle | None:
    from IPython.display import display

    return display(bundle, raw=True, **kwargs)


class WidgetProgress(BatchObserver):
    """A panel of widgets: a bar, the counts, the last error; at the end, the summary under the bar."""

    def __init__(self, *, interval: float = WIDGET_INTERVAL) -> None:
        import ipywidgets as w

        self.interval = interval
        self._last = float("-inf")
        self._handle: DisplayHandle | None = None
        self.bar = w.IntProgress(value=0, min=0, max=1, bar_style="info", layout=w.Layout(width="100%"))
        self.stats = w.HTML(value="", layout=w.Layout(width="100%"))
        self.stats.add_class("compass-map-progress")
        self.widget = w.VBox([self.bar, self.stats], layout=w.Layout(width="100%"))
        self.widget.add_class("compass-map")
        self.renders = 0

    def start(self, state: ProgressState) -> None:
        self.bar.max = max(1, state.total)
        self._render(state)
        bundle = dict(self.widget._repr_mimebundle_())
        bundle.update(_EMPTY)  # the first state nbval compares: empty, as the saved one ends
        self._handle = _display(bundle, display_id=True)

    def update(self, state: ProgressState) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._render(state)

    def _render(self, state: ProgressState) -> None:
        self.bar.value = min(state.finished, self.bar.max)
        self.bar.bar_style = "warning" if state.failed else "info"
        value = progress_html(state)
        if value != self.stats.value:
            self.stats.value = value
            self.renders += 1

    def finish(self, summary: Summary) -> None:
        bundle = summary_bundle(summary)
        self.bar.max = max(1, summary.total)
        self.bar.value = min(summary.done + summary.failed, self.bar.max)
        self.bar.bar_style = "success" if not (summary.failed or summary.pending) else "warning"
        self.stats.value = bundle["text/html"]
        if self._handle is not None:
            self._handle.update(dict(_EMPTY), raw=True)
            self._handle = None
        _display({**self.widget._repr_mimebundle_(), **bundle})


class PlainProgress(BatchObserver):
    """The progress as one line of text and HTML, updated in place; the summary as a new output."""

    def __init__(self, *, interval: float = PLAIN_INTERVAL) -> None:
        self.interval = interval
        self._last = float("-inf")
        self._handle: DisplayHandle | None = None

    def start(self, state: ProgressState) -> None:
        self._handle = _display(dict(_EMPTY), display_id=True)
        self._last = time.monotonic()

    def update(self, state: ProgressState) -> None:
        now = time.monotonic()
        if self._handle is not None and now - self._last >= self.interval:
            self._last = now
            self._handle.update({"text/plain": progress_line(state), "text/html": progress_html(state)}, raw=True)

    def finish(self, summary: Summary) -> None:
        if self._handle is not None:
            self._handle.update(dict(_EMPTY), raw=True)
            self._handle = None
        _display(summary_bundle(summary))


class TerminalProgress(BatchObserver):
    """A line on stderr rewritten in place (only on a terminal); the summary at the end."""

    def __init__(self, *, interval: float = PLAIN_INTERVAL, stream: Any = None) -> None:
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self._last = float("-inf")
        self._width = 0
        self._live = bool(getattr(self.stream, "isatty", lambda: False)())

    def update(self, state: ProgressState) -> None:
        now = time.monotonic()
        if not self._live or now - self._last < self.interval:
            return
        self._last = now
        line = progress_line(state).splitlines()[0]
        self.stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self.stream.flush()

    def finish(self, summary: Summary) -> None:
        if self._live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
        if shell is not None:
            _display(summary_bundle(summary))  # a terminal IPython prints the text; tests capture it
        else:
            print(summary_text(summary))
