"""A conversation's messages: ``%compass history`` (markdown and text) and the playground's message cards (HTML).

A message is an API message dict as the session keeps it: its role (a tool
result named by its tool), its text with any media parts named, the tool calls
an assistant message asked for, and whether it is incomplete (kept, not sent again).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from .markup import FONT_SMALL, MUTED, code_block_html, escape, markdown_html

__all__ = ["message_html", "message_label", "transcript_bundle"]


def message_label(message: Mapping[str, Any]) -> str:
    """Who speaks: the role, with the name of a named message or of the tool whose result it is."""
    role = str(message.get("role", "?"))
    if role == "tool":
        return f"tool result · {message.get('name') or message.get('tool_call_id')}"
    return f"{role} · {message['name']}" if message.get("name") else role


def _content(message: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The text of a message and the types of its other parts (images, audio)."""
    content = message.get("content")
    if not isinstance(content, list):
        return ("" if content is None else str(content)), []
    texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    media = [p.get("type", "?") for p in content if isinstance(p, dict) and p.get("type") != "text"]
    return " ".join(texts), media


def _calls(message: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """(name, arguments) of each tool call an assistant message asked for."""
    return [
        ((c.get("function") or {}).get("name"), (c.get("function") or {}).get("arguments", ""))
        for c in message.get("tool_calls") or []
    ]


def transcript_bundle(system: str | None, messages: Sequence[Mapping[str, Any]], plain: str) -> dict[str, Any]:
    """``%compass history``: the conversation as markdown (roles in bold), ``plain`` as the text form."""
    if not system and not messages:
        empty = "The conversation is empty."
        return {"text/markdown": f"*{empty}*", "text/plain": empty}
    blocks = []
    if system:
        blocks.append(f"**system**\n\n{system}")
    for message in messages:
        mark = " *(incomplete, not sent again)*" if message.get("incomplete") else ""
        text, media = _content(message)
        if media:
            text += f" *[{', '.join(media)}]*"
        for name, arguments in _calls(message):
            text += f"\n\n🔧 calls `{name}({arguments})`"
        blocks.append(f"**{message_label(message)}**{mark}\n\n{text.strip()}")
    return {"text/markdown": "\n\n---\n\n".join(blocks), "text/plain": plain}


_CARD_STYLES = {
    "assistant": "border-left:3px solid #4c78a8;padding:2px 10px",
    "tool": "border-left:3px solid #999;padding:2px 10px",
}
_OTHER_STYLE = "border-left:3px solid #f58518;padding:2px 10px"


def message_html(message: Mapping[str, Any]) -> str:
    """One message as a small card: an assistant's markdown rendered, a tool result as code, the rest as typed."""
    role = str(message.get("role", "?"))
    text, media = _content(message)
    if media:
        text += f" [{', '.join(media)}]"
    label = message_label(message)
    if message.get("interrupted"):
        label += " · interrupted, not sent again"
    elif message.get("incomplete"):
        label += " · incomplete, not sent again"
    if role == "assistant":
        body = markdown_html(text)
        for name, arguments in _calls(message):
            body += f"<div>🔧 calls <code>{escape(name)}({escape(arguments)})</code></div>"
    elif role == "tool":
        body = code_block_html(text)
    else:
        body = f'<div style="white-space:pre-wrap">{escape(text)}</div>'
    return (
        f'<div class="compass-pg-msg compass-pg-{escape(role)}" style="{_CARD_STYLES.get(role, _OTHER_STYLE)};margin:6px 0">'
        f'<div style="{FONT_SMALL};{MUTED}">{escape(label)}</div>'
        f'<div class="jp-RenderedHTMLCommon" style="padding:0">{body}</div></div>'
    )
