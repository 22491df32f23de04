"""``%%compass --over NAME [-o RESULT]``: the cell as a template, sent once per row of a notebook variable.

The engine is ``cj.map`` (:mod:`compass_jupyter.batch`); this is the glue. The
body is filled per row: the row's names first (a DataFrame's columns, ``{row}``,
``{index}``), then the notebook's variables. Every other option of the cell is
``cj.map``'s keyword (model, system, temperature, --json, --param, --image, ...),
and the settings ``concurrency``, ``rpm`` and ``tpm`` apply. With ``-o`` the
answers are stored (in the rows' shape); without it they are shown. Errors are
one paragraph, as for every cell; an interrupt keeps the finished rows (also in
``-o``) and says how many are left to send by running the cell again.
"""

from __future__ import annotations

from typing import Any

from .._exceptions import CompassError, ValidationError
from . import display
from .cell import _warnings_to
from .options import CellOptions

__all__ = ["run"]


def _rows(shell: Any, options: CellOptions) -> Any:
    name = options.over
    assert name is not None
    if options.compare:
        raise ValidationError(
            "--over sends the rows to one model; -m with several models (compare mode) does not apply. "
            "Run the cell once per model, e.g. -m gpt-4o and then -m gpt-4.1."
        )
    if name not in shell.user_ns:
        raise ValidationError(
            f"--over names {name!r}, which is not defined in the notebook, so nothing was sent. "
            f"Define it first (e.g. {name} = pd.read_csv(...) or {name} = [...]) and run that cell."
        )
    return shell.user_ns[name]


def run(shell: Any, options: CellOptions, template: str) -> None:
    """Send ``template`` over the rows of ``options.over``; problems the user can fix raise ``UsageError``."""
    from ..batch import run_map

    def store(result: Any) -> None:
        if options.out and result is not None:
            shell.user_ns[options.out] = result

    try:
        rows = _rows(shell, options)
        with _warnings_to(display.warning):
            result = run_map(template, rows, fallback=shell.user_ns, again="the cell", **options.kwargs)
    except KeyboardInterrupt as stop:
        store(getattr(stop, "result", None))
        summary = getattr(stop, "summary", None)
        if summary is None:  # before any row was sent
            raise display.error("Interrupted before any row was sent: nothing was received.") from None
        kept = f" (in {options.out})" if options.out else ""
        left = summary.total - summary.done
        raise display.error(
            f"Interrupted: {summary.done:,} of {summary.total:,} rows are answered and kept{kept}. "
            f"Run the cell again to send only the {left:,} left."
        ) from None
    except CompassError as exc:
        store(getattr(exc, "result", None))
        raise display.error(exc) from None
    if options.out:
        store(result)
    else:
        from IPython.display import display as show

        show(result)
