"""``%compass log``: stored exchanges as a table, and the heading of one shown again.

Rows are the store's (see :mod:`compass_jupyter.store.db`); times are shown in
the machine's local time, texts shortened to one line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping, Sequence

from .tables import table_bundle

__all__ = ["LOG_COLUMNS", "log_bundle", "exchange_heading", "local_time", "one_line"]

LOG_COLUMNS = ("id", "when", "model", "prompt", "reply", "tokens", "seconds", "status")
PROMPT_WIDTH, REPLY_WIDTH = 48, 64


def one_line(text: Any, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def local_time(at: str | None) -> str:
    """A stored ISO UTC time in the machine's local time, to the second."""
    if not at:
        return ""
    try:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return at
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _status(row: Mapping[str, Any]) -> str:
    if row.get("error_class"):
        return f"error: {row['error_class']}"
    if row.get("interrupted"):
        return "interrupted"
    if row.get("incomplete"):
        return "incomplete"
    return row.get("finish_reason") or ""


def _model(row: Mapping[str, Any]) -> str:
    asked, answered = row.get("model") or "?", row.get("answered_by")
    return asked if not answered or answered == asked else f"{asked} → {answered}"


def _tokens(row: Mapping[str, Any]) -> str:
    total = row.get("total_tokens")
    if total is None:
        return ""
    return f"{total} ({row.get('prompt_tokens') or 0} + {row.get('completion_tokens') or 0})"


def log_bundle(rows: Sequence[Mapping[str, Any]], *, what: str) -> dict[str, Any]:
    """The table of ``rows`` (newest first); ``what`` says what was asked for, for the title."""
    shown = [
        [
            row["id"],
            local_time(row.get("at")),
            _model(row),
            one_line(row.get("prompt"), PROMPT_WIDTH),
            one_line(row.get("text") if row.get("text") is not None else row.get("error_message"), REPLY_WIDTH),
            _tokens(row),
            f"{row['latency']:.2f}" if isinstance(row.get("latency"), (int, float)) else "",
            _status(row),
        ]
        for row in rows
    ]
    note = "%compass log show ID shows one as it was shown; cj.log(...) returns them as a DataFrame."
    return table_bundle(LOG_COLUMNS, shown, title=f"Stored exchanges, newest first: {what}", note=note)


def exchange_heading(row: Mapping[str, Any]) -> str:
    """One line above a stored reply shown again: which exchange, when, where, what was asked."""
    parts = [f"Exchange {row['id']}", local_time(row.get("at"))]
    if row.get("notebook"):
        parts.append(str(row["notebook"]))
    parts.append(f"asked: {one_line(row.get('prompt'), 80)}")
    return " · ".join(parts)
