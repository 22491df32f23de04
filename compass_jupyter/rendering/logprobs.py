"""Token log probabilities: a markdown table, and in HTML a heatmap, its legend and a folding table.

Unlikely tokens stand out (one hue, so the heatmap survives colour blindness);
near-certain tokens keep the page's own colours. Long replies are cut (the
markdown table at :data:`LOGPROB_ROWS` rows, the heatmap and the HTML table at
their limits) with a line saying that ``reply.logprobs`` has every token.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Iterable, Sequence

from .markup import FONT_SMALL, MUTED, escape

if TYPE_CHECKING:
    from ..reply import Reply, TokenLogprob

__all__ = [
    "LOGPROB_BINS",
    "LOGPROB_ROWS",
    "logprob_color",
    "logprobs_heatmap_html",
    "logprobs_html",
    "logprobs_legend_html",
    "logprobs_markdown",
    "logprobs_table_html",
]

# (lowest probability, background or None for the page's own, label)
LOGPROB_BINS: tuple[tuple[float, str | None, str], ...] = (
    (0.9, None, "≥ 90%"),
    (0.7, "#fde8cf", "70–90%"),
    (0.4, "#fdc08a", "40–70%"),
    (0.1, "#f98e52", "10–40%"),
    (0.0, "#e4572e", "< 10%"),
)
LOGPROB_ROWS = 200  # a markdown table longer than this is cut; reply.logprobs keeps every token


# --------------------------------------------------------------------------- markdown


def _token_markdown(token: str) -> str:
    """A token as inline code in a table cell, its whitespace made visible."""
    shown = token.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if not shown.strip():
        shown = shown.replace(" ", "␣") or "∅"
    return "`" + shown.replace("|", "\\|").replace("`", "ˋ") + "`"


def logprobs_markdown(reply: Reply, *, limit: int = LOGPROB_ROWS) -> str:
    """The first choice's tokens with their probabilities and top alternatives, as a markdown table."""
    tokens = reply.logprobs or []
    if not tokens:
        return ""
    rows = ["| # | token | prob | logprob | top alternatives |", "|---:|---|---:|---:|---|"]
    for i, tok in enumerate(tokens[:limit]):
        top = ", ".join(f"{_token_markdown(t)} {math.exp(lp):.1%}" for t, lp in tok.top)
        rows.append(f"| {i} | {_token_markdown(tok.token)} | {tok.prob:.1%} | {tok.logprob:.3f} | {top} |")
    more = f"\n\n*… {len(tokens) - limit} more tokens in `reply.logprobs`.*" if len(tokens) > limit else ""
    return "**Logprobs**\n\n" + "\n".join(rows) + more


# --------------------------------------------------------------------------- HTML


def logprob_color(prob: float) -> str | None:
    """The heatmap background for a probability (None: the page's own background)."""
    for low, color, _ in LOGPROB_BINS:
        if prob >= low:
            return color
    return LOGPROB_BINS[-1][1]


def _safe_prob(logprob: float) -> float:
    try:
        return math.exp(logprob) if logprob > -1e4 else 0.0
    except OverflowError:
        return 1.0


def _visible(token: str) -> str:
    """A token with its whitespace made visible, for the table."""
    return token.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"


def _token_title(t: TokenLogprob) -> str:
    lines = [f"{_safe_prob(t.logprob):.1%} (logprob {t.logprob:.3f})"]
    others = [(tok, lp) for tok, lp in t.top if tok != t.token][:5]
    if others:
        lines.append("alternatives: " + ", ".join(f"{_visible(tok)} {_safe_prob(lp):.1%}" for tok, lp in others))
    return "\n".join(lines)


def logprobs_legend_html() -> str:
    swatches = []
    for _, color, label in LOGPROB_BINS:
        bg = f"background:{color};color:#111" if color else "border:1px solid #8886"
        swatches.append(
            f'<span style="display:inline-block;padding:0 6px;margin-right:4px;border-radius:3px;{bg}">{escape(label)}</span>'
        )
    return (
        f'<div style="{FONT_SMALL};margin:4px 0"><span style="{MUTED}">token probability:</span> '
        + "".join(swatches)
        + "</div>"
    )


def logprobs_heatmap_html(tokens: Sequence[TokenLogprob], *, limit: int = 2000) -> str:
    """The reply's tokens, each coloured by its probability; hover for the number and alternatives."""
    parts = ['<div class="compass-heatmap" style="white-space:pre-wrap;line-height:1.7;margin:4px 0">']
    for t in tokens[:limit]:
        color = logprob_color(_safe_prob(t.logprob))
        style = f' style="background:{color};color:#111"' if color else ""
        text = html.escape(t.token).replace("\n", "↵\n")
        parts.append(f'<span{style} title="{escape(_token_title(t))}">{text}</span>')
    parts.append("</div>")
    if len(tokens) > limit:
        parts.append(
            f'<div style="{FONT_SMALL};{MUTED}">Heatmap of the first {limit:,} of {len(tokens):,} tokens; '
            "reply.logprobs has them all.</div>"
        )
    return "".join(parts)


def _logprob_rows(tokens: Iterable[TokenLogprob], start: int) -> str:
    # Lean rows (a long reply has thousands): attributes instead of repeated inline styles.
    rows = []
    for i, t in enumerate(tokens, start):
        p = _safe_prob(t.logprob)
        color = logprob_color(p)
        shade = f' style="background:{color};color:#111"' if color else ""
        alts = ", ".join(
            f"<code>{escape(_visible(tok))}</code>&nbsp;{_safe_prob(lp):.1%}" for tok, lp in t.top if tok != t.token
        )
        rows.append(
            f'<tr valign="top"><td align="right">{i}</td><td style="text-align:left"><code>{escape(_visible(t.token))}</code></td>'
            f'<td align="right"{shade}>{p:.1%}</td><td align="right">{t.logprob:.3f}</td>'
            f'<td style="text-align:left">{alts}</td></tr>'
        )
    return "".join(rows)


def logprobs_table_html(tokens: Sequence[TokenLogprob], *, rows: int = 20, limit: int = 500) -> str:
    """Token, probability, logprob and the top alternatives; long replies fold past ``rows``."""
    if len(tokens) <= rows + 10:
        rows = len(tokens)  # folding away a handful of rows helps no one
    head_cell = "border-bottom:2px solid #8886"
    head = (
        f'<table class="compass-logprobs-table" cellpadding="3" style="border-collapse:collapse;{FONT_SMALL};margin:4px 0">'
        f'<thead><tr><th align="right" style="{head_cell}">#</th><th style="{head_cell};text-align:left">token</th>'
        f'<th align="right" style="{head_cell}">probability</th><th align="right" style="{head_cell}">logprob</th>'
        f'<th style="{head_cell};text-align:left">top alternatives</th></tr></thead><tbody>'
    )
    out = [head, _logprob_rows(tokens[:rows], 0), "</tbody></table>"]
    if len(tokens) > rows:
        shown = min(len(tokens), limit)
        out.append(
            '<details class="compass-logprobs-more">'
            f'<summary style="cursor:pointer;{FONT_SMALL}">Show all {shown - rows:,} more rows</summary>'
            + head
            + _logprob_rows(tokens[rows:shown], rows)
            + "</tbody></table></details>"
        )
        if len(tokens) > limit:
            out.append(
                f'<div style="{FONT_SMALL};{MUTED}">The table stops at {limit:,} of {len(tokens):,} tokens; '
                "reply.logprobs has them all.</div>"
            )
    return "".join(out)


def logprobs_html(tokens: Sequence[TokenLogprob] | None, *, rows: int = 20) -> str:
    """Heatmap, legend and table of a choice's logprobs ('' when there are none)."""
    if not tokens:
        return ""
    probs = [_safe_prob(t.logprob) for t in tokens]
    mean = sum(probs) / len(probs)
    low = sum(1 for p in probs if p < 0.4)
    summary = f"Logprobs · {len(tokens):,} tokens · mean probability {mean:.1%} · {low:,} below 40%"
    return (
        f'<div class="compass-logprobs" style="margin:6px 0">'
        f'<div style="{FONT_SMALL};font-weight:600">{escape(summary)}</div>'
        + logprobs_legend_html()
        + logprobs_heatmap_html(tokens)
        + f'<details class="compass-logprobs-details" open><summary style="cursor:pointer;{FONT_SMALL}">Table</summary>'
        + logprobs_table_html(tokens, rows=rows)
        + "</details></div>"
    )
