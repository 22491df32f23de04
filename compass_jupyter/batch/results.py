"""What ``cj.map`` returns: the answers in the shape of the input, a failed row holding its error.

- a list (or any other iterable) -> a :class:`ListResult` (a ``list``), in order;
- a dict, or a folder -> a :class:`DictResult` (a ``dict``) with the same keys
  (a folder's: each file's name);
- a pandas DataFrame or Series -> a Series aligned with its index (named ``reply``), or,
  for JSON replies (``response_format`` json), a DataFrame with one column per
  top-level key and an ``error`` column when a row failed.

Each answer is the reply's text (the parsed value for JSON replies), or the whole
:class:`~compass_jupyter.reply.Reply` with ``replies=True``: texts are what most runs
need, and 100,000 full replies (usage, latency, the request body) cost far more
memory. A failed row holds a :class:`RowError`; a row the run never reached (an
interrupt) holds ``None``. The :class:`~compass_jupyter.batch.progress.Summary` is
``result.summary`` (``result.attrs["summary"]`` for pandas results).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from .progress import Summary
    from .rows import Rows

__all__ = ["DictResult", "ListResult", "RowError", "shape"]


class RowError:
    """A row that failed: it shows its error's message; ``.error`` is the exception itself.

    ``.row`` is the row's label (index label, key or position); ``.text`` the reply's
    text when there was one (a JSON reply that did not parse).
    """

    __slots__ = ("error", "row", "text")

    def __init__(self, error: BaseException, row: Any, text: str | None = None) -> None:
        self.error, self.row, self.text = error, row, text

    @property
    def message(self) -> str:
        return str(self.error) or type(self.error).__name__

    @property
    def reply(self) -> Any:
        """The partial reply the error carried (a stream that broke off), if any."""
        return getattr(self.error, "reply", None)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"RowError({type(self.error).__name__}: {self.message})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowError) and (type(self.error), self.message, self.row) == (
            type(other.error),
            other.message,
            other.row,
        )

    __hash__ = None  # type: ignore[assignment]  # compared by content, like the values around it


class ListResult(list):
    """The answers of a list (or iterable) of rows, in order; ``.summary`` tells how the run went."""

    summary: Summary

    @property
    def errors(self) -> dict[int, RowError]:
        """The failed rows by position."""
        return {i: value for i, value in enumerate(self) if isinstance(value, RowError)}


class DictResult(dict):
    """The answers of a dict (or folder) of rows, by key; ``.summary`` tells how the run went."""

    summary: Summary

    @property
    def errors(self) -> dict[Any, RowError]:
        """The failed rows by key."""
        return {key: value for key, value in self.items() if isinstance(value, RowError)}


def shape(rows: Rows, values: Sequence[Any], summary: Summary, *, expand_json: bool = False) -> Any:
    """``values`` (one per row, in order) in the shape ``rows`` came in."""
    if rows.kind in ("frame", "series"):
        return _pandas(rows, values, summary, expand_json=expand_json)
    if rows.kind in ("mapping", "folder"):
        out: Any = DictResult(zip(rows.labels, values))
    else:
        out = ListResult(values)
    out.summary = summary
    return out


def _pandas(rows: Rows, values: Sequence[Any], summary: Summary, *, expand_json: bool) -> Any:
    import pandas as pd

    index = rows.source.index
    if expand_json:
        records = [_record(value) for value in values]
        frame = pd.DataFrame.from_records(records, index=index) if records else pd.DataFrame(index=index)
        failed = [value if isinstance(value, RowError) else None for value in values]
        if any(failed):
            frame["error" if "error" not in frame.columns else "row_error"] = pd.Series(
                failed, index=index, dtype=object
            )
        frame.attrs["summary"] = summary
        return frame
    series = pd.Series(list(values), index=index, name="reply", dtype=object)
    series.attrs["summary"] = summary
    return series


def _record(value: Any) -> dict[str, Any]:
    """One row's JSON answer as the columns it fills (none for a failed or unsent row)."""
    if value is None or isinstance(value, RowError):
        return {}
    if isinstance(value, dict):
        return value
    return {"value": value}
