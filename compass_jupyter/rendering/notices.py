"""Short messages: coloured notices, quiet notes, warnings and the magics' confirmation lines.

A notice's colour says what it is (error red, warning amber, anything else
blue); the reply banners of :mod:`.status` and the playground's notices share it.
"""

from __future__ import annotations

from typing import Any, Sequence

from .markup import FONT_SMALL, MUTED, escape

__all__ = ["message_bundle", "note_html", "notice_html", "notice_style", "preformatted_bundle", "warnings_html"]

NOTICE_COLORS = {"error": ("#c62828", "#fdecea"), "warning": ("#e08a00", "#fff4e0")}  # kind -> (line, background)
INFO_COLORS = ("#4c78a8", "#eef4fb")


def notice_style(kind: str) -> str:
    """The inline style of a notice box of ``kind`` (error, warning, anything else: info)."""
    line, background = NOTICE_COLORS.get(kind, INFO_COLORS)
    return f"border-left:4px solid {line};background:{background};color:#222;padding:6px 10px;margin:6px 0;border-radius:3px"


def notice_html(kind: str, message: str, *, css_class: str | None = None) -> str:
    """``message`` in a coloured box, its line breaks kept (class ``compass-KIND`` unless given)."""
    css = css_class or f"compass-{kind}"
    return f'<div class="{escape(css)}" style="{notice_style(kind)};white-space:pre-wrap">{escape(message)}</div>'


def note_html(text: str) -> str:
    """One small, quiet line (a status, a hint)."""
    return f'<div style="{FONT_SMALL};{MUTED}">{escape(text)}</div>'


def warnings_html(messages: Sequence[str]) -> str:
    """Warnings about a turn (an unknown model, a parameter reserved for other models); '' for none."""
    if not messages:
        return ""
    items = "".join(f"<div>⚠ {escape(m)}</div>" for m in messages)
    return f'<div class="compass-warnings" style="{FONT_SMALL};color:#b35c00;margin:2px 0">{items}</div>'


def message_bundle(message: str, *, detail: str | None = None) -> dict[str, Any]:
    """A one-line confirmation (``%compass set``, ``reset``, ...) as HTML and text; ``detail`` is quieter."""
    extra = f" <span style='opacity:.7'>{escape(detail)}</span>" if detail else ""
    return {
        "text/html": f"<div class='compass-message'>{escape(message)}{extra}</div>",
        "text/plain": message + (f" {detail}" if detail else ""),
    }


def preformatted_bundle(text: str) -> dict[str, Any]:
    """Text whose lines and spaces matter (a help page) as HTML and text."""
    return {"text/html": f"<pre>{escape(text)}</pre>", "text/plain": text}
