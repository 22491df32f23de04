"""The HTML renderings (:mod:`compass_jupyter.rendering`): what a saved notebook shows beside the widgets.

Replies come from the stand-in server through a real Client (real sockets), so
the HTML is checked against what the engine really builds. The HTML is parsed
with the standard library's parser and checked for what a reader sees: no
scripts, no external files, the reply's text, the status line, the logprobs
colours, a playable WAV data URL, collapsed tool calls.
"""

from __future__ import annotations

import base64
import io
import re
import wave
from html.parser import HTMLParser
from typing import Any, Iterator

import pytest

from compass_jupyter import rendering as h
from compass_jupyter.client import Client
from compass_jupyter.conversation import Session, Turn
from compass_jupyter.rendering.usage import BAR_WIDTH
from compass_jupyter.reply import Choice, Reply, TokenLogprob, ToolCall, Usage
from compass_jupyter.testing import Scenario, StandInServer


class Page(HTMLParser):
    """A parsed HTML fragment: its elements (tag, attributes, text inside) and visible text."""

    VOID = {"br", "img", "hr", "input", "meta", "link", "source", "wbr"}

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.text_parts: list[str] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(element)
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                break

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        for element in self._open:
            element["text"] += data

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def find(self, tag: str, **attrs: str) -> list[dict[str, Any]]:
        found = []
        for element in self.elements:
            if element["tag"] != tag:
                continue
            if all(value in (element["attrs"].get(name.rstrip("_")) or "").split() for name, value in attrs.items()):
                found.append(element)
        return found


def assert_self_contained(source: str) -> None:
    """No scripts, no style sheets, no external resources: readable on GitHub and in nbconvert."""
    page = Page(source)
    tags = {e["tag"] for e in page.elements}
    assert not tags & {"script", "style", "link", "iframe"}, tags
    for element in page.elements:
        for name, value in element["attrs"].items():
            assert not name.startswith("on"), f"event handler {name} in {element}"
            if name in ("src", "href") and value:
                assert value.startswith(("data:", "https://", "http://", "#")), value


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer() as running:
        yield running


@pytest.fixture
def client(server: StandInServer) -> Client:
    return Client(base_url=server.base_url, api_key=server.key)


ASK = [{"role": "user", "content": "Plan a trip"}]


# --------------------------------------------------------------------------- markdown


def test_markdown_is_rendered_and_raw_html_is_shown_not_run() -> None:
    out = h.markdown_html(
        "## Title\n\nSome **bold** and a [link](https://example.org) and "
        "<script>alert(1)</script> <img src=x onerror=alert(1)> [bad](javascript:alert(1))"
    )
    page = Page(out)
    assert page.find("h2")[0]["text"] == "Title"
    assert page.find("strong")[0]["text"] == "bold"
    links = page.find("a")
    assert links[0]["attrs"]["href"] == "https://example.org"
    assert links[0]["attrs"]["target"] == "_blank"  # a click must not navigate the notebook away
    assert "javascript:" not in out
    assert "<script>" in page.text and "onerror" in page.text  # shown as text
    assert_self_contained(out)


def test_math_survives_markdown_for_the_front_end_to_typeset() -> None:
    out = h.markdown_html(r"Euler: $e^{i\pi} + 1 = 0$ and \(a_1 * b_2 * c\) and $$x_1^2$$; it costs $5 and $10.")
    text = Page(out).text
    assert r"$e^{i\pi} + 1 = 0$" in text
    assert r"\(a_1 * b_2 * c\)" in text  # not turned into emphasis, backslashes kept
    assert "$$x_1^2$$" in text
    assert "costs $5 and $10" in text
    assert "<em>" not in out


def test_code_blocks_are_highlighted_with_inline_colours() -> None:
    out = h.markdown_html("```python\ndef f(x):\n    return x < 1\n```")
    page = Page(out)
    assert page.find("pre") and "def f(x):" in page.text and "x < 1" in page.text
    assert 'style="color' in out  # Pygments with inline styles, no class-based CSS needed
    assert_self_contained(out)


def test_body_formats() -> None:
    assert '"a": 1' in Page(h.body_html('{"a":1}', "json")).text
    assert "\n  " in Page(h.body_html('{"a":[1,2]}', "json")).text  # pretty-printed
    assert Page(h.body_html("**not bold**", "text")).text == "**not bold**"
    assert Page(h.body_html("x = 1", "code")).find("pre")


# --------------------------------------------------------------------------- settling


def _render_by_cuts(text: str, step: int, limit: int) -> list[str]:
    """Replay a stream through settle_markdown the way the live view does; return settled pieces + tail."""
    pieces, carry, cut = [], "", 0
    for end in range(step, len(text) + step, step):
        seen = text[: min(end, len(text))]
        pending = carry + seen[cut:]
        while len(pending) > limit:
            found = h.settle_markdown(pending, hard_limit=2 * limit)
            if found is None:
                break
            pieces.append(found.settled)
            cut += found.consumed - len(carry)
            carry = found.carry
            pending = carry + seen[cut:]
    return pieces + [carry + text[cut:]]


def test_settled_blocks_render_like_the_whole_text() -> None:
    paragraphs = [f"Paragraph {i} says **something** about item {i}, with `code {i}`." for i in range(40)]
    text = "# Report\n\n" + "\n\n".join(paragraphs) + "\n\n- a\n- b\n"
    pieces = _render_by_cuts(text, step=7, limit=200)
    assert len(pieces) > 5, "a long text must be cut into settled blocks"
    assert "".join(h.markdown_html(p) for p in pieces) == h.markdown_html(text)
    assert max(len(p) for p in pieces) < 400


def test_long_code_fences_are_closed_and_reopened() -> None:
    code = "\n".join(f"x{i} = {i}  # a line of code" for i in range(200))
    text = f"Intro.\n\n```python\n{code}\n```\n\nAfter."
    pieces = _render_by_cuts(text, step=11, limit=300)
    assert len(pieces) > 5
    assert max(len(p) for p in pieces) < 700
    for piece in pieces[1:-1]:
        assert piece.startswith("```python\n") and piece.endswith("```\n"), piece[:40]
    rendered = "".join(Page(h.markdown_html(p)).text for p in pieces)
    assert rendered.replace("\n", "") == Page(h.markdown_html(text)).text.replace("\n", "")


def test_one_long_paragraph_is_still_cut() -> None:
    text = " ".join(f"word{i}." for i in range(2000))
    pieces = _render_by_cuts(text, step=13, limit=500)
    assert len(pieces) > 5 and max(len(p) for p in pieces) < 1100
    assert "".join(pieces) == text


def test_no_cut_inside_an_open_code_span() -> None:
    cut = h.settle_markdown("start `code` " + "word " * 100 + "`open span " + "y" * 50, hard_limit=100)
    assert cut is not None and cut.settled.count("`") == 2 and cut.settled.endswith("word ")
    # With only an open span after the middle, there is nowhere safe to cut.
    assert h.settle_markdown("a" * 100 + " `open " + "x " * 100, hard_limit=10) is None


# --------------------------------------------------------------------------- status, banner


def test_status_line_of_a_finished_reply(client: Client) -> None:
    reply = client.chat(ASK, model="gpt-4o")
    text = Page(h.status_html(reply)).text
    assert "gpt-4o" in text and "finish: stop" in text
    assert f"prompt {reply.usage.prompt_tokens}" in text
    assert f"completion {reply.usage.completion_tokens}" in text
    assert f"total {reply.usage.total_tokens}" in text
    assert reply.latency.summary() in text  # in the same words as the plain view's line
    assert text.count("first token") == 1


def test_status_line_shows_the_usage_details_the_server_sent() -> None:
    reply = Reply(
        model="o3",
        usage=Usage(10, 50, 60, reasoning_tokens=32, cached_tokens=0),
        choices=[Choice(finish_reason="stop")],
    )
    text = Page(h.status_html(reply)).text
    assert "reasoning 32" in text and "cached: 0" in text
    assert "audio" not in text  # not sent, not shown
    assert "usage not reported" in Page(h.status_html(Reply(model="x", choices=[Choice()]))).text


def test_partial_replies_are_marked(server: StandInServer, client: Client) -> None:
    server.enqueue(Scenario(drop_after=3))
    with pytest.raises(Exception) as caught:
        client.chat(ASK)
    partial = caught.value.reply
    html_out = h.reply_html(partial, error=caught.value)
    text = Page(html_out).text
    assert "Incomplete" in text and "partial" in text
    assert partial.text and partial.text in text
    assert "⚠ incomplete" in Page(h.status_html(partial)).text
    interrupted = Reply(model="gpt-4o", choices=[Choice(text="Half a")], incomplete=True, interrupted=True)
    assert "Interrupted" in Page(h.reply_html(interrupted)).text


# --------------------------------------------------------------------------- logprobs


def test_logprob_colours_follow_probability() -> None:
    colours = [h.logprob_color(p) for p in (0.99, 0.8, 0.5, 0.2, 0.01)]
    assert colours[0] is None  # near-certain tokens keep the page's background
    assert len(set(colours)) == 5


def test_logprobs_heatmap_and_table(client: Client) -> None:
    reply = client.chat(ASK, logprobs=True, top_logprobs=3)
    out = h.logprobs_html(reply.logprobs)
    assert_self_contained(out)
    page = Page(out)
    spans = [
        s
        for s in page.find("span")
        if s["attrs"].get("title", "").endswith(")") or "alternatives" in s["attrs"].get("title", "")
    ]
    assert "".join(s["text"] for s in spans) == reply.text
    for span, token in zip(spans, reply.logprobs):
        assert span["attrs"]["title"].startswith(f"{token.prob:.1%}")
        colour = h.logprob_color(token.prob)
        assert (f"background:{colour}" in span["attrs"].get("style", "")) if colour else "style" not in span["attrs"]
    assert any("alternatives:" in s["attrs"]["title"] for s in spans)
    rows = page.find("table", **{"class_": "compass-logprobs-table"})
    assert rows, "no table"
    assert "top alternatives" in page.text and "token probability" in page.text


def test_long_logprobs_stay_small() -> None:
    tokens = [
        TokenLogprob(token=f" t{i}", logprob=-0.01 * (i % 300), top=[(f" t{i}", -0.01), (" x", -3.0)])
        for i in range(5000)
    ]
    out = h.logprobs_html(tokens)
    page = Page(out)
    table_rows = [e for e in page.elements if e["tag"] == "tr"]
    assert len(table_rows) <= 500 + 2  # capped, with the cap said
    assert "reply.logprobs has them all" in page.text
    assert len(out) < 400_000


# --------------------------------------------------------------------------- audio, tools, citations


def test_audio_player_with_a_playable_wav_and_a_download(client: Client) -> None:
    reply = client.chat(
        ASK, model="gpt-4o-audio-preview", modalities=["text", "audio"], audio={"voice": "alloy", "format": "pcm16"}
    )
    out = h.audio_html(reply.audio)
    assert_self_contained(out)
    page = Page(out)
    (player,) = page.find("audio")
    assert "controls" in player["attrs"]
    src = player["attrs"]["src"]
    assert src.startswith("data:audio/wav;base64,")
    with wave.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as wav:
        assert wav.getnframes() > 0 and wav.getframerate() == 24_000
    (link,) = [a for a in page.find("a") if "download" in a["attrs"]]
    assert link["attrs"]["download"].endswith(".wav") and link["attrs"]["href"] == src
    assert reply.audio.transcript in page.text
    assert reply.audio.transcript not in Page(h.audio_html(reply.audio, transcript=False)).text
    # The whole reply: the transcript is the text, shown once.
    whole = Page(h.reply_html(reply)).text
    assert whole.count(reply.audio.transcript) == 1


def test_tool_calls_collapsed_with_arguments_result_and_duration(client: Client) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    reply = Session(client).chat("Use get_weather for Paris", tools=[get_weather])
    out = h.reply_html(reply)
    assert_self_contained(out)
    page = Page(out)
    (entry,) = page.find("details", **{"class_": "compass-tool-call"})
    assert "open" not in entry["attrs"]
    summary = page.find("summary")[0]["text"]
    assert "get_weather" in summary and "Paris" in summary and "Sunny in Paris" in summary
    assert re.search(r"(\d+|<1) ms", summary)
    assert '"city": "Paris"' in entry["text"]
    failed = ToolCall(id="c1", name="boom", arguments_json='{"x": 1}', error="ValueError: no", duration=0.25)
    text = Page(h.tool_calls_html([failed])).text
    assert "error: ValueError: no" in text and "250 ms" in text


def test_citations() -> None:
    out = h.citations_html(
        [{"text": "the sky is blue", "document_ids": ["doc1"], "start": 0, "end": 15}, {"url": "javascript:x"}]
    )
    text = Page(out).text
    assert "the sky is blue" in text and "doc1" in text
    assert [a["attrs"]["href"] for a in Page(out).find("a")] == []  # only http(s) URLs become links


# --------------------------------------------------------------------------- whole replies


def test_reply_html_assembles_every_part() -> None:
    reply = Reply(
        model="gpt-4o",
        usage=Usage(5, 7, 12),
        choices=[
            Choice(
                text="The **answer**.",
                finish_reason="stop",
                reasoning="First I *thought*.",
                logprobs=[TokenLogprob("The", -0.01), TokenLogprob(" answer", -2.5)],
                citations=[{"text": "a source"}],
            )
        ],
    )
    out = h.reply_html(reply, warnings=["gpt-4o does not take min_p"])
    assert_self_contained(out)
    page = Page(out)
    assert page.find("strong")[0]["text"] == "answer"
    (reasoning,) = page.find("details", **{"class_": "compass-reasoning"})
    assert "open" not in reasoning["attrs"] and "thought" in reasoning["text"]
    for needle in ("a source", "Logprobs", "finish: stop", "total 12", "does not take min_p"):
        assert needle in page.text, needle


def test_choices_stacked(client: Client) -> None:
    reply = client.chat(ASK, n=3, temperature=1)
    page = Page(h.reply_html(reply))
    sections = page.find("div", **{"class_": "compass-choice"})
    assert len(sections) == 3
    for i, section in enumerate(sections):
        assert f"Choice {i + 1}" in section["text"] and reply.choices[i].text in section["text"]


def test_compare_grid(client: Client) -> None:
    replies = Session(client).compare("Plan a trip", models=["gpt-4o", "gpt-4.1"])
    out = h.compare_html(replies, kept=0)
    assert_self_contained(out)
    page = Page(out)
    heads = [e["text"] for e in page.find("th")]
    assert heads[0].startswith("gpt-4o") and "kept in history" in heads[0]
    assert heads[1].startswith("gpt-4.1") and "kept" not in heads[1]
    cells = page.find("td")
    assert replies[0].text in cells[0]["text"] and replies[1].text in cells[1]["text"]
    assert "first token" in cells[2]["text"] and "total" in cells[3]["text"]


# --------------------------------------------------------------------------- usage


def test_usage_table_and_bars(client: Client) -> None:
    session = Session(client)
    session.chat("one")
    session.chat("two, a longer question than the first one")
    session.turns.append(Turn(model="gpt-4o", usage=None, incomplete=True))
    out = h.usage_html(session.turns, session.usage)
    assert_self_contained(out)
    page = Page(out)
    assert [e["text"] for e in page.find("th")] == list(h.USAGE_COLUMNS)  # the same 13 as markdown and text
    rows = page.find("tr")
    assert len(rows) == 1 + 3 + 1  # head, three turns, total
    assert "n/a" in rows[3]["text"] and "incomplete" in rows[3]["text"]
    total = session.usage
    assert str(total.total_tokens) in rows[4]["text"] and "3 requests" in rows[4]["text"]
    assert "1 request(s) reported no usage (n/a), so the totals leave them out." in page.text
    bars = page.find("span", class_="compass-usage-bar")
    assert len(bars) == 2  # one per turn that reported usage, inside its "total" cell
    assert all(bar["attrs"]["title"].startswith("prompt ") for bar in bars)
    segments = [e for e in page.elements if e["tag"] == "span" and "background:#f58518" in e["attrs"].get("style", "")]
    second_turn = session.turns[1].usage
    assert float(re.search(r"width:([\d.]+)px", segments[1]["attrs"]["style"]).group(1)) == pytest.approx(
        BAR_WIDTH * second_turn.completion_tokens / max(t.usage.total_tokens for t in session.turns if t.usage), abs=0.1
    )
    assert "No requests yet" in Page(h.usage_html([], None)).text
