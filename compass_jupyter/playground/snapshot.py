"""The playground as a static page: what a saved notebook shows where the widgets cannot be drawn.

A playground's output is a widget view, which only a live kernel can fill: a
saved notebook read on GitHub, in nbconvert, or opened again in JupyterLab with
no kernel (tutorials are saved without the widget state) shows the bundle's
other forms instead. Those forms are a snapshot taken when the cell ran: the
model and the parameters that would be sent, the system message and the
conversation so far, with one line saying it is a snapshot and how to get the
live panel back. Nothing here claims to know what the reader's front end can do.

The key never appears: every text goes through :func:`~compass_jupyter.settings.redact`.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..rendering.markup import FONT_SMALL, MUTED, escape
from ..rendering.transcript import message_html
from ..settings import redact

__all__ = ["SNAPSHOT_NOTE", "snapshot_bundle"]

SNAPSHOT_NOTE = "A snapshot taken when the cell ran; run the cell to use the live playground."


def _value(value: Any) -> str:
    """A request field's value as it is sent (JSON), strings without quotes."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _settings_rows(
    model: str, stream: bool, fields: Mapping[str, Any], compare: Sequence[str]
) -> list[tuple[str, str]]:
    rows = [("model", model), ("stream", "on" if stream else "off")]
    rows += [(name, _value(value)) for name, value in fields.items()]
    if compare:
        rows.append(("compare", ", ".join(compare)))
    return rows


def snapshot_bundle(
    *,
    model: str,
    stream: bool,
    fields: Mapping[str, Any],
    compare: Sequence[str],
    system: str | None,
    messages: Sequence[Mapping[str, Any]],
    transcript: str,
    draft: str = "",
) -> dict[str, str]:
    """``text/html`` and ``text/plain`` of the playground as it is now.

    ``fields``: the request fields the ticked parameters send (the rest are the
    model's defaults); ``compare``: the models picked for comparison;
    ``messages`` and ``transcript``: the conversation as the session keeps it and
    as ``%compass history`` prints it; ``draft``: text typed in the message box
    and not sent yet.
    """
    rows = _settings_rows(model, stream, fields, compare)
    defaults = "" if fields else "no parameter set: the model's defaults apply"
    return {
        "text/html": redact(_html(rows, defaults, system, messages, draft)),
        "text/plain": redact(_text(rows, defaults, transcript, draft)),
    }


def _html(
    rows: list[tuple[str, str]],
    defaults: str,
    system: str | None,
    messages: Sequence[Mapping[str, Any]],
    draft: str,
) -> str:
    cell = "padding:1px 12px 1px 0;text-align:left;vertical-align:top"
    table = "".join(
        f'<tr><td style="{cell};{MUTED}">{escape(name)}</td><td style="{cell}"><code>{escape(value)}</code></td></tr>'
        for name, value in rows
    )
    parts = [
        '<div style="font-size:15px;font-weight:600">Compass playground</div>',
        f'<div style="{FONT_SMALL};{MUTED};margin-bottom:6px">{escape(SNAPSHOT_NOTE)}</div>',
        f'<table class="compass-pg-snapshot-settings" style="{FONT_SMALL};border-collapse:collapse;margin:0">'
        f"<tbody>{table}</tbody></table>",
    ]
    if defaults:
        parts.append(f'<div style="{FONT_SMALL};{MUTED}">{escape(defaults.capitalize())}.</div>')
    conversation = []
    if system:
        conversation.append(message_html({"role": "system", "content": system}))
    conversation += [message_html(m) for m in messages]
    if not conversation:
        conversation.append(f'<div style="{MUTED};font-style:italic;padding:6px 0">No messages yet.</div>')
    parts.append('<div style="margin-top:8px">' + "".join(conversation) + "</div>")
    if draft.strip():
        parts.append(
            f'<div style="{FONT_SMALL};{MUTED};margin-top:6px">In the message box, not sent:</div>'
            f'<div style="white-space:pre-wrap">{escape(draft)}</div>'
        )
    return (
        '<div class="compass-pg-snapshot" style="border:1px solid rgba(128,128,128,.35);border-radius:4px;'
        f'padding:8px 12px;max-width:100%;box-sizing:border-box;overflow-x:auto">{"".join(parts)}</div>'
    )


def _text(rows: list[tuple[str, str]], defaults: str, transcript: str, draft: str) -> str:
    settings = " · ".join(f"{name} {value}" for name, value in rows)
    lines = ["Compass playground", SNAPSHOT_NOTE, settings + (f" ({defaults})" if defaults else "")]
    lines.append(transcript or "No messages yet.")
    if draft.strip():
        lines.append(f"In the message box, not sent: {draft}")
    return "\n".join(lines)
