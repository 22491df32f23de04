"""A growing text shown as widgets: settled blocks rendered once, and a short tail re-sent.

Every widget update re-sends its whole value, so a reply's text is split into
*settled* blocks (rendered with highlighting once, never sent again) and a *tail*,
the only part re-rendered while it streams (without highlighting, which is the
costly part). The pieces are kept in a list and joined once per render, so
appending a token is O(1).
"""

from __future__ import annotations

from typing import Any

from ..rendering.markup import Cut, body_html, live_body_html, markdown_html, settle_lines, settle_markdown

__all__ = ["FREEZE_AT", "TextPanel", "widgets", "wrap"]

FREEZE_AT = 1000  # characters of tail after which settled blocks are split off


def widgets() -> Any:
    import ipywidgets

    return ipywidgets


def wrap(inner: str) -> str:
    # Widget HTML has a 28 px line height and no markdown styles of its own; the
    # jp-RenderedHTMLCommon class gives it the notebook's markdown look in Lab and Notebook 7.
    return f'<div class="jp-RenderedHTMLCommon compass-md" style="line-height:1.55;padding:0">{inner}</div>'


class TextPanel:
    """A growing text shown as settled blocks plus a re-rendered tail."""

    def __init__(self, fmt: str = "markdown", *, freeze_at: int | None = None, css_class: str = "compass-text") -> None:
        w = widgets()
        self.fmt = fmt
        self.freeze_at = FREEZE_AT if freeze_at is None else freeze_at
        self._pieces: list[str] = []  # appended per token, joined once per render: linear in the length
        self._cut = 0  # text[:_cut] lives in settled blocks
        self._carry = ""  # markdown re-opening a code fence the last cut closed
        self._settled: list[tuple[Any, str]] = []  # (widget, its html)
        self._tail = self._new_block("")
        self._tail_html = ""
        self.box = w.VBox([self._tail], layout=w.Layout(width="100%"))
        self.box.add_class(css_class)
        self.dirty = False

    @staticmethod
    def _new_block(value: str) -> Any:
        w = widgets()
        block = w.HTMLMath(value=value, layout=w.Layout(margin="0", width="100%"))
        return block

    def _settle(self, pending: str) -> Cut | None:
        limit = 2 * self.freeze_at
        if self.fmt == "markdown":
            return settle_markdown(pending, hard_limit=limit)
        return settle_lines(pending, hard_limit=limit)

    @property
    def text(self) -> str:
        if len(self._pieces) > 1:
            self._pieces[:] = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    @text.setter
    def text(self, value: str) -> None:
        self._pieces[:] = [value]

    def append(self, piece: str) -> None:
        self._pieces.append(piece)
        self.dirty = True

    def render(self) -> None:
        """Send what changed since the last render (a settled block once, then the tail)."""
        if not self.dirty:
            return
        self.dirty = False
        pending = self._carry + self.text[self._cut :]
        added = False
        while len(pending) > self.freeze_at:
            cut = self._settle(pending)
            if cut is None:
                break
            # A settled block is sent once: it gets its final (highlighted) rendering now.
            html_settled = (
                markdown_html(cut.settled) if self.fmt == "markdown" else live_body_html(cut.settled, self.fmt)
            )
            shown = html_settled
            if cut.joined:
                # The block goes on in the next widget: no paragraph gap at the seam.
                at = shown.rfind("<p>")
                if at != -1:
                    shown = shown[:at] + '<p style="margin-bottom:0">' + shown[at + 3 :]
            # The tail widget becomes the settled block (its text shrinks to a prefix of
            # what it showed) and a new tail takes the rest, so nothing flickers.
            self._tail.value = wrap(shown)
            self._settled.append((self._tail, html_settled))
            self._tail = self._new_block("")
            self._tail_html = ""
            self._cut += cut.consumed - len(self._carry)
            self._carry = cut.carry
            pending = self._carry + self.text[self._cut :]
            added = True
        if added:
            self.box.children = tuple(w for w, _ in self._settled) + (self._tail,)
        tail_html = live_body_html(pending, self.fmt)
        if tail_html != self._tail_html:
            self._tail_html = tail_html
            self._tail.value = wrap(tail_html)

    def finish(self, text: str | None = None) -> None:
        """Render the final text; as one block when the streamed pieces differ from the whole."""
        if text is not None and text != self.text:
            if not text.startswith(self.text):
                self._forget_settled()  # not what streamed (another round's answer): start over
            self.text = text
            self.dirty = True
        if self.fmt == "markdown":
            self.render()
        full = body_html(self.text, self.fmt)
        pieces = "".join(html_ for _, html_ in self._settled) + self._tail_html
        if pieces == full:
            return
        self._forget_settled()
        self._cut = len(self.text)
        self._tail_html = full
        self._tail.value = wrap(full)
        self.dirty = False

    def _forget_settled(self) -> None:
        old = [w for w, _ in self._settled]
        self._settled = []
        self._cut, self._carry = 0, ""
        if old:
            self.box.children = (self._tail,)
            for widget in old:
                widget.close()
