"""A whole reply (or one of its choices) as markdown, HTML and text, and the mime bundles a cell shows.

The markdown and text forms are what every front end can show (nbconvert,
GitHub, a terminal IPython); the HTML form is what the widget views leave as
their saved output. Each says the same: tool calls, the text (or each choice),
reasoning, citations, logprobs, audio, whether the reply is partial, and the
status line. (The text form leaves out reasoning, citations and logprobs.)

``reply`` is anything shaped like :class:`compass_jupyter.reply.Reply`: this
module never imports it, so :meth:`Reply._repr_mimebundle_` can import this one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Sequence

from .logprobs import logprobs_html, logprobs_markdown
from .markup import FONT_SMALL, MUTED, body_html, escape, format_body
from .notices import warnings_html
from .parts import (
    audio_html,
    audio_markdown,
    audio_text,
    citations_html,
    citations_markdown,
    reasoning_html,
    reasoning_markdown,
    refusal_html,
    tool_calls_html,
    tool_calls_markdown,
    tool_calls_of,
    tool_calls_text,
)
from .status import banner_html, banner_markdown, banner_text, live_status_markdown, status_html, status_markdown

if TYPE_CHECKING:
    from ..reply import Choice, Reply, ToolCall

__all__ = [
    "body_markdown",
    "choice_extras_html",
    "choice_html",
    "choice_texts",
    "choices_html",
    "is_spoken",
    "json_bundle",
    "live_markdown",
    "reply_body_html",
    "reply_bundle",
    "reply_html",
    "reply_html_bundle",
    "reply_markdown",
    "reply_text",
    "text_of",
]


def text_of(reply: Reply) -> str:
    """The reply's text, or the transcript of a spoken reply."""
    return reply.text or (reply.audio.transcript if reply.audio else "")


def choice_texts(reply: Reply) -> list[str]:
    """Each choice's text under ``[choice N]`` when there are several, else the one text."""
    if len(reply.choices) > 1:
        return [f"[choice {c.index + 1}] {c.text}" for c in reply.choices]
    return [text_of(reply)]


def _calls(reply: Reply, tool_calls: Sequence[ToolCall] | None) -> Sequence[ToolCall]:
    return tool_calls_of(reply) if tool_calls is None else tool_calls


# --------------------------------------------------------------------------- markdown and text


def body_markdown(reply: Reply, fmt: str = "markdown", tool_calls: Sequence[ToolCall] | None = None) -> list[str]:
    """The blocks of a reply before its notes: tool calls, then each choice, or reasoning, text, citations."""
    parts: list[str] = []
    tools = tool_calls_markdown(_calls(reply, tool_calls))
    if tools:
        parts.append(tools)
    if len(reply.choices) > 1:
        for choice in reply.choices:
            parts.append(
                f"**Choice {choice.index + 1}** · finish: {choice.finish_reason or '-'}\n\n{format_body(choice.text, fmt)}"
            )
        return parts
    body = text_of(reply)
    parts += [
        reasoning_markdown(reply.reasoning),
        format_body(body, fmt) if body else "",
        citations_markdown(reply.citations),
    ]
    return [p for p in parts if p]


def reply_markdown(reply: Reply, fmt: str = "markdown", *, tool_calls: Sequence[ToolCall] | None = None) -> str:
    """The whole reply as one markdown document: tool calls, text, notes, logprobs, audio, status."""
    parts = body_markdown(reply, fmt, tool_calls)
    parts += [banner_markdown(reply), logprobs_markdown(reply), audio_markdown(reply), status_markdown(reply)]
    return "\n\n".join(p for p in parts if p)


def live_markdown(
    reply: Reply, fmt: str = "markdown", *, tool_calls: Sequence[ToolCall] | None = None, body: Reply | None = None
) -> str:
    """A reply still arriving: what came so far and a one-line "receiving" status.

    ``body``: the reply whose texts are shown, when that is not ``reply`` itself
    (a live view's cut-down copy); the status still counts all of ``reply``.
    """
    calls = _calls(reply, tool_calls)
    return "\n\n".join([*body_markdown(reply if body is None else body, fmt, calls), live_status_markdown(reply)])


def reply_text(reply: Reply, *, tool_calls: Sequence[ToolCall] | None = None) -> str:
    """The reply as plain text: tool calls, the text, whether it is partial, audio, status line."""
    parts = [*tool_calls_text(_calls(reply, tool_calls)), *choice_texts(reply)]
    parts += [p for p in (banner_text(reply), audio_text(reply.audio)) if p]
    parts.append(reply.status_line())
    return "\n".join(parts)


def reply_bundle(
    reply: Reply, fmt: str = "markdown", *, tool_calls: Sequence[ToolCall] | None = None
) -> dict[str, Any]:
    """The reply as markdown and text (``Reply._repr_mimebundle_``, the plain view's final output)."""
    return {
        "text/markdown": reply_markdown(reply, fmt, tool_calls=tool_calls),
        "text/plain": reply_text(reply, tool_calls=tool_calls),
    }


def json_bundle(reply: Reply, *, tool_calls: Sequence[ToolCall] | None = None) -> dict[str, Any] | None:
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


# --------------------------------------------------------------------------- HTML


def _text_block(html_text: str) -> str:
    return f'<div class="compass-text" style="line-height:1.55">{html_text}</div>'


def is_spoken(choice: Choice) -> bool:
    """Whether the choice's text is the transcript of its audio (a spoken reply without text)."""
    return bool(choice.audio and choice.audio.transcript and not choice.text)


def choice_extras_html(choice: Choice, *, with_logprobs: bool = True) -> str:
    """What follows a choice's text: refusal, citations, audio (its transcript unless that is the text), logprobs."""
    parts = [
        refusal_html(choice.refusal),
        citations_html(choice.citations),
        audio_html(choice.audio, transcript=not is_spoken(choice)),
        logprobs_html(choice.logprobs) if with_logprobs else "",
    ]
    return "".join(p for p in parts if p)


def choice_html(choice: Choice, fmt: str = "markdown", *, with_logprobs: bool = True) -> str:
    """One choice: reasoning (collapsed), text, refusal, citations, audio, logprobs."""
    body = choice.audio.transcript if is_spoken(choice) and choice.audio else choice.text
    parts = [reasoning_html(choice.reasoning), _text_block(body_html(body, fmt)) if body else ""]
    return "".join(p for p in parts if p) + choice_extras_html(choice, with_logprobs=with_logprobs)


def choices_html(reply: Reply, fmt: str = "markdown") -> str:
    """Every choice of an ``n`` > 1 reply, one section after the other."""
    sections = []
    for choice in reply.choices:
        head = (
            f'<div style="font-weight:600;margin:8px 0 2px;border-bottom:1px solid #8884">Choice {choice.index + 1}'
            f' <span style="{FONT_SMALL};font-weight:400;{MUTED}">· finish: {escape(choice.finish_reason or "–")}</span></div>'
        )
        sections.append(f'<div class="compass-choice">{head}{choice_html(choice, fmt)}</div>')
    return "".join(sections)


def reply_body_html(reply: Reply, fmt: str = "markdown") -> str:
    """The choices of a reply: stacked when there are several, else the one choice."""
    return choices_html(reply, fmt) if len(reply.choices) > 1 else choice_html(reply.first, fmt)


def reply_html(
    reply: Reply,
    fmt: str = "markdown",
    *,
    error: BaseException | str | None = None,
    tool_calls: Sequence[ToolCall] | None = None,
    warnings: Sequence[str] = (),
) -> str:
    """A finished (or broken-off) reply as one self-contained HTML block.

    ``tool_calls`` defaults to every call of the turn (``reply.steps`` and the reply's own).
    """
    parts = [warnings_html(warnings), tool_calls_html(_calls(reply, tool_calls)), reply_body_html(reply, fmt)]
    parts += [banner_html(reply, error), status_html(reply)]
    return '<div class="compass-reply">' + "".join(p for p in parts if p) + "</div>"


def reply_html_bundle(
    reply: Reply,
    fmt: str = "markdown",
    *,
    tool_calls: Sequence[ToolCall] | None = None,
    error: BaseException | str | None = None,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The finished reply for front ends that show HTML: its HTML beside the text (and JSON) of the plain bundle.

    No markdown: the HTML says the same, and front ends prefer it.
    """
    bundle: dict[str, Any] = {}
    if fmt == "json" and not reply.incomplete:
        bundle = json_bundle(reply, tool_calls=tool_calls) or {}
    if not bundle:
        bundle = reply_bundle(reply, fmt, tool_calls=tool_calls)
    bundle.pop("text/markdown", None)
    bundle["text/html"] = reply_html(reply, fmt, error=error, tool_calls=tool_calls, warnings=warnings)
    return bundle
