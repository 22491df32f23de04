"""Plain mime renderings (markdown / HTML / text) of replies and tables.

These are what a front end without widgets shows (nbconvert, nbval, GitHub,
a terminal IPython), so everything a widget view shows must be here too.
Pure functions of the value objects: no IPython, no widgets.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .reply import Reply

__all__ = ["reply_bundle", "reply_markdown", "reply_text", "status_markdown", "format_body"]

FORMATS = ("markdown", "text", "code", "json")


def format_body(text: str, fmt: str = "markdown") -> str:
    """The reply text as markdown in the asked format."""
    if fmt == "code":
        fence = "```" if "```" not in text else "~~~~"
        return f"{fence}\n{text}\n{fence}"
    if fmt == "text":
        return "\n".join("    " + line for line in text.splitlines()) if text else ""
    if fmt == "json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        return "```json\n" + json.dumps(value, indent=2, ensure_ascii=False) + "\n```"
    return text


def status_markdown(reply: Reply) -> str:
    return f"<sub>{html.escape(reply.status_line())}</sub>"


def _tool_lines(reply: Reply) -> list[str]:
    lines = []
    for call in reply.tool_calls:
        args = json.dumps(call.arguments, ensure_ascii=False)
        if call.error:
            outcome = f" → error: {call.error}"
        elif call.content is not None:
            outcome = f" → {call.content}"
        else:
            outcome = ""
        took = f" ({call.duration * 1000:.0f} ms)" if call.duration is not None else ""
        lines.append(f"- 🔧 `{call.name}({args})`{outcome}{took}")
    return lines


def reply_markdown(reply: Reply, fmt: str = "markdown") -> str:
    """The whole reply as one markdown document."""
    parts: list[str] = []
    tools = _tool_lines(reply)
    if tools:
        parts.append("\n".join(tools))
    if len(reply.choices) > 1:
        for choice in reply.choices:
            parts.append(f"**Choice {choice.index + 1}** · finish: {choice.finish_reason or '-'}\n\n{format_body(choice.text, fmt)}")
    else:
        if reply.reasoning:
            parts.append("<details><summary>Reasoning</summary>\n\n" + reply.reasoning + "\n\n</details>")
        body = reply.text or (reply.audio.transcript if reply.audio else "")
        if body:
            parts.append(format_body(body, fmt))
    if reply.interrupted:
        parts.append("*⏹ Interrupted: the reply above is partial.*")
    elif reply.incomplete:
        parts.append(f"*⚠ Incomplete: {reply.error or 'the stream broke off'}; the reply above is partial.*")
    parts.append(status_markdown(reply))
    return "\n\n".join(parts)


def reply_text(reply: Reply) -> str:
    parts = []
    for call in reply.tool_calls:
        parts.append(f"[tool] {call.name}({json.dumps(call.arguments, ensure_ascii=False)}) -> {call.error or call.content}")
    if len(reply.choices) > 1:
        parts += [f"[choice {c.index + 1}] {c.text}" for c in reply.choices]
    else:
        parts.append(reply.text or (reply.audio.transcript if reply.audio else ""))
    parts.append(reply.status_line())
    return "\n".join(parts)


def reply_bundle(reply: Reply, fmt: str = "markdown") -> dict[str, Any]:
    return {"text/markdown": reply_markdown(reply, fmt), "text/plain": reply_text(reply)}
