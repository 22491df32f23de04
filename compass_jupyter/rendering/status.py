"""A reply's state: its summary line (model, finish, usage, latency) and the banner of a partial reply.

Each in the forms a reply is shown in: markdown (a ``<sub>`` line), HTML (a small
line of items; a coloured banner) and text (``Reply.status_line``'s words).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .markup import FONT_SMALL, MUTED, escape
from .notices import notice_style

if TYPE_CHECKING:
    from ..reply import Reply, Usage

__all__ = [
    "COUNTED_MARK",
    "COUNTED_TITLE",
    "COUNTED_WORDS",
    "banner_html",
    "banner_markdown",
    "banner_text",
    "live_status_markdown",
    "status_html",
    "status_markdown",
    "usage_items",
]


# How usage the client counted (``Usage.counted``: the server reported none) is marked in every
# form: the status lines, ``Usage.summary`` and the usage table.
COUNTED_MARK = "≈"
COUNTED_WORDS = "counted, not reported"
COUNTED_TITLE = (
    "The server reported no usage, so this client counted it: completion tokens from the reply as it "
    "arrived (a token a streamed piece or logprobs entry), prompt tokens by an estimate (about 4 characters a token)"
)


def status_markdown(reply: Reply) -> str:
    return f"<sub>{escape(reply.status_line())}</sub>"


def live_status_markdown(reply: Reply) -> str:
    """The status of a reply still arriving: model and the characters received so far."""
    received = sum(len(c.text) for c in reply.choices)
    return f"<sub>{escape(reply.model or '?')} · receiving… · {received} characters</sub>"


def _partial(reply: Reply) -> tuple[str, str, str] | None:
    """(mark, word, what it means) for a reply that is partial; None for a whole one."""
    if reply.interrupted:
        return "⏹", "Interrupted", "the reply above is partial"
    if reply.incomplete:
        return "⚠", "Incomplete", f"{reply.error or 'the stream broke off'}; the reply above is partial"
    return None


def banner_markdown(reply: Reply) -> str:
    """A line saying that the reply is partial ('' when it is whole)."""
    partial = _partial(reply)
    return "" if partial is None else f"*{partial[0]} {partial[1]}: {partial[2]}.*"


def banner_text(reply: Reply) -> str:
    partial = _partial(reply)
    return "" if partial is None else f"[{partial[1].lower()}: {partial[2]}]"


def banner_html(reply: Reply | None = None, error: BaseException | str | None = None) -> str:
    """A clear note when the reply is partial (broke off, interrupted) or failed; empty otherwise."""
    if isinstance(error, KeyboardInterrupt) or (reply is not None and reply.interrupted):
        return (
            f'<div class="compass-banner" style="{notice_style("warning")}">'
            "⏹ <b>Interrupted</b>: the reply above is partial.</div>"
        )
    message = str(error) if error is not None and str(error) else (reply.error if reply is not None else None)
    if reply is not None and reply.incomplete:
        detail = f" {escape(message)}" if message else " The stream broke off."
        return (
            f'<div class="compass-banner" style="{notice_style("warning")}">'
            f"⚠ <b>Incomplete</b>: the reply above is partial.{detail}</div>"
        )
    if error is not None:
        return (
            f'<div class="compass-banner" style="{notice_style("error")}">'
            f"✖ <b>Error</b>: {escape(message or type(error).__name__)}</div>"
        )
    return ""


# --------------------------------------------------------------------------- the HTML status line


def _item(label: str, value: Any, title: str | None = None) -> str:
    t = f' title="{escape(title)}"' if title else ""
    return f'<span{t}><span style="{MUTED}">{escape(label)}</span> {escape(value)}</span>'


_DETAIL_NAMES = {
    "reasoning_tokens": "reasoning",
    "cached_tokens": "cached",
    "audio_tokens": "audio out",
    "prompt_audio_tokens": "audio in",
}


def usage_items(usage: Usage | None) -> list[str]:
    """The token counts of one reply as status-line items (details sent as zero: one quiet item)."""
    if usage is None:
        return [f'<span style="{MUTED}" title="The server sent no usage for this reply">usage not reported</span>']
    items = [
        _item("prompt", usage.prompt_tokens if usage.prompt_tokens is not None else "–"),
        _item("completion", usage.completion_tokens if usage.completion_tokens is not None else "–"),
        _item("total", usage.total_tokens if usage.total_tokens is not None else "–"),
    ]
    zero = []
    for key, value in usage.details().items():
        if value:
            items.append(_item(_DETAIL_NAMES.get(key, key), value))
        else:
            zero.append(_DETAIL_NAMES.get(key, key))
    if zero:
        # Sent but zero: one quiet item, so the line stays short.
        items.append(f'<span style="{MUTED}">{escape(", ".join(zero))}: 0</span>')
    if usage.counted:
        # The numbers stand where reported ones would (the line keeps its shape); the mark says whose they are.
        items.append(
            f'<span class="compass-counted" style="{MUTED}" title="{escape(COUNTED_TITLE)}">'
            f"{escape(COUNTED_MARK)} {escape(COUNTED_WORDS)}</span>"
        )
    return items


_STATE_COLORS = {"interrupted": "#b35c00", "incomplete": "#b35c00", "error": "#c62828"}
_STATE_LABELS = {
    "interrupted": "⏹ interrupted",
    "incomplete": "⚠ incomplete",
    "error": "✖ error",
    "streaming": "● streaming…",
    "waiting": "○ waiting…",
}


def _state(reply: Reply) -> str:
    if reply.interrupted:
        return "interrupted"
    if reply.incomplete:
        return "incomplete"
    if len(reply.choices) > 1:
        return "finish: " + ", ".join(sorted({c.finish_reason or "–" for c in reply.choices}))
    return f"finish: {reply.finish_reason or '–'}"


def status_html(
    reply: Reply | None = None,
    *,
    model: str | None = None,
    state: str | None = None,
    tokens: int | None = None,
    ttft: float | None = None,
    elapsed: float | None = None,
    tokens_per_s: float | None = None,
) -> str:
    """One small line: model, state or finish reason, token usage, first token, speed.

    With a finished ``reply`` everything comes from it; while streaming the
    caller passes ``state="streaming"`` and its own counts.
    """
    items: list[str] = []
    name = model or (reply.model if reply else None) or (reply.request.get("model") if reply else None)
    if name:
        items.append(f"<b>{escape(name)}</b>")
    if state is None and reply is not None:
        state = _state(reply)
    if reply is not None and reply.cached and state not in ("streaming", "waiting"):
        items.append(
            f'<span class="compass-cached" style="{MUTED}" title="Answered from the store: nothing was sent">cached</span>'
        )
    if state:
        color = _STATE_COLORS.get(state)
        style = f' style="color:{color};font-weight:600"' if color else ""
        items.append(f'<span class="compass-state"{style}>{escape(_STATE_LABELS.get(state, state))}</span>')
    if reply is not None and state not in ("streaming", "waiting"):
        items += usage_items(reply.usage)
        # Latency in the words of Reply.status_line ("first token 0.41s · total 2.62s · 23 tok/s"),
        # as one run of text, so the plain and widget views read alike and sanitise alike.
        timing = reply.latency.summary()
        if timing:
            items.append(f'<span class="compass-latency">{escape(timing)}</span>')
    else:
        if tokens is not None:
            items.append(_item("tokens", tokens, "content pieces received so far"))
        live = [f"first token {ttft:.2f}s"] if ttft is not None else []
        if elapsed is not None:
            live.append(f"{elapsed:.1f}s")
        if tokens_per_s:
            live.append(f"{tokens_per_s:.0f} tok/s")
        if live:
            items.append(f'<span class="compass-latency">{escape(" · ".join(live))}</span>')
    sep = f'<span style="{MUTED};padding:0 .35em">·</span>'
    return (
        f'<div class="compass-status" style="{FONT_SMALL};line-height:1.6;margin-top:4px">' + sep.join(items) + "</div>"
    )
