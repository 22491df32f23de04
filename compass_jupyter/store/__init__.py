"""Every exchange kept: the SQLite store, the replay cache, cassettes, and ``cj.log``.

``records`` is the one format of a stored reply, ``db`` the SQLite file,
``cassette`` the JSON files of a recorded run, ``exchanges`` what the client asks
before sending and tells after, ``search`` what ``%compass log`` and ``cj.log`` read.
"""

from __future__ import annotations

from typing import Any

__all__ = ["log"]


def log(q: str | None = None, model: str | None = None, n: int = 20, **filters: Any) -> Any:
    """The stored exchanges, newest first: a pandas DataFrame when pandas is installed, else a list of dicts.

    ``q``: words that must all occur in the prompt or the reply (full-text search);
    ``model``: the model asked or answering; ``n``: how many; ``since`` (a date or
    ISO time), ``notebook`` (a path; True for the running notebook) as in ``%compass log``.
    """
    from .search import records

    return records(q=q, model=model, n=n, **filters)
