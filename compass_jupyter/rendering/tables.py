"""Tables as HTML, markdown and aligned text: the generic table and the magics' settings, catalog and help.

A table is a title, column names, rows of values (None shows as an empty cell)
and a note under it; each form shows all four. HTML escapes every value.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from .markup import escape

__all__ = [
    "catalog_bundle",
    "config_bundle",
    "help_bundle",
    "markdown_cell",
    "table_bundle",
    "table_html",
    "table_markdown",
    "table_text",
]


def markdown_cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _cells(rows: Iterable[Sequence[Any]]) -> list[list[str]]:
    """Every value as the text a cell shows (None: empty)."""
    return [["" if v is None else str(v) for v in row] for row in rows]


def table_html(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None, note: str | None = None
) -> str:
    head = "".join(f"<th style='text-align:left'>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{escape(v)}</td>" for v in row) + "</tr>" for row in _cells(rows)
    )
    title_html = f"<p><b>{escape(title)}</b></p>" if title else ""
    note_html = f"<p><small>{escape(note)}</small></p>" if note else ""
    return f"{title_html}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note_html}"


def table_markdown(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None, note: str | None = None
) -> str:
    md = [f"**{title}**", ""] if title else []
    md.append("| " + " | ".join(markdown_cell(c) for c in columns) + " |")
    md.append("|" + "|".join("---" for _ in columns) + "|")
    md += ["| " + " | ".join(markdown_cell(v) for v in row) + " |" for row in _cells(rows)]
    if note:
        md += ["", f"<sub>{escape(note)}</sub>"]
    return "\n".join(md)


def table_text(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None, note: str | None = None
) -> str:
    """Columns padded to their widest value, a dashed rule under the names."""
    shown = _cells(rows)
    widths = [max([len(c)] + [len(row[i]) for row in shown]) for i, c in enumerate(columns)]
    plain = [title] if title else []
    plain.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    plain.append("  ".join("-" * w for w in widths))
    plain += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in shown]
    if note:
        plain.append(note)
    return "\n".join(plain)


def table_bundle(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None, note: str | None = None
) -> dict[str, Any]:
    """A table as HTML, markdown and aligned plain text."""
    rows = list(rows)
    return {
        "text/html": table_html(columns, rows, title=title, note=note),
        "text/markdown": table_markdown(columns, rows, title=title, note=note),
        "text/plain": table_text(columns, rows, title=title, note=note),
    }


# --------------------------------------------------------------------------- the magics' tables


def help_bundle(rows: Iterable[Sequence[str]]) -> dict[str, Any]:
    """``%compass help``: (command, what it does) rows."""
    return table_bundle(["command", "what it does"], rows, title="compass_jupyter commands")


def config_bundle(rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """``%compass config``: (setting, value, source) rows, the key already masked."""
    return table_bundle(
        ["setting", "value", "source"],
        rows,
        title="Compass settings",
        note="Precedence: inline option > %compass set / %config Compass.x > environment variable > default.",
    )


def catalog_bundle(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``%compass models``: one row per documented model (``catalog.table()``), its keys as columns."""
    columns = list(rows[0]) if rows else []
    return table_bundle(
        columns,
        [[row[c] for c in columns] for row in rows],
        title="Compass models (from the reference)",
        note="yes / no as documented, ? where the documentation is silent. Other ids are sent too, with a warning.",
    )
