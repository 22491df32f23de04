"""Several models' replies to one turn, side by side: the one rendering of compare mode.

:func:`compare_bundle` is the finished output of both compare views (the plain
one shows it all; the widget one keeps its HTML and text beside the widget).
Each form says the same, model by model: its name (and which reply the history
keeps), whether it is partial or failed, its text, and its status line. HTML
puts the models in columns, markdown and text one after the other.

A column is named by the model that answered. Given the models that were asked
for (``asked``), a column whose answer came from another model says both,
``gpt-4o → smollm2-135m-instruct``: the local model answers whatever id is named,
and a column must not pass its answer off as the asked model's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

from .markup import FONT_SMALL, MUTED, escape, format_body
from .notices import warnings_html
from .reply import body_markdown, choice_texts, reply_body_html
from .status import status_html, status_markdown

if TYPE_CHECKING:
    from ..reply import Reply

__all__ = ["KEPT", "compare_bundle", "compare_html", "compare_label", "compare_live_bundle", "compare_note"]

KEPT = " · kept in history"  # after the name of the model whose reply the conversation keeps


def compare_label(reply: Reply, index: int, asked: Sequence[str] | None = None) -> str:
    """The column's name: the model that answered, after the one asked for when they differ."""
    answered = reply.model or reply.request.get("model")
    wanted = asked[index] if asked is not None and index < len(asked) else None
    if wanted and answered and wanted != answered:
        return f"{wanted} → {answered}"
    return answered or wanted or f"model {index + 1}"


def compare_note(reply: Reply) -> str:
    """What went wrong with one model's reply ('' when nothing did)."""
    if reply.error:
        return f"error: {reply.error}"
    if reply.interrupted:
        return "interrupted: the reply is partial"
    if reply.incomplete:
        return "incomplete: the reply is partial"
    return ""


def compare_html(
    replies: Sequence[Reply],
    fmt: str = "markdown",
    *,
    kept: int | None = None,
    warnings: Sequence[str] = (),
    asked: Sequence[str] | None = None,
) -> str:
    """A table with a column per model: name, note, the rendered reply, its status line; then ``warnings``."""
    if not replies:
        return warnings_html(warnings)
    width = f"{100 / len(replies):.2f}%"
    head_cell = "padding:4px 8px;border-bottom:2px solid #8886;text-align:left;vertical-align:bottom"
    cell = f"padding:4px 8px;vertical-align:top;text-align:left;width:{width};border-right:1px solid #8883"
    heads, bodies, stats = [], [], []
    for i, reply in enumerate(replies):
        badge = (
            f' <span style="{FONT_SMALL};font-weight:400;{MUTED}">{escape(KEPT.lstrip())}</span>' if kept == i else ""
        )
        heads.append(f'<th style="{head_cell}">{escape(compare_label(reply, i, asked))}{badge}</th>')
        note = compare_note(reply)
        shown = (
            f'<div class="compass-compare-note" style="color:#b35c00;margin-bottom:4px">⚠ {escape(note)}</div>'
            if note
            else ""
        )
        bodies.append(f'<td style="{cell}">{shown}{reply_body_html(reply, fmt)}</td>')
        stats.append(f'<td style="{cell};border-top:1px solid #8884">{status_html(reply)}</td>')
    return (
        '<table class="compass-compare" style="border-collapse:collapse;width:100%;table-layout:fixed">'
        f"<thead><tr>{''.join(heads)}</tr></thead>"
        f"<tbody><tr>{''.join(bodies)}</tr><tr>{''.join(stats)}</tr></tbody></table>"
    ) + warnings_html(warnings)


def _text(reply: Reply, fmt: str) -> str:
    text = "\n\n".join(choice_texts(reply))
    if fmt == "json":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except json.JSONDecodeError:
            pass
    return text


def compare_bundle(
    replies: Sequence[Reply],
    fmt: str = "markdown",
    *,
    kept: int | None = None,
    warnings: Sequence[str] = (),
    asked: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The replies as HTML (columns), markdown and text (sections). ``warnings`` go in the HTML.

    ``asked``: the models asked for, one per reply, so a column another model answered says so.
    """
    sections, texts = [], []
    for i, reply in enumerate(replies):
        label = compare_label(reply, i, asked) + (KEPT if kept == i else "")
        note = compare_note(reply)
        body = "\n\n".join(body_markdown(reply, fmt)) or "*(no text)*"
        sections.append(
            f"### {label}\n\n" + (f"*⚠ {note}*\n\n" if note else "") + f"{body}\n\n{status_markdown(reply)}"
        )
        texts.append(
            f"== {label} ==\n" + (f"[{note}]\n" if note else "") + f"{_text(reply, fmt)}\n{reply.status_line()}"
        )
    return {
        "text/html": compare_html(replies, fmt, kept=kept, warnings=warnings, asked=asked),
        "text/markdown": "\n\n---\n\n".join(sections),
        "text/plain": "\n\n".join(texts),
    }


def compare_live_bundle(columns: Sequence[tuple[str, str | None]], fmt: str = "markdown") -> dict[str, Any]:
    """Replies still arriving, as markdown and text: (model, text so far, or None before the first chunk)."""
    sections, texts = [], []
    for model, text in columns:
        state = "waiting…" if text is None else "receiving…"
        body = format_body(text, fmt) if text else ""
        sections.append(f"**{model}** · <sub>{state}</sub>\n\n{body}".rstrip())
        texts.append(f"== {model} ==\n{text or ''}")
    return {"text/markdown": "\n\n---\n\n".join(sections), "text/plain": "\n\n".join(texts)}
