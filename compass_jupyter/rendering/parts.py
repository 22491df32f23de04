"""The parts of a reply beside its text: tool calls, citations, audio, reasoning, a refusal.

Each part as markdown, as HTML and, where the text form shows it, as text.
Tool calls and citations come from the model and the server, so every value
is escaped in HTML and only http(s) URLs become links.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, Sequence

from .markup import CODE_BG, FONT_SMALL, MUTED, escape, markdown_html

if TYPE_CHECKING:
    from ..reply import Audio, Reply, ToolCall

__all__ = [
    "audio_html",
    "audio_markdown",
    "audio_text",
    "citations_html",
    "citations_markdown",
    "reasoning_html",
    "reasoning_markdown",
    "refusal_html",
    "tool_call_html",
    "tool_calls_html",
    "tool_calls_markdown",
    "tool_calls_of",
    "tool_calls_text",
]

ERROR_COLOR = "#c62828"


# --------------------------------------------------------------------------- tool calls


def tool_calls_of(reply: Reply) -> list[ToolCall]:
    """Every tool call of a turn: the earlier rounds' (``reply.steps``) first, then the reply's own."""
    calls: list[ToolCall] = []
    for step in [*(getattr(reply, "steps", None) or []), reply]:
        calls += [c for c in step.tool_calls if all(c is not seen for seen in calls)]
    return calls


def _arguments(call: ToolCall) -> str:
    return json.dumps(call.arguments, ensure_ascii=False)


def tool_calls_markdown(calls: Sequence[ToolCall]) -> str:
    """One list item per call: name, arguments, result or error, duration."""
    lines = []
    for call in calls:
        if call.error:
            outcome = f" → error: {call.error}"
        elif call.content is not None:
            outcome = f" → {call.content}"
        else:
            outcome = ""
        took = f" ({call.duration * 1000:.0f} ms)" if call.duration is not None else ""
        lines.append(f"- 🔧 `{call.name}({_arguments(call)})`{outcome}{took}")
    return "\n".join(lines)


def tool_calls_text(calls: Sequence[ToolCall]) -> list[str]:
    return [f"[tool] {call.name}({_arguments(call)}) -> {call.error or call.content}" for call in calls]


def _short(value: str, limit: int = 80) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, ValueError):
            return value
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def tool_call_html(call: ToolCall, *, running: bool = False) -> str:
    """One call, collapsed: its summary line opens onto the arguments, the result or error and the id."""
    args = call.arguments_json or "{}"
    args_short = _short(_arguments(call) if call.arguments_valid else args, 60)
    if call.error:
        outcome = f' <span style="color:{ERROR_COLOR}">→ error: {escape(_short(call.error, 60))}</span>'
    elif call.content is not None:
        outcome = f' <span style="{MUTED}">→ {escape(_short(call.content, 60))}</span>'
    elif running:
        outcome = f' <span style="{MUTED}">(running…)</span>'
    else:
        outcome = f' <span style="{MUTED}">(not run)</span>'
    took = f' <span style="{MUTED}">({call.duration * 1000:.0f} ms)</span>' if call.duration is not None else ""
    pre = f"{CODE_BG};padding:6px 8px;border-radius:4px;margin:2px 0 6px;white-space:pre-wrap;{FONT_SMALL}"
    body = [f'<div style="{FONT_SMALL};{MUTED}">arguments</div><pre style="{pre}">{escape(_pretty(args))}</pre>']
    if call.error:
        body.append(
            f'<div style="{FONT_SMALL};color:{ERROR_COLOR}">error</div><pre style="{pre}">{escape(call.error)}</pre>'
        )
    elif call.content is not None:
        shown = call.result if call.result is not None else call.content
        body.append(f'<div style="{FONT_SMALL};{MUTED}">result</div><pre style="{pre}">{escape(_pretty(shown))}</pre>')
    if call.id:
        body.append(f'<div style="{FONT_SMALL};{MUTED}">id {escape(call.id)}</div>')
    return (
        '<details class="compass-tool-call" style="margin:2px 0">'
        f'<summary style="cursor:pointer">🔧 <code>{escape(call.name or "?")}</code>'
        f'<span style="{MUTED}">({escape(args_short)})</span>{outcome}{took}</summary>'
        f'<div style="margin-left:1.4em">{"".join(body)}</div></details>'
    )


def tool_calls_html(calls: Sequence[ToolCall], *, running: bool = False) -> str:
    """Each call collapsed: name, arguments, result or error, duration ('' for none)."""
    if not calls:
        return ""
    return (
        '<div class="compass-tool-calls" style="margin:4px 0">'
        + "".join(tool_call_html(c, running=running) for c in calls)
        + "</div>"
    )


# --------------------------------------------------------------------------- citations


def _as_list(value: Any) -> list[Any]:
    # Citation fields come from the server as it pleases: one value or a list of them.
    return value if isinstance(value, list) else ([] if value is None else [value])


def _source_id(source: Any) -> Any:
    if not isinstance(source, dict):
        return source
    document = source.get("document")
    return source.get("id") or (document.get("id") if isinstance(document, dict) else None)


def citations_markdown(citations: list[dict[str, Any]] | None) -> str:
    """The passages a model cited (Cohere's documents), one line each."""
    if not citations:
        return ""
    lines = ["**Citations**"]
    for citation in citations:
        quoted = str(citation.get("text") or "").strip()
        sources = citation.get("document_ids") or [_source_id(s) for s in _as_list(citation.get("sources"))]
        where = ", ".join(str(s) for s in _as_list(sources) if s) or "?"
        lines.append(f"- “{quoted}” — {where}")
    return "\n".join(lines)


def citations_html(citations: Sequence[dict[str, Any]] | None) -> str:
    """The citations a model returned (Cohere style or plain dicts), as a small list."""
    if not citations:
        return ""
    items = []
    for c in citations:
        if not isinstance(c, dict):
            items.append(f"<li>{escape(c)}</li>")
            continue
        text = c.get("text") or c.get("title") or ""
        url = c.get("url") or ""
        sources = c.get("document_ids") or c.get("sources") or c.get("documents")
        bits = []
        if text:
            bits.append(f"“{escape(text)}”")
        if url and str(url).startswith(("http://", "https://")):
            bits.append(f'<a href="{escape(url)}" target="_blank" rel="noopener noreferrer">{escape(url)}</a>')
        if sources:
            ids = (
                [s.get("id", s) if isinstance(s, dict) else s for s in sources]
                if isinstance(sources, list)
                else [sources]
            )
            bits.append(f'<span style="{MUTED}">from {escape(", ".join(str(i) for i in ids))}</span>')
        if "start" in c and "end" in c:
            bits.append(f'<span style="{MUTED}">chars {escape(c["start"])}–{escape(c["end"])}</span>')
        if not bits:
            bits.append(f"<code>{escape(json.dumps(c, ensure_ascii=False, default=str))}</code>")
        items.append("<li>" + " ".join(bits) + "</li>")
    return (
        f'<div class="compass-citations" style="{FONT_SMALL};margin:4px 0"><b>Citations</b>'
        f'<ol style="margin:2px 0 2px 1.5em;padding:0">{"".join(items)}</ol></div>'
    )


# --------------------------------------------------------------------------- audio


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def audio_markdown(reply: Reply) -> str:
    """An audio player for the spoken reply (raw HTML, which markdown passes through)."""
    audio = reply.audio
    if audio is None or not audio.data:
        return ""
    payload = base64.b64encode(audio.wav or audio.data).decode("ascii")
    length = f" · {audio.duration:.1f} s" if audio.duration is not None else ""
    return (
        f'<audio controls src="data:{audio.mime};base64,{payload}"></audio>\n\n<sub>audio: {audio.format}{length}</sub>'
    )


def audio_text(audio: Audio | None) -> str:
    if audio is None or not audio.data:
        return ""
    length = f" {audio.duration:.1f} s" if audio.duration is not None else ""
    return f"[audio:{length} {audio.format}]"


def audio_html(audio: Audio | None, *, filename: str | None = None, transcript: bool = True) -> str:
    """An audio player, the transcript and a download link (WAV for pcm16).

    ``transcript=False`` leaves the transcript out, for when it is already shown as the reply text.
    """
    if audio is None or not (audio.data or audio.transcript):
        return ""
    parts = ['<div class="compass-audio" style="margin:6px 0">']
    if audio.data:
        payload = audio.wav or audio.data
        mime = audio.mime
        ext = "wav" if audio.wav is not None else {"mp3": "mp3", "flac": "flac", "opus": "ogg"}.get(audio.format, "bin")
        name = filename or f"{audio.id or 'compass-reply'}.{ext}"
        url = f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"
        duration = audio.duration
        length = f"{duration:.1f} s, " if duration is not None else ""
        parts.append(f'<audio controls preload="metadata" src="{url}" style="vertical-align:middle"></audio> ')
        parts.append(
            f'<a download="{escape(name)}" href="{url}" style="{FONT_SMALL}">⬇ Save {escape(name)}</a>'
            f' <span style="{FONT_SMALL};{MUTED}">({length}{_size(len(payload))})</span>'
        )
    if audio.transcript and transcript:
        parts.append(
            f'<div class="compass-transcript" style="{FONT_SMALL};margin-top:2px">'
            f'<span style="{MUTED}">transcript:</span> {escape(audio.transcript)}</div>'
        )
    parts.append("</div>")
    return "".join(parts)


# --------------------------------------------------------------------------- reasoning, refusal


def reasoning_markdown(reasoning: str | None) -> str:
    return "<details><summary>Reasoning</summary>\n\n" + reasoning + "\n\n</details>" if reasoning else ""


def reasoning_html(reasoning: str | None, *, open_: bool = False) -> str:
    if not reasoning:
        return ""
    opened = " open" if open_ else ""
    return (
        f'<details class="compass-reasoning"{opened} style="margin:4px 0">'
        f'<summary style="cursor:pointer;{FONT_SMALL};{MUTED}">Reasoning ({len(reasoning):,} characters)</summary>'
        f'<div style="border-left:3px solid #8885;padding-left:10px;{MUTED}">{markdown_html(reasoning)}</div></details>'
    )


def refusal_html(refusal: str | None) -> str:
    if not refusal:
        return ""
    return f'<div class="compass-refusal" style="color:{ERROR_COLOR};margin:4px 0">The model refused: {escape(refusal)}</div>'
