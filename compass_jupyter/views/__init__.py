"""Views of a reply while it arrives and once it is done.

A view is the observer of one turn (a :class:`~compass_jupyter.turn.TurnObserver`,
passed as ``Session.chat(..., observer=view)``): the engine calls ``on_delta(delta)``
for each chunk (and ``on_round(reply)`` / ``on_tool(call)`` in a tool loop) and asks
``cancelled()`` between chunks (``view.stop()`` makes it True: a Stop button);
``warning(text)`` shows a warning about the turn (once), then the caller ends it with
``finish(reply)`` or ``fail(reply, error)``. A compare view is a
:class:`~compass_jupyter.turn.CompareObserver`: it hands out one observer per model
(called from worker threads) and renders in ``poll()`` on the thread that owns the
display.

:func:`live_view` and :func:`compare_view` choose the view from the ``view``
setting: ``widget`` (:mod:`.widget`, live panels), ``plain`` (:mod:`.plain`, plain
mime outputs that every front end shows), or ``auto``: widgets inside a Jupyter
kernel that has ipywidgets, plain elsewhere (a terminal IPython, a script).
Both leave one final output per cell in a saved notebook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..turn import CompareObserver, TurnObserver

if TYPE_CHECKING:
    from ..reply import Reply

__all__ = ["CompareView", "ReplyView", "compare_view", "live_view"]


class ReplyView(TurnObserver, Protocol):
    def warning(self, message: str) -> None: ...

    def stop(self) -> None: ...

    def finish(self, reply: Reply) -> None: ...

    def fail(self, reply: Reply | None, error: BaseException | str) -> None: ...


class CompareView(CompareObserver, Protocol):
    def warning(self, message: str) -> None: ...

    def stop(self) -> None: ...

    def finish(self, replies: list[Reply]) -> None: ...

    def fail(self, error: BaseException | str, *, interrupted: bool = False) -> None: ...


def live_view(*, fmt: str = "markdown", stream: bool = True, **options: Any) -> ReplyView:
    """The view for one reply; ``stream=False`` shows only the final output."""
    if use_widgets():
        from .widget import LiveReplyView

        return LiveReplyView(fmt=fmt, live=stream, **options)
    from .plain import PlainLiveView

    return PlainLiveView(fmt=fmt, live=stream, **options)


def compare_view(
    models: list[str], *, fmt: str = "markdown", stream: bool = True, pick: int = 0, **options: Any
) -> CompareView:
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
