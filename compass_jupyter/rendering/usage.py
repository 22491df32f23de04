"""``%compass usage``: one table of tokens and timings per request, with totals.

The same 13 columns in HTML, markdown and text, and the same values in each
(``n/a`` where a request reported no usage, an empty cell for a detail the
server did not send, ``≈`` before counts the client counted because the server
reported none: see ``Usage.counted``). The HTML adds a bar to each request's
total (prompt and completion tokens, scaled to the largest request) and colours
partial requests. The totals row is always there; so are the notes saying what
the marks mean.

``turns`` are shaped like :class:`compass_jupyter.conversation.Turn`
(``Session.turns``); ``total`` is a ``Usage``, usually ``Session.usage``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .markup import FONT_SMALL, MUTED, escape
from .status import COUNTED_MARK, COUNTED_WORDS
from .tables import table_markdown, table_text

if TYPE_CHECKING:
    from ..conversation import Turn
    from ..reply import Usage

__all__ = ["USAGE_COLUMNS", "usage_bundle", "usage_html", "usage_rows"]

USAGE_COLUMNS = (
    "#", "model", "kind", "prompt", "completion", "total", "reasoning", "cached", "audio",
    "first token s", "total s", "tok/s", "finish",
)  # fmt: skip
_LEFT = {"#", "model", "kind", "finish"}  # the other columns are numbers, right-aligned in HTML
TITLE = "Token usage in this kernel"
EMPTY = "No requests yet: usage appears here after the first reply."
PROMPT_COLOR = "#4c78a8"
COMPLETION_COLOR = "#f58518"
BAR_WIDTH = 100  # pixels of the largest request's bar
_PARTIAL_COLOR = "#b35c00"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


def _finish(turn: Turn) -> str:
    return "interrupted" if turn.interrupted else "incomplete" if turn.incomplete else (turn.finish_reason or "")


def _tokens(u: Usage | None, unreported: str) -> list[str]:
    """prompt, completion, total, reasoning, cached, audio: ``unreported`` for the counts without usage.

    Counted usage (the server reported none) shows its three counts as ``≈12``.
    """
    if u is None:
        return [unreported] * 3 + [""] * 3
    mark = COUNTED_MARK if u.counted else ""
    counts = [f"{mark}{v}" if v is not None else "" for v in (u.prompt_tokens, u.completion_tokens, u.total_tokens)]
    return counts + [_count(v) for v in (u.reasoning_tokens, u.cached_tokens, u.audio_tokens)]


def usage_rows(turns: Sequence[Turn], total: Usage | None) -> list[list[str]]:
    """One row per request, then the totals row, as the text of each cell."""
    rows = []
    for i, turn in enumerate(turns, 1):
        kind = turn.kind + (f" ({turn.tool_rounds} tool rounds)" if turn.tool_rounds else "")
        kind += " (cached)" if turn.cached else ""
        timing = [_seconds(turn.ttft), _seconds(turn.total), f"{turn.tokens_per_s:.0f}" if turn.tokens_per_s else ""]
        rows.append([str(i), turn.model or "?", kind, *_tokens(turn.usage, "n/a"), *timing, _finish(turn)])
    seconds = _seconds(sum(x.total for x in turns if x.total is not None)) if turns else ""
    # No total: nothing was spent (every request answered from the cache), or nothing was reported.
    nothing = "n/a" if any(t.usage is None and not t.cached for t in turns) else "0"
    rows.append(["total", f"{len(turns)} requests", "", *_tokens(total, nothing), "", seconds, "", ""])
    return rows


def _note(turns: Sequence[Turn]) -> str | None:
    unreported = sum(1 for t in turns if t.usage is None)
    counted = sum(1 for t in turns if t.usage is not None and t.usage.counted)
    cached = sum(1 for t in turns if t.cached)
    notes = []
    if counted:
        notes.append(
            f"{COUNTED_MARK} {COUNTED_WORDS}: {counted} request(s) got no usage from the server, so this "
            "client counted it: completion tokens from the reply as it arrived (a token a streamed piece), "
            "prompt tokens by an estimate (about 4 characters a token)."
        )
    if unreported:
        notes.append(f"{unreported} request(s) reported no usage (n/a), so the totals leave them out.")
    if cached:
        notes.append(
            f"{cached} answered from the replay cache (cached): their rows show what the original cost; "
            "nothing was spent, so the totals leave them out."
        )
    return " ".join(notes) or None


def _bar(usage: Usage, scale: int) -> str:
    prompt, completion = usage.prompt_tokens or 0, usage.completion_tokens or 0
    p, c = BAR_WIDTH * prompt / scale, BAR_WIDTH * completion / scale
    return (
        f'<span class="compass-usage-bar" title="prompt {prompt:,} · completion {completion:,}" style="display:inline-flex;'
        f'vertical-align:middle;margin-left:6px;width:{BAR_WIDTH}px;height:10px;background:#8882;border-radius:2px">'
        f'<span style="width:{p:.1f}px;background:{PROMPT_COLOR}"></span>'
        f'<span style="width:{c:.1f}px;background:{COMPLETION_COLOR}"></span></span>'
    )


def _swatch(color: str) -> str:
    return f'<span style="display:inline-block;width:10px;height:10px;background:{color}"></span>'


def usage_html(turns: Sequence[Turn], total: Usage | None = None) -> str:
    if not turns:
        return f'<div class="compass-usage" style="{MUTED}">{escape(EMPTY)}</div>'
    cell = "padding:2px 8px;border-bottom:1px solid #8882;white-space:nowrap;text-align:"
    align = {c: "left" if c in _LEFT else "right" for c in USAGE_COLUMNS}
    head = "".join(
        f'<th style="{cell}{align[c]};border-bottom:2px solid #8886">{escape(c)}</th>' for c in USAGE_COLUMNS
    )
    scale = max((t.usage.total_tokens or 0) if t.usage else 0 for t in turns)
    rows = []
    bars = 0
    for row, turn in zip(usage_rows(turns, total), [*turns, None]):
        shown = {c: escape(v) for c, v in zip(USAGE_COLUMNS, row)}
        extra = ";border-top:2px solid #8886;font-weight:600" if turn is None else ""
        if turn is not None and turn.usage is not None and scale:
            shown["total"] += _bar(turn.usage, scale)
            bars += 1
        if turn is not None and (turn.interrupted or turn.incomplete):
            shown["finish"] = f'<span style="color:{_PARTIAL_COLOR}">{shown["finish"]}</span>'
        rows.append(
            "<tr>" + "".join(f'<td style="{cell}{align[c]}{extra}">{shown[c]}</td>' for c in USAGE_COLUMNS) + "</tr>"
        )
    note = _note(turns)
    small = f"{FONT_SMALL};{MUTED}"
    legend = (  # only under bars: a legend of nothing puzzles
        f'<div style="{small};margin-top:4px">bars: {_swatch(PROMPT_COLOR)} prompt {_swatch(COMPLETION_COLOR)} completion'
        " tokens (length relative to the largest request)</div>"
        if bars
        else ""
    )
    return (
        f'<div class="compass-usage"><p><b>{escape(TITLE)}</b></p>'
        f'<table style="border-collapse:collapse;{FONT_SMALL}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        + (f'<div style="{small}">{escape(note)}</div>' if note else "")
        + legend
        + "</div>"
    )


def usage_bundle(turns: Sequence[Turn], total: Usage | None) -> dict[str, Any]:
    """The usage table as HTML (with bars), markdown and text."""
    if not turns:
        return {"text/html": usage_html(turns, total), "text/markdown": f"*{EMPTY}*", "text/plain": EMPTY}
    rows, note = usage_rows(turns, total), _note(turns)
    return {
        "text/html": usage_html(turns, total),
        "text/markdown": table_markdown(USAGE_COLUMNS, rows, title=TITLE, note=note),
        "text/plain": table_text(USAGE_COLUMNS, rows, title=TITLE, note=note),
    }
