"""The rendering package on its own: each fact of a reply, a comparison or the usage in every form.

Values are built by hand (no server, no kernel), so each test names exactly what
goes in and checks what a reader of each form sees: the markdown as written,
the HTML as parsed by the standard library, the text as printed. The end-to-end
tests (test_views_html, test_views_widget, test_magics, the notebooks) show the
same renderings on what the engine really builds.
"""

from __future__ import annotations

import ast
import base64
import itertools
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from compass_jupyter import rendering
from compass_jupyter.conversation import Turn
from compass_jupyter.rendering import compare, markup, notices, tables, transcript, usage
from compass_jupyter.rendering import reply as rr
from compass_jupyter.reply import Audio, Choice, Latency, Reply, TokenLogprob, ToolCall, Usage

PACKAGE = Path(rendering.__file__).resolve().parents[1]


class Html(HTMLParser):
    """Tags with their attributes, and the visible text, of an HTML fragment."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.parts: list[str] = []
        self.feed(source)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _calls() -> list[ToolCall]:
    return [
        ToolCall(
            id="call_1", name="get_weather", arguments_json='{"city": "Paris"}', content="Sunny, 21 C", duration=0.012
        ),
        ToolCall(id="call_2", name="convert", arguments_json='{"x": 1}', error="ValueError: no unit"),
    ]


def _reply() -> Reply:
    """A reply with text, reasoning, logprobs, tool calls (one in an earlier round), citations and usage."""
    calls = _calls()
    step = Reply(model="gpt-4o", choices=[Choice(text="", tool_calls=calls[:1], finish_reason="tool_calls")])
    tokens = [TokenLogprob("Paris", -0.01, top=[("Paris", -0.01), ("Lyon", -4.6)]), TokenLogprob(" is sunny", -1.2)]
    choice = Choice(
        text="Paris is sunny",
        finish_reason="stop",
        tool_calls=calls[1:],
        logprobs=tokens,
        citations=[{"text": "sunny in Paris", "document_ids": ["weather-doc"]}],
    )
    return Reply(
        model="gpt-4o", steps=[step], choices=[choice], usage=Usage(12, 5, 17), latency=Latency(0.25, 1.5, 20.0)
    )


# --------------------------------------------------------------------------- one reply, three forms


def test_a_reply_says_the_same_in_markdown_html_and_text() -> None:
    reply = _reply()
    bundle = rr.reply_bundle(reply)
    forms = {
        "markdown": bundle["text/markdown"],
        "html": Html(rr.reply_html(reply)).text,
        "text": bundle["text/plain"],
    }
    shared = [
        "Paris is sunny",
        "get_weather",
        "Paris",
        "Sunny, 21 C",
        "convert",
        "ValueError: no unit",
        "gpt-4o",
        "finish: stop",
    ]
    for form, shown in forms.items():
        for fact in shared:
            assert fact in shown, f"{fact!r} missing from the {form} form"
    # Logprobs and citations: markdown and HTML (the text form stays one line per part).
    for form in ("markdown", "html"):
        for fact in ("Logprobs", "Lyon", "Citations", "sunny in Paris", "weather-doc"):
            assert fact in forms[form], f"{fact!r} missing from the {form} form"
    # Both tool calls, the earlier round's first, in each form.
    for shown in forms.values():
        assert shown.index("get_weather") < shown.index("convert")
    assert "12 in · 5 out · 17 total" in forms["text"] and "first token 0.25s" in forms["text"]
    assert "prompt 12" in forms["html"] and "first token 0.25s" in forms["html"]


def test_a_partial_reply_is_marked_partial_in_every_form() -> None:
    for reply, word in (
        (Reply(model="m", choices=[Choice(text="Half")], incomplete=True, interrupted=True), "nterrupted"),
        (Reply(model="m", choices=[Choice(text="Half")], incomplete=True, error="stream broke"), "ncomplete"),
    ):
        bundle = rr.reply_bundle(reply)
        html_text = Html(rr.reply_html(reply)).text
        for shown in (bundle["text/markdown"], bundle["text/plain"], html_text):
            assert word in shown and "partial" in shown and "Half" in shown
        if reply.error:
            assert all("stream broke" in shown for shown in (bundle["text/markdown"], bundle["text/plain"], html_text))


def test_choices_are_shown_one_by_one_in_every_form() -> None:
    reply = Reply(
        model="m",
        choices=[
            Choice(index=0, text="first", finish_reason="stop"),
            Choice(index=1, text="second", finish_reason="length"),
        ],
    )
    bundle = rr.reply_bundle(reply)
    html_text = Html(rr.reply_html(reply)).text
    assert "**Choice 2** · finish: length" in bundle["text/markdown"]
    assert "[choice 2] second" in bundle["text/plain"]
    assert "Choice 2" in html_text and "finish: length" in html_text and "second" in html_text


def test_the_html_bundle_of_a_finished_reply() -> None:
    reply = Reply(model="m", choices=[Choice(text='{"a": [1, 2]}', finish_reason="stop")])
    bundle = rr.reply_html_bundle(reply, "json")
    assert set(bundle) == {"text/html", "text/plain", "application/json"}  # no markdown: the HTML says it
    assert bundle["application/json"] == {"a": [1, 2]} and '"a": [' in bundle["text/plain"]
    plain = rr.reply_html_bundle(Reply(model="m", choices=[Choice(text="hi")]), warnings=["careful"])
    assert set(plain) == {"text/html", "text/plain"} and "careful" in plain["text/html"]


def test_the_live_markdown_shows_a_cut_body_and_counts_the_whole_reply() -> None:
    whole = Reply(model="m", choices=[Choice(text="x" * 5000)])
    cut = Reply(model="m", choices=[Choice(text="…tail")])
    live = rr.live_markdown(whole, body=cut)
    assert "…tail" in live and "x" * 100 not in live and "receiving… · 5000 characters" in live


def test_spoken_replies_show_the_transcript_as_their_text() -> None:
    audio = Audio(data=b"\x00\x01" * 2400, format="pcm16", transcript="Hello there")
    reply = Reply(model="gpt-4o-audio-preview", choices=[Choice(audio=audio, finish_reason="stop")])
    html_out = rr.reply_html(reply)
    assert Html(html_out).text.count("Hello there") == 1  # the text, not again under the player
    src = re.search(r'<audio[^>]*src="data:audio/wav;base64,([^"]+)"', html_out)
    assert src and base64.b64decode(src.group(1)).startswith(b"RIFF")
    bundle = rr.reply_bundle(reply)
    assert "Hello there" in bundle["text/markdown"] and "<audio controls" in bundle["text/markdown"]
    assert "Hello there" in bundle["text/plain"] and "[audio: 0.1 s pcm16]" in bundle["text/plain"]


# --------------------------------------------------------------------------- usage


def _turns() -> tuple[list[Turn], Usage | None]:
    turns = [
        Turn(
            model="gpt-4o",
            usage=Usage(10, 20, 30, cached_tokens=0),
            ttft=0.1,
            total=0.5,
            tokens_per_s=40.0,
            finish_reason="stop",
        ),
        Turn(
            model="o3",
            usage=Usage(5, 6, 11, reasoning_tokens=3),
            total=1.25,
            tool_rounds=2,
            kind="compare",
            finish_reason="stop",
        ),
        Turn(model="gpt-4.1", usage=None, incomplete=True),
    ]
    return turns, Usage.total(t.usage for t in turns)


def _markdown_rows(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in rows]


def test_the_usage_table_has_the_same_columns_and_values_in_every_form() -> None:
    turns, total = _turns()
    bundle = usage.usage_bundle(turns, total)
    columns = list(usage.USAGE_COLUMNS)
    assert len(columns) == 13
    md_rows = _markdown_rows(bundle["text/markdown"])
    assert md_rows[0] == columns
    text_lines = bundle["text/plain"].splitlines()
    assert text_lines[0] == usage.TITLE and text_lines[1].split("  ")[0] == "#"
    assert re.split(r"\s{2,}", text_lines[1]) == columns
    page = Html(bundle["text/html"])
    assert [t for t, _ in page.tags].count("th") == 13
    for header in columns:
        assert header in page.text
    # The same rows in every form: one per request and the totals.
    rows = usage.usage_rows(turns, total)
    assert md_rows[1:] == [[v.replace("|", "\\|") for v in row] for row in rows]
    assert len(text_lines) == 3 + len(rows) + 1  # title, head, rule, rows, note
    for row in rows:
        for value in row:
            assert value in page.text
    assert rows[2][3:6] == ["n/a"] * 3 and rows[2][-1] == "incomplete"
    assert rows[-1][:6] == ["total", "3 requests", "", "15", "26", "41"]
    note = "1 request(s) reported no usage (n/a), so the totals leave them out."
    assert all(note in shown for shown in (bundle["text/markdown"], bundle["text/plain"], page.text))


def test_the_usage_bars_scale_with_the_largest_request() -> None:
    turns, total = _turns()
    page = Html(usage.usage_html(turns, total))
    bars = [attrs for tag, attrs in page.tags if tag == "span" and attrs.get("class") == "compass-usage-bar"]
    assert [bar["title"] for bar in bars] == ["prompt 10 · completion 20", "prompt 5 · completion 6"]
    widths = [float(w) for w in re.findall(r"width:([\d.]+)px;background", usage.usage_html(turns, total))]
    assert widths == pytest.approx([100 * 10 / 30, 100 * 20 / 30, 100 * 5 / 30, 100 * 6 / 30], abs=0.1)
    empty = usage.usage_bundle([], None)
    assert all("No requests yet" in v for v in empty.values())


# --------------------------------------------------------------------------- compare


def _compared() -> list[Reply]:
    return [
        Reply(model="gpt-4o", choices=[Choice(text="**Bold** answer", finish_reason="stop")], usage=Usage(3, 4, 7)),
        Reply(model="gpt-4.1", choices=[Choice(text="Half an")], incomplete=True, interrupted=True),
        Reply(request={"model": "o3-mini"}, choices=[Choice(text="x")], incomplete=True, error="server said no"),
    ]


def test_a_comparison_says_the_same_in_every_form() -> None:
    replies = _compared()
    bundle = compare.compare_bundle(replies, kept=0)
    html_text = Html(bundle["text/html"]).text
    facts = [
        "gpt-4o · kept in history", "Bold", "gpt-4.1", "Half an", "interrupted: the reply is partial",
        "o3-mini", "error: server said no", "finish: stop",
    ]  # fmt: skip
    for form, shown in (("markdown", bundle["text/markdown"]), ("text", bundle["text/plain"]), ("html", html_text)):
        for fact in facts:
            assert fact in shown, f"{fact!r} missing from the {form} form"
        assert shown.index("gpt-4o") < shown.index("gpt-4.1") < shown.index("o3-mini")
    assert "<strong>Bold</strong>" in bundle["text/html"]  # the reply's markdown is rendered in the HTML
    assert "kept in history" not in bundle["text/markdown"].split("### gpt-4.1")[1]


def test_plain_and_widget_compare_views_leave_the_same_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ipywidgets")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from compass_jupyter.views import plain
    from compass_jupyter.views.widget import CompareView

    InteractiveShell.instance()
    shown: list[dict[str, Any]] = []
    monkeypatch.setattr(plain, "_display", lambda bundle, live=False: shown.append(bundle))
    models = ["gpt-4o", "gpt-4.1", "o3-mini"]
    plain.PlainCompareView(models, pick=1, warn=lambda m: None).finish(_compared())
    with capture_output() as captured:
        CompareView(models, pick=1, warn=lambda m: None).finish(_compared())
    widget_final = captured.outputs[-1].data
    assert shown[-1]["text/html"] == widget_final["text/html"] == compare.compare_html(_compared(), kept=1)
    assert shown[-1]["text/plain"] == widget_final["text/plain"]
    assert "text/markdown" in shown[-1] and "text/markdown" not in widget_final  # as for one reply


# --------------------------------------------------------------------------- escaping

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&"


def _hostile_reply() -> Reply:
    call = ToolCall(id=HOSTILE, name=HOSTILE, arguments_json=json.dumps({"q": HOSTILE}), content=HOSTILE, error=None)
    failed = ToolCall(id="c2", name="f", arguments_json="{", error=HOSTILE)
    choice = Choice(
        text=HOSTILE + "\n\n[link](javascript:alert(3))",
        finish_reason=HOSTILE,
        reasoning=HOSTILE,
        refusal=HOSTILE,
        tool_calls=[call, failed],
        logprobs=[TokenLogprob(HOSTILE, -0.5, top=[(HOSTILE, -0.5)])],
        citations=[
            {"text": HOSTILE, "url": "javascript:alert(4)", "document_ids": [HOSTILE], "start": HOSTILE, "end": 1},
            HOSTILE,
        ],
        audio=Audio(data=b"\x00\x00" * 100, format="pcm16", transcript=HOSTILE, id=HOSTILE),
    )
    return Reply(model=HOSTILE, choices=[choice], error=HOSTILE, incomplete=True, warnings=[HOSTILE])


def _assert_inert(source: str) -> None:
    """Nothing in ``source`` runs or loads: no script, no event handler, no javascript: URL."""
    page = Html(source)
    for tag, attrs in page.tags:
        assert tag not in ("script", "img", "iframe", "style", "link"), (tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("href", "src"):
                assert (value or "").startswith(("data:", "http://", "https://", "#")), (tag, value)
    assert "<script>" in page.text  # shown as text


def test_html_escapes_everything_the_server_sends() -> None:
    reply = _hostile_reply()
    for fmt in markup.FORMATS:
        _assert_inert(rr.reply_html(reply, fmt, error=HOSTILE, warnings=[HOSTILE]))
    _assert_inert(compare.compare_html([reply, reply], kept=0, warnings=[HOSTILE]))
    turn = Turn(model=HOSTILE, usage=Usage(1, 2, 3), finish_reason=HOSTILE, kind=HOSTILE)
    _assert_inert(usage.usage_html([turn], Usage(1, 2, 3)))
    _assert_inert(tables.table_bundle([HOSTILE], [[HOSTILE]], title=HOSTILE, note=HOSTILE)["text/html"])
    message = {
        "role": "assistant",
        "name": HOSTILE,
        "content": HOSTILE,
        "tool_calls": [{"function": {"name": HOSTILE, "arguments": HOSTILE}}],
    }
    for role in ("assistant", "tool", "user", HOSTILE):
        _assert_inert(transcript.message_html({**message, "role": role}))
    _assert_inert(
        notices.notice_html("error", HOSTILE)
        + notices.note_html(HOSTILE)
        + notices.message_bundle(HOSTILE, detail=HOSTILE)["text/html"]
    )
    _assert_inert(notices.preformatted_bundle(HOSTILE)["text/html"])


def test_markdown_table_cells_cannot_break_the_table() -> None:
    md = tables.table_markdown(["a|b"], [["x|y\nz"]])
    assert md.splitlines()[-1] == "| x\\|y<br>z |" and len(_markdown_rows(md)[0]) == 1


# --------------------------------------------------------------------------- tables, transcripts, notices


def test_the_magics_tables() -> None:
    settings = tables.config_bundle([["model", "gpt-4o", "default"]])
    assert (
        settings["text/markdown"].startswith("**Compass settings**")
        and "| model | gpt-4o | default |" in settings["text/markdown"]
    )
    assert "Precedence" in settings["text/plain"] and "Precedence" in settings["text/html"]
    catalog = tables.catalog_bundle([{"model": "gpt-4o", "tools": "yes"}])
    assert _markdown_rows(catalog["text/markdown"]) == [["model", "tools"], ["gpt-4o", "yes"]]
    assert tables.help_bundle([["%compass key", "enter the key"]])["text/plain"].splitlines()[1].split() == [
        "command",
        "what",
        "it",
        "does",
    ]


def test_a_transcript_names_speakers_media_calls_and_incomplete_turns() -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {}}],
        },
        {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "look", "arguments": "{}"}}]},
        {"role": "tool", "name": "look", "tool_call_id": "c1", "content": "a cat"},
        {"role": "assistant", "content": "A **cat**", "incomplete": True},
    ]
    md = transcript.transcript_bundle("Be brief.", messages, "PLAIN")
    assert md["text/plain"] == "PLAIN"
    for fact in (
        "**system**",
        "Be brief.",
        "*[image_url]*",
        "🔧 calls `look({})`",
        "**tool result · look**",
        "(incomplete, not sent again)",
    ):
        assert fact in md["text/markdown"]
    cards = [Html(transcript.message_html(m)).text for m in messages]
    assert "[image_url]" in cards[0] and "look({})" in cards[1] and "tool result · look" in cards[2]
    assert "incomplete, not sent again" in cards[3] and "cat" in cards[3]
    assert transcript.transcript_bundle(None, [], "")["text/plain"] == "The conversation is empty."


def test_the_formats_of_a_reply_body() -> None:
    assert markup.format_body("a\nb", "text") == "    a\n    b"
    assert markup.format_body("has ``` inside", "code").startswith("~~~~\n")
    assert markup.format_body('{"a":1}', "json") == '```json\n{\n  "a": 1\n}\n```'
    assert markup.format_body("not json", "json") == "not json"
    assert "<pre" in markup.live_body_html("x < 1", "code") and "x &lt; 1" in markup.live_body_html("x < 1", "text")
    assert markup.escape("<\"&'>") == "&lt;&quot;&amp;&#x27;&gt;"


# --------------------------------------------------------------------------- no import circle


def _module_level_imports(path: Path, name: str) -> set[str]:
    """The package modules ``path`` imports when it is imported (not in functions or TYPE_CHECKING)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for item in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(item, ast.Import):
                found |= {alias.name for alias in item.names}
            elif isinstance(item, ast.ImportFrom):
                if item.level:
                    base = name.split(".")[: len(name.split(".")) - item.level + (1 if is_package else 0)]
                    target = ".".join(base + ([item.module] if item.module else []))
                else:
                    target = item.module or ""
                found |= {target} | {f"{target}.{alias.name}" for alias in item.names}
    return found


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def test_no_two_modules_import_each_other() -> None:
    modules = _modules()
    imports = {name: _module_level_imports(path, name) & set(modules) - {name} for name, path in modules.items()}
    mutual = [(a, b) for a, b in itertools.combinations(sorted(modules), 2) if b in imports[a] and a in imports[b]]
    assert mutual == []
    # The rendering package depends on nothing else of the package when it is imported.
    for name, found in imports.items():
        if name.startswith("compass_jupyter.rendering"):
            assert all(m.startswith("compass_jupyter.rendering") for m in found), (name, found)


def test_importing_reply_does_not_import_rendering() -> None:
    code = (
        "import sys, compass_jupyter.reply; print(sorted(m for m in sys.modules if 'rendering' in m or 'views' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import compass_jupyter.reply as r; b = r.Reply(model='m')._repr_mimebundle_(); print(sorted(b))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['text/markdown', 'text/plain']"


def test_the_package_reaches_every_public_function() -> None:
    modules = [getattr(rendering, name) for name in rendering._MODULES]
    names = [n for module in modules for n in module.__all__]
    assert len(names) == len(set(names)), "a public name is defined twice"
    for module in modules:
        for name in module.__all__:
            assert getattr(rendering, name) is getattr(module, name)
