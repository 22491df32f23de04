"""HTML renderings of replies, usage, logprobs, audio and tool calls.

Pure functions from the value objects to HTML strings. Everything uses inline
styles only (no ``<style>``, no scripts, no external files), so the same HTML
reads well in JupyterLab, Notebook 7, nbconvert and GitHub's notebook view.
The widget views put these strings into ``ipywidgets.HTML`` widgets and attach
:func:`reply_html` as the plain fallback of their output.

Markdown is rendered here, on the kernel side, with mistune (raw HTML in a
reply is escaped, ``javascript:`` links are neutralised); math spans are kept
verbatim so the front end's MathJax can typeset them. Without mistune the text
is shown as preformatted text.
"""

from __future__ import annotations

import base64
import contextvars
import html
import json
import math
import re
import threading
from typing import Any, Iterable, NamedTuple, Sequence

from ..reply import Audio, Choice, Reply, TokenLogprob, ToolCall, Usage

__all__ = [
    "markdown_html",
    "body_html",
    "settle_markdown",
    "settle_lines",
    "Cut",
    "status_html",
    "banner_html",
    "logprobs_html",
    "logprob_color",
    "tool_calls_html",
    "audio_html",
    "citations_html",
    "reasoning_html",
    "refusal_html",
    "warnings_html",
    "choices_html",
    "compare_html",
    "usage_html",
    "reply_html",
    "reply_tool_calls",
]

# Colours chosen to read on light and dark themes: anything with a background
# also fixes its text colour.
MUTED = "opacity:.72"
FONT_SMALL = "font-size:12px"
CODE_BG = "background:#f6f8fa;color:#24292e"
PROMPT_COLOR = "#4c78a8"
COMPLETION_COLOR = "#f58518"

# Logprob heatmap: unlikely tokens stand out (one hue, so it survives colour blindness);
# near-certain tokens keep the page's own colours.
LOGPROB_BINS: tuple[tuple[float, str | None, str], ...] = (
    (0.9, None, "≥ 90%"),
    (0.7, "#fde8cf", "70–90%"),
    (0.4, "#fdc08a", "40–70%"),
    (0.1, "#f98e52", "10–40%"),
    (0.0, "#e4572e", "< 10%"),
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# --------------------------------------------------------------------------- markdown

_MATH_RE = re.compile(
    r"\$\$.+?\$\$"  # display math
    r"|\\\[.+?\\\]"
    r"|\\\(.+?\\\)"
    # inline $...$: no space just inside the dollars, no digit after the closing one,
    # so "costs $5 and $10" stays text
    r"|(?<![\\$\w])\$(?=[^\s$])[^$\n]+?(?<=[^\s\\$])\$(?![\w$])",
    re.DOTALL,
)
_PLACEHOLDER = "mathph{}zq"
_PLACEHOLDER_RE = re.compile(r"mathph(\d+)zq")

_markdown: Any = None
_markdown_lock = threading.Lock()


def _renderer() -> Any:
    """A mistune Markdown instance (built once), or False when mistune is missing."""
    global _markdown
    if _markdown is not None:
        return _markdown
    try:
        import mistune
    except ImportError:
        _markdown = False
        return _markdown

    class Renderer(mistune.HTMLRenderer):  # type: ignore[misc, name-defined]
        def link(self, text: str, url: str, title: str | None = None) -> str:
            # A plain click in a notebook output would navigate the whole front end away.
            out = super().link(text, url, title)
            return out.replace("<a ", '<a target="_blank" rel="noopener noreferrer" ', 1)

        def block_code(self, code: str, info: str | None = None) -> str:
            return code_block_html(code, (info or "").split(None, 1)[0] if info else "")

        def codespan(self, text: str) -> str:
            return f'<code style="{CODE_BG};padding:0 .25em;border-radius:3px">{text}</code>'

        def table(self, text: str) -> str:
            return f'<table style="border-collapse:collapse;margin:.5em 0">{text}</table>\n'

        def table_cell(self, text: str, align: str | None = None, head: bool = False) -> str:
            tag = "th" if head else "td"
            # Notebook style sheets right-align table cells; markdown tables mean left unless told.
            style = f"border:1px solid #8884;padding:2px 8px;text-align:{align or 'left'}"
            return f'<{tag} style="{style}">{text}</{tag}>\n'

    _markdown = mistune.create_markdown(
        escape=True,
        renderer=Renderer(escape=True),
        plugins=["strikethrough", "table", "url", "task_lists"],
    )
    return _markdown


# Highlighting is most of the cost of rendering a streaming tail (profiled); the tail is
# re-rendered many times, so it skips colours and the final render adds them once.
_HIGHLIGHT: contextvars.ContextVar[bool] = contextvars.ContextVar("compass_highlight", default=True)


def code_block_html(code: str, language: str = "") -> str:
    """A code block, highlighted by Pygments (inline colours) when it knows the language."""
    style = f"{CODE_BG};padding:8px 10px;border-radius:4px;overflow-x:auto;line-height:1.4;margin:.4em 0"
    if language and _HIGHLIGHT.get():
        try:
            from pygments import highlight
            from pygments.formatters import HtmlFormatter
            from pygments.lexers import get_lexer_by_name
            from pygments.util import ClassNotFound

            try:
                lexer = get_lexer_by_name(language)
            except ClassNotFound:
                lexer = None
            if lexer is not None:
                formatter = HtmlFormatter(noclasses=True, nowrap=True, style="default")
                inner = highlight(code, lexer, formatter)
                return f'<pre style="{style}"><code>{inner}</code></pre>\n'
        except ImportError:
            pass
    return f'<pre style="{style}"><code>{html.escape(code)}</code></pre>\n'


def markdown_html(text: str, *, highlight: bool = True) -> str:
    """Markdown -> HTML, safe to put into a page: raw HTML in ``text`` is shown, not run."""
    if not text:
        return ""
    if not highlight:
        token = _HIGHLIGHT.set(False)
        try:
            return markdown_html(text)
        finally:
            _HIGHLIGHT.reset(token)
    md = _renderer()
    if md is False:
        return f'<div style="white-space:pre-wrap">{html.escape(text)}</div>'
    spans: list[str] = []

    def hide(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return _PLACEHOLDER.format(len(spans) - 1)

    protected = _MATH_RE.sub(hide, text) if ("$" in text or "\\" in text) else text
    with _markdown_lock:  # one parser instance, views of compare mode render from threads
        out = md(protected)
    if spans:
        out = _PLACEHOLDER_RE.sub(lambda m: html.escape(spans[int(m.group(1))], quote=False), out)
    return out


_FENCE_RE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def body_html(text: str, fmt: str = "markdown") -> str:
    """A reply text in one of the formats of ``--format`` (markdown, text, code, json)."""
    if fmt == "markdown":
        return markdown_html(text)
    if fmt == "json":
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, ValueError):
            return code_block_html(text)
        return code_block_html(json.dumps(value, indent=2, ensure_ascii=False), "json")
    if fmt == "code":
        return code_block_html(text)
    return f'<pre style="white-space:pre-wrap;margin:0;font-family:inherit">{html.escape(text)}</pre>'


class Cut(NamedTuple):
    """Where a growing text was cut: ``settled`` is final; the text goes on as ``carry + rest``."""

    settled: str
    carry: str
    consumed: int  # characters of the pending text that ``settled`` used up
    joined: bool = False  # the cut is inside a block, which the rest continues


def settle_markdown(pending: str, *, hard_limit: int | None = None) -> Cut | None:
    """Find a place to cut a growing markdown text so that the part before never changes.

    Cuts fall after a blank line outside a code fence, before a line that
    starts a new top-level block. Without such a place, a code fence that is
    still open is closed at the last complete line and reopened in ``carry``.
    The last, still growing line is never settled. A text longer than
    ``hard_limit`` without either (one long paragraph) is cut inside the block
    at a line or sentence boundary (``joined``): a visible seam while
    streaming, which the final render of the whole text removes. None: no cut.
    """
    lines = pending.splitlines(keepends=True)
    complete = lines if not lines or lines[-1].endswith("\n") else lines[:-1]
    fence: tuple[str, int, str] | None = None  # (char, length, opening line)
    pos = 0
    best = 0
    previous_blank = False
    for line in complete:
        stripped = line.rstrip("\n")
        if fence is None:
            if previous_blank and stripped and not stripped[0].isspace():
                best = pos
            match = _FENCE_RE.match(stripped)
            if match and not (match.group(2)[0] == "`" and "`" in match.group(3)):
                fence = (match.group(2)[0], len(match.group(2)), stripped)
            previous_blank = not stripped.strip()
        else:
            match = _FENCE_RE.match(stripped)
            if match and match.group(2)[0] == fence[0] and len(match.group(2)) >= fence[1] and not match.group(3).strip():
                fence = None
            previous_blank = False
        pos += len(line)
    partial = pending[pos:]
    if fence is None and previous_blank and partial[:1] and not partial[0].isspace():
        best = pos  # the next block has begun, so everything before it is final
    if best > 0:
        return Cut(pending[:best], "", best)
    if fence is not None:
        # One long code block from the start: close it at the last whole line, reopen it after.
        opening = fence[2] + "\n"
        start = pending.rfind(opening, 0, pos)
        if start != -1 and pending[start + len(opening) : pos].strip():
            return Cut(pending[:pos] + fence[0] * fence[1] + "\n", opening, pos)
    if fence is None and hard_limit is not None and len(pending) > hard_limit:
        return _inline_cut(pending, len(pending) // 2)
    return None


_SENTENCE_END_RE = re.compile(r"[.!?:;,]\s")


def _inline_cut(pending: str, floor: int) -> Cut | None:
    """A cut inside one long block, at the last line break, else sentence end, else space."""
    candidates: list[int] = []
    line_cut = pending.rfind("\n", floor) + 1
    if line_cut > floor and pending[line_cut : line_cut + 1].strip():
        candidates.append(line_cut)
    candidates += [m.end() for m in _SENTENCE_END_RE.finditer(pending, floor)][-1:]
    space = pending.rfind(" ", floor)
    if space > floor:
        candidates.append(space + 1)
    for cut in candidates:
        if pending.count("`", 0, cut) % 2:
            # A code span is open at the cut: cut before the backtick that opened it instead.
            tick = pending.rfind("`", 0, cut)
            cut = pending.rfind(" ", floor, tick) + 1
            if cut <= floor or pending.count("`", 0, cut) % 2:
                continue
        return Cut(pending[:cut], "", cut, joined=True)
    return None


def settle_lines(pending: str, *, hard_limit: int | None = None) -> Cut | None:
    """Like :func:`settle_markdown` for preformatted text: cut after the last whole line."""
    cut = pending.rfind("\n") + 1
    if cut > 0:
        return Cut(pending[:cut], "", cut)
    if hard_limit is not None and len(pending) > hard_limit:
        space = pending.rfind(" ", len(pending) // 2)
        cut = space + 1 if space > 0 else len(pending) // 2
        return Cut(pending[:cut], "", cut, joined=True)
    return None


# --------------------------------------------------------------------------- status


def _secs(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.2f}"


def _item(label: str, value: Any, title: str | None = None) -> str:
    t = f' title="{_e(title)}"' if title else ""
    return f'<span{t}><span style="{MUTED}">{_e(label)}</span> {_e(value)}</span>'


def usage_items(usage: Usage | None) -> list[str]:
    if usage is None:
        return [f'<span style="{MUTED}" title="The server sent no usage for this reply">usage not reported</span>']
    items = [
        _item("prompt", usage.prompt_tokens if usage.prompt_tokens is not None else "–"),
        _item("completion", usage.completion_tokens if usage.completion_tokens is not None else "–"),
        _item("total", usage.total_tokens if usage.total_tokens is not None else "–"),
    ]
    names = {
        "reasoning_tokens": "reasoning",
        "cached_tokens": "cached",
        "audio_tokens": "audio out",
        "prompt_audio_tokens": "audio in",
    }
    zero = []
    for key, value in usage.details().items():
        if value:
            items.append(_item(names.get(key, key), value))
        else:
            zero.append(names.get(key, key))
    if zero:
        # Sent but zero: one quiet item, so the line stays short.
        items.append(f'<span style="{MUTED}">{_e(", ".join(zero))}: 0</span>')
    return items


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
        items.append(f"<b>{_e(name)}</b>")
    if state is None and reply is not None:
        if reply.interrupted:
            state = "interrupted"
        elif reply.incomplete:
            state = "incomplete"
        elif len(reply.choices) > 1:
            reasons = sorted({c.finish_reason or "–" for c in reply.choices})
            state = "finish: " + ", ".join(reasons)
        else:
            state = f"finish: {reply.finish_reason or '–'}"
    if state:
        color = {"interrupted": "#b35c00", "incomplete": "#b35c00", "error": "#c62828"}.get(state)
        label = {"interrupted": "⏹ interrupted", "incomplete": "⚠ incomplete", "error": "✖ error",
                 "streaming": "● streaming…", "waiting": "○ waiting…"}.get(state, state)
        style = f' style="color:{color};font-weight:600"' if color else ""
        items.append(f'<span class="compass-state"{style}>{_e(label)}</span>')
    if reply is not None and state not in ("streaming", "waiting"):
        items += usage_items(reply.usage)
        # Latency in the words of Reply.status_line ("first token 0.41s · total 2.62s · 23 tok/s"),
        # as one run of text, so the plain and widget views read alike and sanitise alike.
        timing = reply.latency.summary()
        if timing:
            items.append(f'<span class="compass-latency">{_e(timing)}</span>')
    else:
        if tokens is not None:
            items.append(_item("tokens", tokens, "content pieces received so far"))
        live = [f"first token {ttft:.2f}s"] if ttft is not None else []
        if elapsed is not None:
            live.append(f"{elapsed:.1f}s")
        if tokens_per_s:
            live.append(f"{tokens_per_s:.0f} tok/s")
        if live:
            items.append(f'<span class="compass-latency">{_e(" · ".join(live))}</span>')
    sep = f'<span style="{MUTED};padding:0 .35em">·</span>'
    return (
        f'<div class="compass-status" style="{FONT_SMALL};line-height:1.6;margin-top:4px">'
        + sep.join(items)
        + "</div>"
    )


def banner_html(reply: Reply | None = None, error: BaseException | str | None = None) -> str:
    """A clear note when the reply is partial (broke off, interrupted) or failed; empty otherwise."""
    style = "border-left:4px solid {c};background:{bg};color:#222;padding:6px 10px;margin:6px 0;border-radius:3px"
    if isinstance(error, KeyboardInterrupt) or (reply is not None and reply.interrupted):
        return (
            f'<div class="compass-banner" style="{style.format(c="#e08a00", bg="#fff4e0")}">'
            "⏹ <b>Interrupted</b>: the reply above is partial.</div>"
        )
    message = str(error) if error is not None and str(error) else (reply.error if reply is not None else None)
    if reply is not None and reply.incomplete:
        detail = f" {_e(message)}" if message else " The stream broke off."
        return (
            f'<div class="compass-banner" style="{style.format(c="#e08a00", bg="#fff4e0")}">'
            f"⚠ <b>Incomplete</b>: the reply above is partial.{detail}</div>"
        )
    if error is not None:
        return (
            f'<div class="compass-banner" style="{style.format(c="#c62828", bg="#fdecea")}">'
            f"✖ <b>Error</b>: {_e(message or type(error).__name__)}</div>"
        )
    return ""


# --------------------------------------------------------------------------- logprobs


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
            f'<span style="display:inline-block;padding:0 6px;margin-right:4px;border-radius:3px;{bg}">{_e(label)}</span>'
        )
    return f'<div style="{FONT_SMALL};margin:4px 0"><span style="{MUTED}">token probability:</span> ' + "".join(swatches) + "</div>"


def logprobs_heatmap_html(tokens: Sequence[TokenLogprob], *, limit: int = 2000) -> str:
    """The reply's tokens, each coloured by its probability; hover for the number and alternatives."""
    parts = ['<div class="compass-heatmap" style="white-space:pre-wrap;line-height:1.7;margin:4px 0">']
    for t in tokens[:limit]:
        color = logprob_color(_safe_prob(t.logprob))
        style = f' style="background:{color};color:#111"' if color else ""
        text = html.escape(t.token).replace("\n", "↵\n")
        parts.append(f'<span{style} title="{_e(_token_title(t))}">{text}</span>')
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
            f"<code>{_e(_visible(tok))}</code>&nbsp;{_safe_prob(lp):.1%}" for tok, lp in t.top if tok != t.token
        )
        rows.append(
            f'<tr valign="top"><td align="right">{i}</td><td style="text-align:left"><code>{_e(_visible(t.token))}</code></td>'
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
        f'<div style="{FONT_SMALL};font-weight:600">{_e(summary)}</div>'
        + logprobs_legend_html()
        + logprobs_heatmap_html(tokens)
        + f'<details class="compass-logprobs-details" open><summary style="cursor:pointer;{FONT_SMALL}">Table</summary>'
        + logprobs_table_html(tokens, rows=rows)
        + "</details></div>"
    )


# --------------------------------------------------------------------------- tool calls


def reply_tool_calls(reply: Reply) -> list[ToolCall]:
    """Every tool call of the turn: earlier rounds (``reply.steps``) first, then this reply's."""
    calls: list[ToolCall] = []
    for step in [*(getattr(reply, "steps", None) or []), reply]:
        calls += [c for c in step.tool_calls if all(c is not seen for seen in calls)]
    return calls


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
    args = call.arguments_json or "{}"
    args_short = _short(json.dumps(call.arguments, ensure_ascii=False) if call.arguments_valid else args, 60)
    if call.error:
        outcome = f' <span style="color:#c62828">→ error: {_e(_short(call.error, 60))}</span>'
    elif call.content is not None:
        outcome = f' <span style="{MUTED}">→ {_e(_short(call.content, 60))}</span>'
    elif running:
        outcome = f' <span style="{MUTED}">(running…)</span>'
    else:
        outcome = f' <span style="{MUTED}">(not run)</span>'
    took = f' <span style="{MUTED}">({call.duration * 1000:.0f} ms)</span>' if call.duration is not None else ""
    pre = f"{CODE_BG};padding:6px 8px;border-radius:4px;margin:2px 0 6px;white-space:pre-wrap;{FONT_SMALL}"
    body = [f'<div style="{FONT_SMALL};{MUTED}">arguments</div><pre style="{pre}">{_e(_pretty(args))}</pre>']
    if call.error:
        body.append(f'<div style="{FONT_SMALL};color:#c62828">error</div><pre style="{pre}">{_e(call.error)}</pre>')
    elif call.content is not None:
        shown = call.result if call.result is not None else call.content
        body.append(f'<div style="{FONT_SMALL};{MUTED}">result</div><pre style="{pre}">{_e(_pretty(shown))}</pre>')
    if call.id:
        body.append(f'<div style="{FONT_SMALL};{MUTED}">id {_e(call.id)}</div>')
    return (
        '<details class="compass-tool-call" style="margin:2px 0">'
        f'<summary style="cursor:pointer">🔧 <code>{_e(call.name or "?")}</code>'
        f'<span style="{MUTED}">({_e(args_short)})</span>{outcome}{took}</summary>'
        f'<div style="margin-left:1.4em">{"".join(body)}</div></details>'
    )


def tool_calls_html(calls: Sequence[ToolCall], *, running: bool = False) -> str:
    """Each call collapsed: name, arguments, result or error, duration ('' for none)."""
    if not calls:
        return ""
    return '<div class="compass-tool-calls" style="margin:4px 0">' + "".join(
        tool_call_html(c, running=running) for c in calls
    ) + "</div>"


# --------------------------------------------------------------------------- audio, citations, reasoning


def _size(n: int) -> str:
    return f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


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
            f'<a download="{_e(name)}" href="{url}" style="{FONT_SMALL}">⬇ Save {_e(name)}</a>'
            f' <span style="{FONT_SMALL};{MUTED}">({length}{_size(len(payload))})</span>'
        )
    if audio.transcript and transcript:
        parts.append(
            f'<div class="compass-transcript" style="{FONT_SMALL};margin-top:2px">'
            f'<span style="{MUTED}">transcript:</span> {_e(audio.transcript)}</div>'
        )
    parts.append("</div>")
    return "".join(parts)


def citations_html(citations: Sequence[dict[str, Any]] | None) -> str:
    """The citations a model returned (Cohere style or plain dicts), as a small list."""
    if not citations:
        return ""
    items = []
    for c in citations:
        if not isinstance(c, dict):
            items.append(f"<li>{_e(c)}</li>")
            continue
        text = c.get("text") or c.get("title") or ""
        url = c.get("url") or ""
        sources = c.get("document_ids") or c.get("sources") or c.get("documents")
        bits = []
        if text:
            bits.append(f"“{_e(text)}”")
        if url and str(url).startswith(("http://", "https://")):
            bits.append(f'<a href="{_e(url)}" target="_blank" rel="noopener noreferrer">{_e(url)}</a>')
        if sources:
            ids = [s.get("id", s) if isinstance(s, dict) else s for s in sources] if isinstance(sources, list) else [sources]
            bits.append(f'<span style="{MUTED}">from {_e(", ".join(str(i) for i in ids))}</span>')
        if "start" in c and "end" in c:
            bits.append(f'<span style="{MUTED}">chars {_e(c["start"])}–{_e(c["end"])}</span>')
        if not bits:
            bits.append(f"<code>{_e(json.dumps(c, ensure_ascii=False, default=str))}</code>")
        items.append("<li>" + " ".join(bits) + "</li>")
    return (
        f'<div class="compass-citations" style="{FONT_SMALL};margin:4px 0"><b>Citations</b>'
        f'<ol style="margin:2px 0 2px 1.5em;padding:0">{"".join(items)}</ol></div>'
    )


def refusal_html(refusal: str | None) -> str:
    if not refusal:
        return ""
    return f'<div class="compass-refusal" style="color:#c62828;margin:4px 0">The model refused: {_e(refusal)}</div>'


def warnings_html(messages: Sequence[str]) -> str:
    """Warnings about a turn (an unknown model, a parameter reserved for other models)."""
    if not messages:
        return ""
    items = "".join(f"<div>⚠ {_e(m)}</div>" for m in messages)
    return f'<div class="compass-warnings" style="{FONT_SMALL};color:#b35c00;margin:2px 0">{items}</div>'


def reasoning_html(reasoning: str | None, *, open_: bool = False) -> str:
    if not reasoning:
        return ""
    opened = " open" if open_ else ""
    return (
        f'<details class="compass-reasoning"{opened} style="margin:4px 0">'
        f'<summary style="cursor:pointer;{FONT_SMALL};{MUTED}">Reasoning ({len(reasoning):,} characters)</summary>'
        f'<div style="border-left:3px solid #8885;padding-left:10px;{MUTED}">{markdown_html(reasoning)}</div></details>'
    )


# --------------------------------------------------------------------------- whole replies


def _text_block(html_text: str) -> str:
    return f'<div class="compass-text" style="line-height:1.55">{html_text}</div>'


def choice_html(choice: Choice, fmt: str = "markdown", *, with_logprobs: bool = True) -> str:
    """One choice: reasoning (collapsed), text, refusal, citations, audio, logprobs."""
    parts = [reasoning_html(choice.reasoning)]
    spoken = bool(choice.audio and choice.audio.transcript and not choice.text)
    body = choice.audio.transcript if spoken and choice.audio else choice.text
    if body:
        parts.append(_text_block(body_html(body, fmt)))
    parts.append(refusal_html(choice.refusal))
    parts.append(citations_html(choice.citations))
    parts.append(audio_html(choice.audio, transcript=not spoken))
    if with_logprobs:
        parts.append(logprobs_html(choice.logprobs))
    return "".join(p for p in parts if p)


def choices_html(reply: Reply, fmt: str = "markdown") -> str:
    """Every choice of an ``n`` > 1 reply, one section after the other."""
    sections = []
    for choice in reply.choices:
        head = (
            f'<div style="font-weight:600;margin:8px 0 2px;border-bottom:1px solid #8884">Choice {choice.index + 1}'
            f' <span style="{FONT_SMALL};font-weight:400;{MUTED}">· finish: {_e(choice.finish_reason or "–")}</span></div>'
        )
        sections.append(f'<div class="compass-choice">{head}{choice_html(choice, fmt)}</div>')
    return "".join(sections)


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
    calls = reply_tool_calls(reply) if tool_calls is None else tool_calls
    parts = [warnings_html(warnings), tool_calls_html(calls)]
    if len(reply.choices) > 1:
        parts.append(choices_html(reply, fmt))
    else:
        parts.append(choice_html(reply.first, fmt))
    parts.append(banner_html(reply, error))
    parts.append(status_html(reply))
    return '<div class="compass-reply">' + "".join(p for p in parts if p) + "</div>"


def compare_html(replies: Sequence[Reply], fmt: str = "markdown", *, kept: int | None = None) -> str:
    """Replies of several models side by side, each with its usage and latency.

    ``kept``: the index of the reply the conversation history keeps (labelled).
    """
    if not replies:
        return ""
    width = f"{100 / len(replies):.2f}%"
    head_cell = "padding:4px 8px;border-bottom:2px solid #8886;text-align:left;vertical-align:bottom"
    cell = f"padding:4px 8px;vertical-align:top;text-align:left;width:{width};border-right:1px solid #8883"
    heads, bodies, stats = [], [], []
    for i, reply in enumerate(replies):
        name = reply.model or reply.request.get("model") or "?"
        badge = f' <span style="{FONT_SMALL};font-weight:400;{MUTED}">· kept in history</span>' if kept == i else ""
        heads.append(f'<th style="{head_cell}">{_e(name)}{badge}</th>')
        inner = choices_html(reply, fmt) if len(reply.choices) > 1 else choice_html(reply.first, fmt)
        bodies.append(f'<td style="{cell}">{inner}{banner_html(reply, reply.error if reply.incomplete else None)}</td>')
        stats.append(f'<td style="{cell};border-top:1px solid #8884">{status_html(reply)}</td>')
    return (
        '<table class="compass-compare" style="border-collapse:collapse;width:100%;table-layout:fixed">'
        f'<thead><tr>{"".join(heads)}</tr></thead>'
        f'<tbody><tr>{"".join(bodies)}</tr><tr>{"".join(stats)}</tr></tbody></table>'
    )


# --------------------------------------------------------------------------- usage


def _bar(prompt: int, completion: int, scale: int, width_px: int = 160) -> str:
    if scale <= 0:
        return ""
    p = width_px * prompt / scale
    c = width_px * completion / scale
    return (
        f'<div style="display:flex;width:{width_px}px;height:10px;background:#8882;border-radius:2px" '
        f'title="prompt {prompt:,} · completion {completion:,}">'
        f'<div style="width:{p:.1f}px;background:{PROMPT_COLOR}"></div>'
        f'<div style="width:{c:.1f}px;background:{COMPLETION_COLOR}"></div></div>'
    )


def usage_html(turns: Sequence[Any], total: Usage | None = None) -> str:
    """A per-turn table with a small bar per turn (prompt and completion tokens) and the totals.

    ``turns`` are :class:`~compass_jupyter.conversation.Turn` objects (``Session.turns``);
    ``total`` is usually ``Session.usage``.
    """
    if not turns:
        return f'<div style="{MUTED}">No turns yet: usage appears here after the first reply.</div>'
    cell = "padding:2px 8px;border-bottom:1px solid #8882;text-align:right;white-space:nowrap"
    left = cell.replace("text-align:right", "text-align:left")
    numeric = {"prompt", "completion", "total", "first token (s)", "duration (s)", "tok/s"}
    head = "".join(
        f'<th style="{cell if h in numeric else left};border-bottom:2px solid #8886">{_e(h)}</th>'
        for h in ["#", "model", "prompt", "completion", "total", "details", "first token (s)", "duration (s)",
                  "tok/s", "tokens", "status"]
    )
    scale = max((t.usage.total_tokens or 0) if t.usage else 0 for t in turns) or 0
    rows = []
    for i, t in enumerate(turns, 1):
        u: Usage | None = t.usage
        if t.interrupted:
            status = '<span style="color:#b35c00">interrupted</span>'
        elif t.incomplete:
            status = '<span style="color:#b35c00">incomplete</span>'
        else:
            status = _e(t.finish_reason or "–")
        extras = []
        if t.kind and t.kind != "chat":
            extras.append(t.kind)
        if getattr(t, "tool_rounds", 0):
            extras.append(f"{t.tool_rounds} tool round{'s' if t.tool_rounds > 1 else ''}")
        if extras:
            status += f' <span style="{MUTED}">({_e(", ".join(extras))})</span>'
        details = ", ".join(f"{k.replace('_tokens', '').replace('_', ' ')} {v}" for k, v in u.details().items() if v) if u else ""
        bar = _bar(u.prompt_tokens or 0, u.completion_tokens or 0, scale) if u else ""

        def num(v: int | None) -> str:
            return f"{v:,}" if v is not None else "–"

        rows.append(
            f'<tr><td style="{left}">{i}</td><td style="{left}">{_e(t.model or "?")}</td>'
            + (
                f'<td style="{cell}">{num(u.prompt_tokens)}</td><td style="{cell}">{num(u.completion_tokens)}</td>'
                f'<td style="{cell}">{num(u.total_tokens)}</td>'
                if u
                else f'<td style="{cell};{MUTED}" colspan="3">not reported</td>'
            )
            + f'<td style="{left};{MUTED}">{_e(details)}</td>'
            f'<td style="{cell}">{_secs(t.ttft)}</td><td style="{cell}">{_secs(t.total)}</td>'
            f'<td style="{cell}">{f"{t.tokens_per_s:.0f}" if t.tokens_per_s else "–"}</td>'
            f'<td style="{left}">{bar}</td><td style="{left}">{status}</td></tr>'
        )
    if total is not None:
        details = ", ".join(f"{k.replace('_tokens', '').replace('_', ' ')} {v:,}" for k, v in total.details().items() if v)
        t_cell = cell + ";border-top:2px solid #8886;font-weight:600"
        t_left = left + ";border-top:2px solid #8886;font-weight:600"

        def tnum(v: int | None) -> str:
            return f"{v:,}" if v is not None else "–"

        rows.append(
            f'<tr><td style="{t_left}" colspan="2">total ({len(turns)} turn{"s" if len(turns) != 1 else ""})</td>'
            f'<td style="{t_cell}">{tnum(total.prompt_tokens)}</td><td style="{t_cell}">{tnum(total.completion_tokens)}</td>'
            f'<td style="{t_cell}">{tnum(total.total_tokens)}</td><td style="{t_left};font-weight:400">{_e(details)}</td>'
            f'<td style="{t_cell}" colspan="5"></td></tr>'
        )
    unreported = sum(1 for t in turns if t.usage is None)
    note = (
        f'<div style="{FONT_SMALL};{MUTED}">{unreported} turn{"s" if unreported != 1 else ""} reported no usage; '
        "the totals leave them out.</div>"
        if unreported
        else ""
    )
    legend = note + (
        f'<div style="{FONT_SMALL};{MUTED};margin-top:4px">bars: '
        f'<span style="display:inline-block;width:10px;height:10px;background:{PROMPT_COLOR}"></span> prompt '
        f'<span style="display:inline-block;width:10px;height:10px;background:{COMPLETION_COLOR}"></span> completion'
        " (length relative to the largest turn)</div>"
    )
    return (
        f'<div class="compass-usage"><table style="border-collapse:collapse;{FONT_SMALL}">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{legend}</div>"
    )
