"""Reading the store: ``%compass log`` and ``cj.log`` queries, and a stored reply rebuilt as it was shown."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from .._exceptions import StoreError, ValidationError
from ..reply import Reply
from .context import notebook_path
from .db import COLUMNS, Query, Row
from .exchanges import current_store, store_path

__all__ = ["parse_since", "search", "records", "stored_reply", "LISTED"]

# What a record shows by default (``cj.log``); the request and reply JSON stay in the row for whoever asks.
LISTED = (
    "id",
    "at",
    "model",
    "answered_by",
    "prompt",
    "text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency",
    "notebook",
    "error_class",
    "error_message",
)
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, *, now: datetime | None = None) -> str:
    """A date, an ISO time, 'today', 'yesterday' or an age like 2h / 3d, as the ISO UTC time it means."""
    now = now or datetime.now(timezone.utc)
    word = text.strip().lower()
    if word in ("today", "yesterday"):
        day = now.date() - timedelta(days=1 if word == "yesterday" else 0)
        return f"{day.isoformat()}T00:00:00.000Z"
    relative = _RELATIVE.match(word)
    if relative:
        since = now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        return since.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text.strip()), datetime.min.time())
        except ValueError:
            raise ValidationError(
                f"--since takes a date or time (2026-11-25, 2026-11-25T14:00), 'today', 'yesterday' or an age "
                f"like 2h or 3d (got {text!r})."
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _store_or_refuse() -> Any:
    store = current_store()
    if store is None:
        raise StoreError(
            "The exchange store is off (store=off), so there is nothing to search. "
            "Turn it on with %compass set store=default (or a path)."
        )
    return store


def search(
    q: str | None = None,
    model: str | None = None,
    n: int = 20,
    since: str | None = None,
    notebook: str | bool | None = None,
) -> list[Row]:
    """Matching exchanges, newest first, as full rows."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValidationError(f"n must be a whole number of at least 1 (got {n!r}).")
    if notebook is True:
        notebook = notebook_path()
        if notebook is None:
            raise ValidationError(
                "This kernel does not know its notebook's path, so --notebook cannot filter by it. "
                "Leave out --notebook, or search by words with -q."
            )
    query = Query(
        text=q or None,
        model=model or None,
        limit=n,
        since=parse_since(since) if since else None,
        notebook=notebook or None,
    )
    return _store_or_refuse().search(query)


def records(
    q: str | None = None,
    model: str | None = None,
    n: int = 20,
    since: str | None = None,
    notebook: str | bool | None = None,
    full: bool = False,
) -> Any:
    """:func:`search` as a pandas DataFrame when pandas is installed, else a list of dicts.

    The listed columns by default; ``full=True`` adds the request body and the stored reply (JSON text).
    """
    rows = search(q=q, model=model, n=n, since=since, notebook=notebook)
    columns = COLUMNS if full else LISTED
    picked = [{name: row.get(name) for name in columns} for row in rows]
    try:
        import pandas
    except ImportError:
        return picked
    frame = pandas.DataFrame(picked, columns=list(columns))
    frame["at"] = pandas.to_datetime(frame["at"], utc=True)
    return frame.set_index("id")


def stored_reply(exchange_id: int) -> tuple[Reply, Row]:
    """The stored exchange ``exchange_id`` rebuilt as the Reply that was shown, with its row."""
    from ..stream import Accumulator

    store = _store_or_refuse()
    row = store.get(exchange_id)
    if row is None:
        raise ValidationError(
            f"The store {store_path()} has no exchange {exchange_id}. %compass log lists the ids of the newest ones."
        )
    try:
        request = json.loads(row["request"])
    except (json.JSONDecodeError, TypeError):
        request = {}
    reply = Reply(model=row.get("model"), request=request if isinstance(request, dict) else {})
    if row.get("reply"):
        try:
            Accumulator(reply).feed_completion(json.loads(row["reply"]))
        except (json.JSONDecodeError, TypeError):
            raise StoreError(
                f"The stored reply of exchange {exchange_id} in {store_path()} cannot be read (the row was edited?)."
            ) from None
    if reply.first.tool_calls:
        _fill_tool_results(store, reply, row)
    reply.incomplete = bool(row.get("incomplete"))
    reply.interrupted = bool(row.get("interrupted"))
    reply.latency.ttft = row.get("ttft")
    reply.latency.total = row.get("latency")
    reply.latency.tokens_per_s = row.get("tokens_per_s")
    if row.get("error_message"):
        reply.error = row["error_message"]
    return reply, row


def _fill_tool_results(store: Any, reply: Reply, row: Row) -> None:
    """What each tool call returned, from the next request of the same run (which sent the results)."""
    wanted = {call.id: call for call in reply.first.tool_calls if call.id}
    for later in store.following(row["id"], row.get("session")):
        try:
            messages = json.loads(later["request"]).get("messages") or []
        except (json.JSONDecodeError, TypeError, AttributeError):
            continue
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "tool" and message.get("tool_call_id") in wanted:
                call = wanted.pop(message["tool_call_id"])
                call.content = call.result = message.get("content")
        if not wanted:
            return
