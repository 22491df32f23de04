"""The building blocks of every rendering: escaping, markdown → HTML, code blocks, streaming cuts.

Everything here is a pure function of strings. HTML uses inline styles only
(no ``<style>``, no scripts, no external files), so it reads the same in
JupyterLab, Notebook 7, nbconvert and GitHub's notebook view.

Markdown is rendered on the kernel side with mistune (raw HTML in a reply is
escaped, ``javascript:`` links are neutralised); math spans are kept verbatim so
the front end's MathJax can typeset them. Without mistune the text is shown as
preformatted text.
"""

from __future__ import annotations

import contextvars
import html
import json
import re
import threading
from typing import Any, NamedTuple

__all__ = [
    "CODE_BG",
    "FONT_SMALL",
    "FORMATS",
    "MUTED",
    "Cut",
    "body_html",
    "code_block_html",
    "escape",
    "format_body",
    "live_body_html",
    "markdown_html",
    "settle_lines",
    "settle_markdown",
]

# Colours chosen to read on light and dark themes: anything with a background
# also fixes its text colour.
MUTED = "opacity:.72"
FONT_SMALL = "font-size:12px"
CODE_BG = "background:#f6f8fa;color:#24292e"

FORMATS = ("markdown", "text", "code", "json")  # the values of --format


def escape(value: Any) -> str:
    """``value`` as text safe inside HTML, attribute values included."""
    return html.escape(str(value), quote=True)


def format_body(text: str, fmt: str = "markdown") -> str:
    """A reply text as markdown, in one of the formats of ``--format``."""
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


# --------------------------------------------------------------------------- markdown → HTML

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

    class Renderer(mistune.HTMLRenderer):
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


def body_html(text: str, fmt: str = "markdown") -> str:
    """A reply text as HTML, in one of the formats of ``--format`` (markdown, text, code, json)."""
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


def live_body_html(text: str, fmt: str = "markdown") -> str:
    """A text still arriving: markdown without highlighting, the other formats as plain lines.

    Preformatted formats stream as plain text in seamless blocks; the final
    render (:func:`body_html`) formats the whole (e.g. pretty JSON, one code block).
    """
    if fmt == "markdown":
        return markdown_html(text, highlight=False)
    style = "white-space:pre-wrap;margin:0;padding:0 10px;" + ("" if fmt == "text" else CODE_BG)
    return f'<pre style="{style}">{html.escape(text)}</pre>'


# --------------------------------------------------------------------------- streaming cuts

_FENCE_RE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


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
            if (
                match
                and match.group(2)[0] == fence[0]
                and len(match.group(2)) >= fence[1]
                and not match.group(3).strip()
            ):
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
