"""``%%compass``: options and body in, a streamed reply out.

The order matters for "nothing sent, history unchanged": the option line is
parsed and the body interpolated before the session is touched, and the session
validates the request (ranges, the key) before it sends or resets anything.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from .._exceptions import CompassError, ValidationError
from . import display
from .interpolate import interpolate
from .options import CellOptions, parse, usage

__all__ = ["run"]


def _message(cell: str) -> str:
    # A cell ends with a newline and may start with blank lines; neither is part of the message.
    return cell.rstrip().lstrip("\r\n")


def run(shell: Any, line: str, cell: str) -> Any:
    """Run one ``%%compass`` cell in ``shell``; problems the user can fix raise ``UsageError``."""
    try:
        options = parse(line, shell.user_ns)
        if options.help:
            display.text(usage())
            return None
        if options.over is not None:  # the body is a template filled per row, not from the notebook alone
            from .over import run as run_over

            return run_over(shell, options, _message(cell or ""))
        text = interpolate(_message(cell or ""), shell.user_ns)
        if not text.strip() and not options.has_media:
            raise ValidationError(
                "The cell has no message: write it on the lines below %%compass (the first line holds only options)."
            )
    except CompassError as exc:
        raise display.error(exc) from None

    def store(result: Any) -> None:
        # Also a partial reply (interrupted, broken off), so it can be looked at.
        if options.out and result is not None:
            shell.user_ns[options.out] = result

    if options.compare:
        _compare(text, options, store)
    else:
        _chat(text, options, store)
    return None


@contextmanager
def _warnings_to(show: Callable[[str], None]) -> Iterator[None]:
    """Show the engine's CompassWarnings as short lines, every time, as soon as they are issued.

    Python's own display (file:line plus source, once per location) suits scripts, not a cell
    that may be run many times. Warnings issued on compare mode's worker threads are left to
    the view, which shows each reply's ``warnings`` from the display's thread. A notice (where
    the reply comes from) is information, not a problem: an info line, not a warning.
    """
    from .._exceptions import CompassNotice, CompassWarning

    main = threading.current_thread()
    with warnings.catch_warnings():
        warnings.simplefilter("always", CompassWarning)
        original = warnings.showwarning

        def showwarning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if not issubclass(category, CompassWarning):
                original(message, category, *args, **kwargs)
            elif threading.current_thread() is main:
                (display.info if issubclass(category, CompassNotice) else show)(str(message))

        warnings.showwarning = showwarning
        yield


def _chat(text: str, options: CellOptions, store: Callable[[Any], None]) -> None:
    from ..conversation import session
    from ..views import live_view

    view = live_view(fmt=options.fmt, stream=options.kwargs.get("stream", True), warn=display.warning)
    try:
        with _warnings_to(view.warning):
            reply = session().chat(text, observer=view, **options.kwargs)
    except KeyboardInterrupt as stop:
        partial = getattr(stop, "reply", None)
        view.fail(partial, stop)
        store(partial)
        raise display.error(_interrupted(partial, history=options.kwargs.get("history", True))) from None
    except CompassError as exc:
        view.fail(exc.reply, exc)
        store(exc.reply)
        raise display.error(exc) from None
    view.finish(reply)
    store(reply)


def _interrupted(partial: Any, *, history: bool) -> str:
    """What an interrupt did, as it happened: kept a partial reply, or stopped before one arrived."""
    if partial is None:
        return (
            "Interrupted before a reply arrived (while waiting to retry): nothing was received and the "
            "conversation is unchanged."
        )
    if not partial.has_content:
        return "Interrupted before the first word of the reply: the connection was closed and the conversation is unchanged."
    recorded = (
        "the history records this turn as incomplete (it is not sent again)."
        if history
        else "this turn was not part of the history (--no-history)."
    )
    return f"Interrupted: the connection was closed and the partial reply above is kept; {recorded}"


def _compare(text: str, options: CellOptions, store: Callable[[Any], None]) -> None:
    from ..conversation import session
    from ..views import compare_view

    view = compare_view(
        options.models,
        fmt=options.fmt,
        stream=options.kwargs.get("stream", True),
        pick=options.pick,
        warn=display.warning,
    )
    try:
        with _warnings_to(view.warning):
            replies = session().compare(text, models=options.models, pick=options.pick, observer=view, **options.kwargs)
    except KeyboardInterrupt as stop:
        view.fail(stop, interrupted=True)
        raise display.error(
            "Interrupted: the partial replies above are kept; the history records this turn as incomplete."
        ) from None
    except CompassError as exc:
        view.fail(exc)
        raise display.error(exc) from None
    view.finish(replies)
    # Each model's worker issued the server's notices; they are shown once, as quiet lines.
    for notice in dict.fromkeys(line for reply in replies for line in reply.notices):
        display.info(notice)
    store(replies)
