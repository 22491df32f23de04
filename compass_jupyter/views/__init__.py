"""Views of a reply while it arrives and once it is done.

A view is an observer of one turn: the engine calls ``on_delta(delta)`` for each
chunk (and ``on_tool(call)`` / ``on_round(reply)`` in a tool loop), ``warning(text)``
shows a warning about the turn (once), then the
caller ends it with ``finish(reply)`` or ``fail(reply, error)``. A compare view
hands out one observer per model (called from worker threads) and renders in
``poll()`` on the thread that owns the display.

:func:`live_view` and :func:`compare_view` choose the view from the ``view``
setting: ``widget`` (:mod:`.widget`, live panels), ``plain`` (:mod:`.plain`, plain
mime outputs that every front end shows), or ``auto``: widgets inside a Jupyter
kernel that has ipywidgets, plain elsewhere (a terminal IPython, a script).
Both leave one final output per cell in a saved notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..reply import Reply, ToolCall
    from ..stream import Delta, Observer

__all__ = ["CompareView", "ReplyView", "compare_view", "live_view"]


class ReplyView(Protocol):
    def on_delta(self, delta: Delta) -> None: ...

    def warning(self, message: str) -> None: ...

    def on_tool(self, call: ToolCall) -> None: ...

    def on_round(self, reply: Reply) -> None: ...

    def finish(self, reply: Reply) -> None: ...

    def fail(self, reply: Reply | None, error: BaseException | str) -> None: ...


class CompareView(Protocol):
    def observer(self, model: str) -> Observer: ...

    def observers(self) -> dict[str, Observer]: ...

    def warning(self, message: str) -> None: ...

    def poll(self) -> None: ...

    def finish(self, replies: list[Reply]) -> None: ...

    def fail(self, error: BaseException | str, *, interrupted: bool = False) -> None: ...


def live_view(*, fmt: str = "markdown", stream: bool = True, **options: Any) -> ReplyView:
    """The view for one reply; ``stream=False`` shows only the final output."""
    if use_widgets():
        from .widget import LiveReplyView

        return LiveReplyView(fmt=fmt, live=stream, **options)
    from .plain import PlainLiveView

    return PlainLiveView(fmt=fmt, live=stream, **options)


def compare_view(models: list[str], *, fmt: str = "markdown", stream: bool = True, pick: int = 0, **options: Any) -> CompareView:
    """The view for several models answering the same turn side by side."""
    if use_widgets():
        from .widget import CompareView as WidgetCompareView

        return WidgetCompareView(models, fmt=fmt, live=stream, pick=pick, **options)
    from .plain import PlainCompareView

    return PlainCompareView(models, fmt=fmt, live=stream, pick=pick, **options)


def use_widgets() -> bool:
    """Whether replies render as widgets, per the ``view`` setting."""
    from ..settings import config

    choice = config.get("view")
    if choice == "plain":
        return False
    from .widget import widgets_available

    return choice == "widget" or widgets_available()
