"""The rows of ``cj.map``: what each row's template may name, and how the row is called.

What a template can use, per kind of input:

- a pandas DataFrame: each column by its name (``{ticket}``, ``{body}``); ``{index}``
  is the row's index label and ``{row}`` the row as a dict.
- a pandas Series: ``{row}`` is the value (and ``{NAME}`` too, for a Series named NAME);
  ``{index}`` its label.
- a list (tuple, generator, any iterable) or the values of a dict: a dict row gives
  its keys (``{text}``), a file path gives ``{path}``, ``{name}`` and ``{text}`` (the
  file read as UTF-8), anything else is ``{row}``; ``{index}`` is the position (the
  key, for a dict).
- a folder (a ``pathlib.Path`` to a directory): its files (not hidden, in name
  order), each as a file path above.

A row's own names come first: a column called ``index`` or ``row`` wins over the
names given here. Labels (index labels, keys, positions) name rows in errors and
summaries. Reading checks the input only; the template is filled by the engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import ValidationError

__all__ = ["Rows", "read"]

_KINDS_HINT = (
    "Pass a pandas DataFrame (its columns are the template's {names}), a list of dicts or strings "
    "({row} is a string row), a dict, a folder (pathlib.Path), or any other iterable of rows."
)


@dataclass
class Rows:
    """The input, read: its ``kind``, each row's label, and each row's names for the template."""

    kind: str  # frame | series | list | mapping | folder
    source: Any
    labels: list[Any]
    columns: tuple[str, ...] | None = None  # a frame's names (known before any row is read)
    _items: list[Any] = field(default_factory=list, repr=False)  # list, mapping, folder: the row values

    def __len__(self) -> int:
        return len(self.labels)

    def namespaces(self, used: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
        """Each row's names, in order; ``used`` (the template's names) spares work nobody asked for."""
        wanted = frozenset(used)
        if self.kind == "frame":
            yield from self._frame_rows(wanted)
        elif self.kind == "series":
            name = self.source.name if isinstance(self.source.name, str) and self.source.name else None
            for label, value in zip(self.labels, self.source.tolist()):
                ns = {"row": value, "index": label}
                if name is not None:
                    ns[name] = value
                yield ns
        else:
            for label, item in zip(self.labels, self._items):
                yield _item_names(item, label, wanted)

    def _frame_rows(self, wanted: frozenset[str]) -> Iterator[dict[str, Any]]:
        columns = self.columns or ()
        want_row = "row" in wanted and "row" not in columns
        want_index = "index" in wanted and "index" not in columns
        named = [str(c) for c in self.source.columns]
        for label, values in zip(self.labels, self.source.itertuples(index=False, name=None)):
            ns = dict(zip(named, values))
            if want_row:
                ns["row"] = dict(ns)
            if want_index:
                ns["index"] = label
            yield ns

    def available(self, ns: Mapping[str, Any]) -> list[str]:
        """The names a row offers, for a message (the frame's columns, or the row's own keys)."""
        return [str(n) for n in (self.columns if self.columns is not None else ns.keys())]


def _item_names(item: Any, label: Any, wanted: frozenset[str]) -> dict[str, Any]:
    if isinstance(item, Mapping):
        ns: dict[str, Any] = {str(k): v for k, v in item.items()}
        ns.setdefault("row", item)
    elif isinstance(item, os.PathLike):
        path = Path(item)
        ns = {"row": item, "path": str(path), "name": path.name}
        if "text" in wanted:
            ns["text"] = _read_text(path, label)
    else:
        ns = {"row": item}
    ns.setdefault("index", label)
    return ns


def _read_text(path: Path, label: Any) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(
            f"Row {label!r}: {path.name} is not UTF-8 text, so {{text}} cannot hold it and nothing was sent. "
            "Convert it to text first (e.g. extract a PDF's text), or leave it out of the rows."
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"Row {label!r}: {path} cannot be read ({exc.strerror or exc}), so nothing was sent. "
            "Check the path, or leave the file out of the rows."
        ) from None


def _is_pandas(value: Any, *names: str) -> bool:
    # Recognised without importing pandas: importing compass_jupyter must stay cheap.
    cls = type(value)
    return cls.__module__.split(".")[0] == "pandas" and any(c.__name__ in names for c in cls.__mro__)


def read(rows: Any) -> Rows:
    """Read ``rows`` (see the module docstring); a problem is a ValidationError and nothing is sent."""
    if _is_pandas(rows, "DataFrame"):
        read_rows = Rows("frame", rows, list(rows.index), columns=tuple(str(c) for c in rows.columns))
    elif _is_pandas(rows, "Series"):
        read_rows = Rows("series", rows, list(rows.index))
    elif isinstance(rows, (str, bytes, bytearray)):
        raise ValidationError(
            f"rows is a single {type(rows).__name__}, so each of its characters would be a row; nothing was "
            "sent. Wrap it in a list: cj.map(template, [text]). " + _KINDS_HINT
        )
    elif isinstance(rows, os.PathLike) and Path(rows).is_dir():
        files = sorted(p for p in Path(rows).iterdir() if p.is_file() and not p.name.startswith("."))
        read_rows = Rows("folder", rows, [p.name for p in files], _items=files)
    elif isinstance(rows, os.PathLike):
        raise ValidationError(
            f"rows is the path {str(rows)!r}, which is not a folder, so nothing was sent. Pass a folder "
            "(its files are the rows) or a list of file paths."
        )
    elif isinstance(rows, Mapping):
        read_rows = Rows("mapping", rows, list(rows.keys()), _items=list(rows.values()))
    else:
        try:
            items = list(rows)
        except TypeError:
            raise ValidationError(
                f"rows is a {type(rows).__name__}, which is not a collection of rows, so nothing was sent. "
                + _KINDS_HINT
            ) from None
        read_rows = Rows("list", rows, list(range(len(items))), _items=items)
    if not len(read_rows):
        what = {"frame": "DataFrame", "series": "Series", "folder": "folder"}.get(read_rows.kind, "collection")
        raise ValidationError(
            f"rows is an empty {what}: there is nothing to send, so nothing was sent. "
            "Check the filter or the path that made it."
        )
    return read_rows
