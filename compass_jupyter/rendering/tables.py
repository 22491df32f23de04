"""Tables as HTML, markdown and aligned text: the generic table and the magics' settings, catalog and help.

A table is a title, column names, rows of values (None shows as an empty cell)
and a note under it (its lines kept as lines); each form shows all four. HTML
escapes every value.
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


def _lines(note: str) -> str:
    """A note escaped for HTML (and markdown's inline HTML), each of its lines kept as a line."""
    return "<br>".join(escape(line) for line in note.splitlines())


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
    note_html = f"<p><small>{_lines(note)}</small></p>" if note else ""
    return f"{title_html}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note_html}"


def table_markdown(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None, note: str | None = None
) -> str:
    md = [f"**{title}**", ""] if title else []
    md.append("| " + " | ".join(markdown_cell(c) for c in columns) + " |")
    md.append("|" + "|".join("---" for _ in columns) + "|")
    md += ["| " + " | ".join(markdown_cell(v) for v in row) + " |" for row in _cells(rows)]
    if note:
        md += ["", f"<sub>{_lines(note)}</sub>"]
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


CONFIG_TITLE = "Compass settings"


def config_bundle(rows: Iterable[Sequence[Any]], *, answers: str | None = None) -> dict[str, Any]:
    """``%compass config``: (setting, value, source) rows, the key already masked.

    ``answers`` (what the next request reaches, in words) is a line under the title, above
    the table: the settings may name Compass while the local model answers.
    """
    table = table_bundle(
        ["setting", "value", "source"],
        rows,
        note="Precedence: inline option > %compass set / %config Compass.x > environment variable > default.",
    )
    html = f"<p><b>{escape(CONFIG_TITLE)}</b></p>"
    markdown = f"**{CONFIG_TITLE}**\n\n"
    text = f"{CONFIG_TITLE}\n"
    if answers:
        html += f"<p class='compass-answers'>Will answer: <b>{escape(answers)}</b></p>"
        markdown += f"Will answer: **{escape(answers)}**\n\n"
        text += f"Will answer: {answers}\n"
    return {
        "text/html": html + table["text/html"],
        "text/markdown": markdown + table["text/markdown"],
        "text/plain": text + table["text/plain"],
    }


def catalog_bundle(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``%compass models``: one row per documented model (``catalog.table()``), its keys as columns.

    The note under the table is the legend of its marks (``catalog.MARKS``), one per line.
    """
    from ..catalog import MARKS

    columns = list(rows[0]) if rows else []
    legend = [f"{mark} = {meaning}" for mark, meaning in MARKS.items()]
    legend.append("Model ids not listed here are sent too, with a warning.")
    return table_bundle(
        columns,
        [[row[c] for c in columns] for row in rows],
        title="Compass models (from the reference)",
        note="\n".join(legend),
    )
