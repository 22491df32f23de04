"""Prompts over data: one template, many rows, answered concurrently within budgets, resumable.

``cj.map(template, rows, ...)`` fills ``template`` from each row (as ``%%compass``
fills a cell from the notebook: same escapes, same refusals), sends one request
per row, and returns the answers in the rows' shape. The parts:

- :mod:`.rows` reads the input and gives each row's names; :mod:`.plan` checks
  everything before anything is sent and sorts the rows an earlier run answered
  (:mod:`.memo`) from those to send;
- :mod:`.runner` sends them on one async client in a thread of its own, at most
  ``concurrency`` at a time, within the ``rpm`` / ``tpm`` budgets of :mod:`.budget`,
  slowing every worker on a 429; Ctrl-C stops it and keeps what finished;
- :mod:`.progress` counts what happened for a view (views live in
  :mod:`compass_jupyter.views.progress`; the engine imports none) and sums it up;
- :mod:`.results` shapes the answers like the input.

This package imports neither IPython nor ipywidgets: a view is chosen (and
imported) only when ``cj.map`` shows progress.
"""

from __future__ import annotations

import re
import sys
import warnings
from typing import TYPE_CHECKING, Any, Mapping

from .._exceptions import CompassWarning
from .progress import SILENT, BatchObserver, Summary
from .results import DictResult, ListResult, RowError, shape

if TYPE_CHECKING:
    from .plan import Call

__all__ = ["BatchObserver", "DictResult", "ListResult", "RowError", "Summary", "map", "run_map"]


def map(  # noqa: A001  # cj.map: the name the contract gives
    template: str,
    rows: Any,
    *,
    model: str | None = None,
    concurrency: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    replies: bool = False,
    resume: bool = True,
    progress: bool | BatchObserver = True,
    **fields: Any,
) -> Any:
    """Send ``template`` filled from each row of ``rows``; the answers come back in the rows' shape.

    ``rows``: a pandas DataFrame (``{column}`` names a column, ``{index}`` the index
    label), a Series (``{row}``), a list of dicts (``{key}``) or of strings (``{row}``),
    a list of file paths or a folder (``{text}``, ``{name}``, ``{path}``), a dict of rows,
    or any iterable. ``{{`` and ``}}`` are literal braces.

    Returns a list for a list or iterable, a dict for a dict or a folder, and for a
    DataFrame or Series a Series aligned with its index (for JSON replies,
    ``response_format={"type": "json_object"}`` or a schema, a DataFrame with a
    column per key). Each answer is the reply's text (parsed, for JSON); a failed row
    holds a :class:`RowError` that shows its error, and never stops the others.
    ``result.summary`` (``result.attrs["summary"]`` for pandas) says how many rows
    were answered and why others failed. ``replies=True`` keeps the whole
    :class:`~compass_jupyter.reply.Reply` of each row instead of its text.

    ``concurrency`` (requests in flight), ``rpm`` and ``tpm`` (requests and tokens
    per minute, 0 for none) default to the settings of the same names. Budgets
    count every request that leaves (retries too) over a sliding minute, and a
    429 pauses every worker for its Retry-After and halves the concurrency, which
    then grows back.

    Running the same call again (same template, rows, model and fields) sends only
    the rows not answered yet: after an interrupt (Ctrl-C keeps every finished
    row), after failures, or with rows added. Across a kernel restart the store of
    every exchange answers the rows it holds (the replay cache is on for the rows
    of ``cj.map`` unless ``cache="off"``); ``resume=False`` asks every row again.

    Every other keyword is ``cj.chat``'s: ``system=`` (default: the conversation's
    system message; rows never read or write the history), ``stream=`` (default
    False), ``images=``, ``client=``, ``extra_body=``, ``cache=`` and request fields by
    their documented names (``temperature=0``, ``max_tokens=50``, ``response_format=...``).
    ``progress``: show a live panel (True), nothing (False), or a
    :class:`BatchObserver` of your own. Problems with the call (an empty frame, a
    template naming a missing column, a bad limit) raise a ``ValidationError`` and
    send nothing.
    """
    return run_map(
        template,
        rows,
        model=model,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        replies=replies,
        resume=resume,
        progress=progress,
        **fields,
    )


def run_map(
    template: str,
    rows: Any,
    *,
    progress: bool | BatchObserver = True,
    fallback: Mapping[str, Any] | None = None,
    again: str = "the same call",
    **options: Any,
) -> Any:
    """:func:`map` with two more knobs for ``%%compass --over``.

    ``fallback``: names the template may use besides the row's (the notebook's
    variables; a row's own names win). ``again``: what the summary tells you to
    run again to resume ("the cell").
    """
    from . import plan, runner

    call = plan.prepare(template, rows, fallback=fallback, **options)
    view = _view(progress)
    view.start(call.progress.snapshot())
    if call.jobs:
        engine = runner.Engine(call.plan, call.jobs, call.values, call.answers, call.progress)
        call.progress.begin()
        try:
            with warnings.catch_warnings():
                # Shown once when the call was checked; every row's request would say them again.
                for message in call.warned:
                    warnings.filterwarnings("ignore", message=re.escape(message), category=CompassWarning)
                runner.run(engine, view)
        except KeyboardInterrupt as stop:
            _end(call, view, stop, silent=view is SILENT, interrupted=True, again=again)
            raise
        if engine.fatal is not None:
            stopped = f"every row would fail the same way. {engine.fatal}"
            _end(call, view, engine.fatal, silent=False, stopped=stopped, again=again)
            raise engine.fatal
    summary = call.progress.summary(again=again)
    view.finish(summary)
    return shape(call.rows, call.values, summary, expand_json=call.expand_json)


def _end(call: Call, view: BatchObserver, error: BaseException, *, silent: bool, again: str, **how: Any) -> None:
    """A run that ends early: the summary shown, the finished rows on ``error.result`` (and its ``.summary``)."""
    summary = call.progress.summary(again=again, **how)
    view.finish(summary)
    if silent and summary.interrupted:  # the one thing a silent run must still say: how to go on
        print(str(summary), file=sys.stderr)
    error.result = shape(call.rows, call.values, summary, expand_json=call.expand_json)  # type: ignore[attr-defined]
    error.summary = summary  # type: ignore[attr-defined]


def _view(progress: bool | BatchObserver) -> BatchObserver:
    if progress is True:
        from ..views.progress import progress_view

        return progress_view()
    if progress is False or progress is None:
        return SILENT
    if not isinstance(progress, BatchObserver):
        from .._exceptions import ValidationError

        raise ValidationError(
            f"progress must be True, False or a BatchObserver (with start, update and finish), "
            f"not {type(progress).__name__}."
        )
    return progress
