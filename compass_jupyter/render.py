"""Plain mime renderings (markdown / HTML / text) of replies and tables.

These are what a front end without widgets shows (nbconvert, nbval, GitHub,
a terminal IPython), so everything a widget view shows must be here too.
Pure functions of the value objects: no IPython, no widgets.
"""

from __future__ import annotations

import base64
import html
import json
import math
from typing import Any

from .reply import Reply, ToolCall, Usage

__all__ = [
    "FORMATS",
    "audio_markdown",
    "compare_bundle",
    "format_body",
    "json_bundle",
    "live_markdown",
    "logprobs_markdown",
    "reply_bundle",
    "reply_markdown",
    "reply_text",
    "status_markdown",
    "table_bundle",
    "transcript_bundle",
    "usage_bundle",
]

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


def tool_calls_of(reply: Reply) -> list[ToolCall]:
    """Every tool call of a turn: the earlier rounds' (``reply.steps``) and the reply's own."""
    calls: list[ToolCall] = []
    for step in [*getattr(reply, "steps", []), reply]:
        calls += [c for c in step.tool_calls if all(c is not seen for seen in calls)]
    return calls


def _tool_lines(reply: Reply, calls: list[ToolCall] | None = None) -> list[str]:
    lines = []
    for call in tool_calls_of(reply) if calls is None else calls:
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


def reply_markdown(reply: Reply, fmt: str = "markdown", *, tool_calls: list[ToolCall] | None = None) -> str:
    """The whole reply as one markdown document: tool calls, text, notes, logprobs, audio, status."""
    parts = _body_parts(reply, fmt, tool_calls)
    if reply.interrupted:
        parts.append("*⏹ Interrupted: the reply above is partial.*")
    elif reply.incomplete:
        parts.append(f"*⚠ Incomplete: {reply.error or 'the stream broke off'}; the reply above is partial.*")
    logprobs = logprobs_markdown(reply)
    if logprobs:
        parts.append(logprobs)
    if reply.audio is not None and reply.audio.data:
        parts.append(audio_markdown(reply))
    parts.append(status_markdown(reply))
    return "\n\n".join(parts)


def _body_parts(reply: Reply, fmt: str, tool_calls: list[ToolCall] | None) -> list[str]:
    parts: list[str] = []
    tools = _tool_lines(reply, tool_calls)
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
        citations = citations_markdown(reply.citations)
        if citations:
            parts.append(citations)
    return parts


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


def live_markdown(reply: Reply, fmt: str = "markdown", *, tool_calls: list[ToolCall] | None = None) -> str:
    """A reply still arriving: what came so far and a one-line "receiving" status."""
    parts = _body_parts(reply, fmt, tool_calls)
    received = sum(len(c.text) for c in reply.choices)
    parts.append(f"<sub>{html.escape(reply.model or '?')} · receiving… · {received} characters</sub>")
    return "\n\n".join(parts)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def _token(token: str) -> str:
    """A token as inline code in a table cell, its whitespace made visible."""
    shown = token.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if not shown.strip():
        shown = shown.replace(" ", "␣") or "∅"
    return "`" + shown.replace("|", "\\|").replace("`", "ˋ") + "`"


LOGPROB_ROWS = 200  # a table longer than this is cut; reply.logprobs keeps every token


def logprobs_markdown(reply: Reply, *, limit: int = LOGPROB_ROWS) -> str:
    """The first choice's tokens with their probabilities and top alternatives, as a markdown table."""
    tokens = reply.logprobs or []
    if not tokens:
        return ""
    rows = ["| # | token | prob | logprob | top alternatives |", "|---:|---|---:|---:|---|"]
    for i, tok in enumerate(tokens[:limit]):
        top = ", ".join(f"{_token(t)} {math.exp(lp):.1%}" for t, lp in tok.top)
        rows.append(f"| {i} | {_token(tok.token)} | {tok.prob:.1%} | {tok.logprob:.3f} | {top} |")
    more = f"\n\n*… {len(tokens) - limit} more tokens in `reply.logprobs`.*" if len(tokens) > limit else ""
    return "**Logprobs**\n\n" + "\n".join(rows) + more


def audio_markdown(reply: Reply) -> str:
    """An audio player for the spoken reply (raw HTML, which markdown passes through)."""
    audio = reply.audio
    if audio is None or not audio.data:
        return ""
    payload = base64.b64encode(audio.wav or audio.data).decode("ascii")
    length = f" · {audio.duration:.1f} s" if audio.duration is not None else ""
    return f'<audio controls src="data:{audio.mime};base64,{payload}"></audio>\n\n<sub>audio: {audio.format}{length}</sub>'


def reply_text(reply: Reply, *, tool_calls: list[ToolCall] | None = None) -> str:
    parts = []
    for call in tool_calls_of(reply) if tool_calls is None else tool_calls:
        parts.append(f"[tool] {call.name}({json.dumps(call.arguments, ensure_ascii=False)}) -> {call.error or call.content}")
    if len(reply.choices) > 1:
        parts += [f"[choice {c.index + 1}] {c.text}" for c in reply.choices]
    else:
        parts.append(reply.text or (reply.audio.transcript if reply.audio else ""))
    if reply.interrupted:
        parts.append("[interrupted: the reply above is partial]")
    elif reply.incomplete:
        parts.append(f"[incomplete: {reply.error or 'the stream broke off'}; the reply above is partial]")
    if reply.audio is not None and reply.audio.data:
        length = f" {reply.audio.duration:.1f} s" if reply.audio.duration is not None else ""
        parts.append(f"[audio:{length} {reply.audio.format}]")
    parts.append(reply.status_line())
    return "\n".join(parts)


def reply_bundle(reply: Reply, fmt: str = "markdown", *, tool_calls: list[ToolCall] | None = None) -> dict[str, Any]:
    return {
        "text/markdown": reply_markdown(reply, fmt, tool_calls=tool_calls),
        "text/plain": reply_text(reply, tool_calls=tool_calls),
    }


def json_bundle(reply: Reply, *, tool_calls: list[ToolCall] | None = None) -> dict[str, Any] | None:
    """The reply's JSON as ``application/json`` (with markdown and text fallbacks); None if it is not JSON."""
    try:
        value = json.loads(reply.text)
    except json.JSONDecodeError:
        return None
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    bundle: dict[str, Any] = {
        "text/markdown": reply_markdown(reply, "json", tool_calls=tool_calls),
        "text/plain": pretty + "\n" + reply.status_line(),
    }
    if isinstance(value, (dict, list)):  # front ends render only containers as a JSON tree
        bundle["application/json"] = value
    return bundle


# -- several replies side by side ----------------------------------------------------------


def compare_bundle(replies: list[Reply], fmt: str = "markdown", *, kept: int | None = 0) -> dict[str, Any]:
    """Replies of several models side by side (HTML grid), with markdown and text fallbacks."""
    columns = max(1, len(replies))
    cards, sections, texts = [], [], []
    for i, reply in enumerate(replies):
        label = reply.model or f"model {i + 1}"
        badge = " · kept in history" if kept == i else ""
        note = ""
        if reply.error:
            note = f"error: {reply.error}"
        elif reply.interrupted:
            note = "interrupted: the reply is partial"
        elif reply.incomplete:
            note = "incomplete: the reply is partial"
        if len(reply.choices) > 1:
            body_text = "\n\n".join(f"[choice {c.index + 1}] {c.text}" for c in reply.choices)
        else:
            body_text = reply.text or (reply.audio.transcript if reply.audio else "")
        if fmt == "json":
            try:
                body_text = json.dumps(json.loads(body_text), indent=2, ensure_ascii=False)
            except json.JSONDecodeError:
                pass
        cards.append(
            '<div style="border:1px solid rgba(128,128,128,.35);border-radius:6px;padding:8px;min-width:0">'
            f'<div style="font-weight:600;margin-bottom:4px">{html.escape(label)}{html.escape(badge)}</div>'
            + (f'<div style="color:#b45309;margin-bottom:4px">⚠ {html.escape(note)}</div>' if note else "")
            + f'<div style="white-space:pre-wrap;overflow-wrap:anywhere">{html.escape(body_text)}</div>'
            f'<div style="opacity:.7;font-size:85%;margin-top:6px">{html.escape(reply.status_line())}</div>'
            "</div>"
        )
        body_md = "\n\n".join(_body_parts(reply, fmt, None)) or "*(no text)*"
        sections.append(
            f"### {label}{badge}\n\n" + (f"*⚠ {note}*\n\n" if note else "") + f"{body_md}\n\n{status_markdown(reply)}"
        )
        texts.append(f"== {label}{badge} ==\n" + (f"[{note}]\n" if note else "") + f"{body_text}\n{reply.status_line()}")
    grid = (
        f'<div style="display:grid;grid-template-columns:repeat({columns},minmax(0,1fr));gap:8px">'
        + "".join(cards)
        + "</div>"
    )
    return {"text/html": grid, "text/markdown": "\n\n---\n\n".join(sections), "text/plain": "\n\n".join(texts)}


# -- tables -------------------------------------------------------------------------------


def table_bundle(columns: list[str], rows: list[list[Any]], *, title: str | None = None, note: str | None = None) -> dict[str, Any]:
    """A table as HTML, markdown and aligned plain text."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(v)}</td>" for v in row) + "</tr>" for row in cells)
    title_html = f"<p><b>{html.escape(title)}</b></p>" if title else ""
    note_html = f"<p><small>{html.escape(note)}</small></p>" if note else ""
    html_table = f"{title_html}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note_html}"

    md = [f"**{title}**", ""] if title else []
    md.append("| " + " | ".join(_cell(c) for c in columns) + " |")
    md.append("|" + "|".join("---" for _ in columns) + "|")
    md += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in cells]
    if note:
        md += ["", f"<sub>{html.escape(note)}</sub>"]

    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    plain = [title] if title else []
    plain.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    plain.append("  ".join("-" * w for w in widths))
    plain += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    if note:
        plain.append(note)
    return {"text/html": html_table, "text/markdown": "\n".join(md), "text/plain": "\n".join(plain)}


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


def usage_bundle(turns: list[Any], total: Usage | None) -> dict[str, Any]:
    """``%compass usage``: one row per request and a totals row."""
    columns = ["#", "model", "kind", "prompt", "completion", "total", "reasoning", "cached", "audio", "first token s", "total s", "tok/s", "finish"]
    rows: list[list[Any]] = []
    for i, turn in enumerate(turns, 1):
        u = turn.usage
        finish = "interrupted" if turn.interrupted else "incomplete" if turn.incomplete else (turn.finish_reason or "")
        kind = turn.kind + (f" ({turn.tool_rounds} tool rounds)" if turn.tool_rounds else "")
        rows.append(
            [
                i,
                turn.model or "?",
                kind,
                _count(u.prompt_tokens) if u else "n/a",
                _count(u.completion_tokens) if u else "n/a",
                _count(u.total_tokens) if u else "n/a",
                _count(u.reasoning_tokens) if u else "",
                _count(u.cached_tokens) if u else "",
                _count(u.audio_tokens) if u else "",
                _seconds(turn.ttft),
                _seconds(turn.total),
                f"{turn.tokens_per_s:.0f}" if turn.tokens_per_s else "",
                finish,
            ]
        )
    unreported = sum(1 for t in turns if t.usage is None)
    t = total
    rows.append(
        [
            "total",
            f"{len(turns)} requests",
            "",
            _count(t.prompt_tokens) if t else "0",
            _count(t.completion_tokens) if t else "0",
            _count(t.total_tokens) if t else "0",
            _count(t.reasoning_tokens) if t else "",
            _count(t.cached_tokens) if t else "",
            _count(t.audio_tokens) if t else "",
            "",
            _seconds(sum(x.total for x in turns if x.total is not None)) if turns else "",
            "",
            "",
        ]
    )
    note = f"{unreported} request(s) reported no usage (n/a), so the totals leave them out." if unreported else None
    return table_bundle(columns, rows, title="Token usage in this kernel", note=note)


def transcript_bundle(system: str | None, messages: list[dict[str, Any]], plain: str) -> dict[str, Any]:
    """``%compass history``: the conversation as markdown (roles in bold), ``plain`` as the text form."""
    if not system and not messages:
        empty = "The conversation is empty."
        return {"text/markdown": f"*{empty}*", "text/plain": empty}
    blocks = []
    if system:
        blocks.append(f"**system**\n\n{system}")
    for message in messages:
        role = message.get("role", "?")
        if role == "tool":
            role = f"tool result · {message.get('name') or message.get('tool_call_id')}"
        elif message.get("name"):
            role = f"{role} · {message['name']}"
        mark = " *(incomplete, not sent again)*" if message.get("incomplete") else ""
        content = message.get("content")
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            media = [p.get("type", "?") for p in content if isinstance(p, dict) and p.get("type") != "text"]
            content = " ".join(texts) + (f" *[{', '.join(media)}]*" if media else "")
        text = "" if content is None else str(content)
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            text += f"\n\n🔧 calls `{function.get('name')}({function.get('arguments', '')})`"
        blocks.append(f"**{role}**{mark}\n\n{text.strip()}")
    return {"text/markdown": "\n\n---\n\n".join(blocks), "text/plain": plain}
