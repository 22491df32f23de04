"""The live reply views as a person sees them, in JupyterLab 4 and Notebook 7.

Each notebook starts the stand-in server inside its own kernel and drives the
Python API with a view directly (``LiveReplyView`` / ``CompareView``), so what
is checked here is the view itself: text that appears step by step, the final
markdown, the status line, the logprobs heatmap and table, an audio player
that really loads, tool calls, choices as tabs and models side by side. A
5,000-token stream checks that a long reply finishes and leaves the page
usable, and a notebook saved without widget state must still show its replies.

The feature notebook runs once per UI (a module fixture); each test then looks
at one view on the page it left. Besides the page screenshot, each view gets
its own picture in test-artifacts/screenshots/reply-views-<ui>-<view>.png.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from .harness import (
    CONSOLE_DIR,
    SCREENSHOTS_DIR,
    VIEWPORT,
    JupyterServer,
    artifact_name,
    cell,
    cell_outputs,
    open_notebook,
    read_recorded,
    record_distinct_texts,
    run_all,
    wait_idle,
    widget_errors,
)

UIS = ["lab", "notebook"]

REPLY_MARKDOWN = (
    "## Plan for the trip\n\n"
    "We leave **early** on Monday and take the *scenic* road along the coast, "
    "stopping twice for coffee and once for lunch near the old harbour.\n\n"
    "- pack the bags\n- check the tyres\n- buy the tickets\n\n"
    "```python\nprint('ready')\n```\n\n"
    "That is the whole plan, done."
)

SETUP = """\
import compass_jupyter as cj
from compass_jupyter.testing import Scenario, StandInServer
from compass_jupyter.views.widget import CompareView, LiveReplyView

server = StandInServer().start()
client = cj.Client(base_url=server.base_url, api_key=server.key)
ask = [{"role": "user", "content": "Plan a trip"}]
"""

STREAMED = f"""\
server.enqueue(Scenario(text={REPLY_MARKDOWN!r}, delay=0.04))
view = LiveReplyView()
view.show()
reply = client.chat(ask, logprobs=True, top_logprobs=3, on_delta=view.on_delta)
view.finish(reply)
"""

AUDIO = """\
view = LiveReplyView()
view.show()
reply = client.chat(ask, model="gpt-4o-audio-preview", modalities=["text", "audio"],
                    audio={"voice": "alloy", "format": "pcm16"}, on_delta=view.on_delta)
view.finish(reply)
"""

TOOLS = """\
def get_weather(city: str) -> str:
    \"\"\"The weather in a city.\"\"\"
    return f"Sunny in {city}, 24 C"

view = LiveReplyView()
view.show()
conversation = cj.Session(client)
reply = conversation.chat("Use get_weather for Paris", tools=[get_weather], observer=view)
view.finish(reply)
"""

CHOICES = """\
view = LiveReplyView()
view.show()
reply = client.chat(ask, n=2, temperature=1, on_delta=view.on_delta)
view.finish(reply)
"""

COMPARE = """\
models = ["gpt-4o", "gpt-4.1"]
compare = CompareView(models)
compare.show()
replies = cj.Session(client).compare("Plan a trip", models=models, observer=compare)
compare.finish(replies)
"""

LONG = """\
import time
server.enqueue(Scenario(tokens=5000, delay={delay}))
view = LiveReplyView()
view.show()
started = time.perf_counter()
reply = client.chat(ask, on_delta=view.on_delta)
view.finish(reply)
print(f"long stream: {{len(reply.text)}} characters in {{time.perf_counter() - started:.2f}} s, "
      f"{{view.renders}} renders")
"""

LAST = "server.stop()"

# Cell indices in the feature notebook (the markdown title is cell 0).
FEATURE_CELLS = [("markdown", "# Reply views"), SETUP, STREAMED, AUDIO, TOOLS, CHOICES, COMPARE, LAST]
STREAMED_CELL, AUDIO_CELL, TOOLS_CELL, CHOICES_CELL, COMPARE_CELL = 2, 3, 4, 5, 6
FEATURE_NAMES = {
    STREAMED_CELL: "streamed",
    AUDIO_CELL: "audio",
    TOOLS_CELL: "tools",
    CHOICES_CELL: "choices",
    COMPARE_CELL: "compare",
}


@pytest.fixture(scope="module", params=UIS)
def features(request: pytest.FixtureRequest, browser: Browser, jupyter: JupyterServer) -> Iterator[Page]:
    """The feature notebook, run once per UI; the tests below look at the page it left."""
    ui = request.param
    name = f"reply-views-{ui}.ipynb"
    jupyter.put_notebook(name, FEATURE_CELLS)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    page.on("pageerror", lambda exc: console.append(f"[pageerror] {exc}"))
    try:
        open_notebook(page, jupyter, name, ui=ui)
        record_distinct_texts(page, ".compass-text")
        run_all(page)
        wait_idle(page, timeout=180)
        yield page
    finally:
        _save_cell_screenshots(page, ui)
        name = artifact_name(f"reply-views-{ui}")
        CONSOLE_DIR.mkdir(parents=True, exist_ok=True)
        (CONSOLE_DIR / f"{name}.log").write_text("\n".join(console) + "\n")
        page.screenshot(path=str(SCREENSHOTS_DIR / f"{name}.png"))
        context.close()
        jupyter.shutdown_kernels()


def _save_cell_screenshots(page: Page, ui: str) -> None:
    """One picture per view (the page screenshot shows only what is scrolled into sight)."""
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    # A tall window, so that a whole cell fits in the notebook's own scrolling panel.
    page.set_viewport_size({"width": VIEWPORT["width"], "height": 4000})
    for index, label in FEATURE_NAMES.items():
        try:
            cell(page, index).screenshot(path=str(SCREENSHOTS_DIR / f"reply-views-{ui}-{label}.png"), timeout=10_000)
        except Exception as exc:  # a missing picture must not hide the test's own result
            warnings.warn(f"no screenshot of the {label} cell in {ui}: {exc}", stacklevel=1)
    page.set_viewport_size(VIEWPORT)


def _audio_duration(audio: Locator) -> float:
    """The duration the browser found in an <audio> element's data (-1: it could not load it)."""
    return audio.evaluate(
        """(el) => new Promise((resolve) => {
            if (el.readyState >= 1) return resolve(el.duration);
            el.addEventListener('loadedmetadata', () => resolve(el.duration), {once: true});
            el.addEventListener('error', () => resolve(-1), {once: true});
            el.load();
        })"""
    )


def test_no_widget_errors(features: Page) -> None:
    assert widget_errors(features) == []


def test_text_renders_step_by_step_as_markdown(features: Page) -> None:
    out = cell_outputs(features, STREAMED_CELL)
    text = out.locator(".compass-text")
    expect(text).to_contain_text("That is the whole plan, done.")
    # Markdown was rendered, not shown raw.
    expect(text.locator("h2")).to_have_text("Plan for the trip")
    expect(text.locator("strong")).to_have_text("early")
    expect(text.locator("li")).to_have_count(3)
    expect(text.locator("pre")).to_contain_text("print('ready')")
    assert "**" not in text.inner_text() and "##" not in text.inner_text()

    final = text.text_content() or ""
    states = [t for t in read_recorded(features, ".compass-text") if t and final.startswith(t[:12])]
    assert len(states) >= 5, f"the reply did not appear step by step; the text went through {states}"
    assert len(states[0]) < len(final) / 2, f"the first state shown was already most of the reply: {states[0]!r}"


def test_status_line(features: Page) -> None:
    status = cell_outputs(features, STREAMED_CELL).locator(".compass-status")
    expect(status).to_contain_text("gpt-4o")
    expect(status).to_contain_text("finish: stop")
    line = status.inner_text()
    for word in ("prompt", "completion", "total", "first token", "tok/s"):
        assert word in line, f"{word!r} is missing from the status line {line!r}"
    assert "streaming" not in line


def test_logprobs_heatmap_and_table(features: Page) -> None:
    out = cell_outputs(features, STREAMED_CELL)
    spans = out.locator(".compass-heatmap span")
    expect(spans.first).to_be_visible()
    tokens: list[dict[str, Any]] = spans.evaluate_all(
        """(els) => els.map((e) => ({
            text: e.textContent,
            prob: parseFloat(e.title),
            background: getComputedStyle(e).backgroundColor,
        }))"""
    )
    assert "".join(t["text"] for t in tokens).startswith("## Plan for the trip")
    likely = max(tokens, key=lambda t: t["prob"])
    unlikely = min(tokens, key=lambda t: t["prob"])
    assert likely["prob"] - unlikely["prob"] > 30, (likely, unlikely)
    assert likely["background"] != unlikely["background"], (
        f"a {likely['prob']}% token and a {unlikely['prob']}% token have the same colour {likely['background']}"
    )
    # Hover titles name the alternatives.
    assert any("alternatives:" in title for title in spans.evaluate_all("(els) => els.map((e) => e.title)"))
    legend = out.locator(".compass-logprobs")
    expect(legend).to_contain_text("token probability")
    tables = out.locator(".compass-logprobs-table")
    expect(tables.first.locator("thead")).to_contain_text("top alternatives")
    first_rows = tables.first.locator("tbody tr")
    expect(first_rows).to_have_count(20)  # a long reply shows its first rows...
    expect(first_rows.first).to_contain_text("%")
    more = out.locator(".compass-logprobs-more")
    rest = tables.nth(1).locator("tbody tr")
    expect(rest.first).to_be_hidden()
    more.locator("summary").click()  # ...and the others one click away
    expect(rest.first).to_be_visible()
    assert first_rows.count() + rest.count() == len(tokens)


def test_audio_player_loads(features: Page) -> None:
    out = cell_outputs(features, AUDIO_CELL)
    audio = out.locator(".compass-audio audio")
    expect(audio).to_have_count(1)
    duration = _audio_duration(audio)
    assert duration > 0, f"the audio element did not load (duration {duration})"
    link = out.locator(".compass-audio a[download]")
    assert (link.get_attribute("download") or "").endswith(".wav")
    assert (link.get_attribute("href") or "").startswith("data:audio/wav;base64,")
    expect(out.locator(".compass-text")).to_contain_text("Stand-in gpt-4o-audio-preview here.")
    expect(out.locator(".compass-status")).to_contain_text("audio out")


def test_tool_call_entry(features: Page) -> None:
    out = cell_outputs(features, TOOLS_CELL)
    entry = out.locator(".compass-tool-call")
    expect(entry).to_have_count(1)
    summary = entry.locator("summary")
    expect(summary).to_contain_text("get_weather")
    expect(summary).to_contain_text("Paris")
    details_body = entry.locator("pre").last
    expect(details_body).to_be_hidden()  # collapsed by default
    summary.click()
    expect(details_body).to_be_visible()
    expect(entry).to_contain_text("Sunny in Paris, 24 C")
    assert re.search(r"\d+ ms|\d+\.\d+ s", summary.inner_text()), summary.inner_text()
    expect(out.locator(".compass-text")).to_contain_text("Based on get_weather")


def test_choices_as_tabs(features: Page) -> None:
    out = cell_outputs(features, CHOICES_CELL)
    tabs = out.locator(".compass-choices .lm-TabBar-tab")
    expect(tabs).to_have_count(2)
    expect(tabs.nth(0)).to_contain_text("Choice 1")
    tabs.nth(1).click()
    second = out.locator(".compass-choices .compass-choice").nth(1)
    expect(second.locator(".compass-text")).to_contain_text("(choice 2)")
    expect(second).to_be_visible()


def test_compare_side_by_side(features: Page) -> None:
    out = cell_outputs(features, COMPARE_CELL)
    grid = out.locator(".compass-compare-view")
    columns = grid.locator(":scope > .compass-live-reply")
    expect(columns).to_have_count(2)
    for i, model in enumerate(["gpt-4o", "gpt-4.1"]):
        column = columns.nth(i)
        expect(column.locator(".compass-text")).to_contain_text(f"Stand-in {model} here.")
        expect(column.locator(".compass-status")).to_contain_text("total")
        expect(column.locator(".compass-status")).to_contain_text("first token")
    left, right = (columns.nth(i).bounding_box() for i in range(2))
    assert left and right and right["x"] > left["x"] + left["width"] - 1, "the columns are not side by side"


@pytest.mark.parametrize("pace", ["burst", "steady"])
@pytest.mark.parametrize("ui", UIS)
def test_long_stream_keeps_page_responsive(page: Page, jupyter: JupyterServer, ui: str, pace: str) -> None:
    """5,000 tokens at once (burst), or over about ten seconds (steady: ~200 renders)."""
    name = f"reply-long-{ui}-{pace}.ipynb"
    delay = 0.0 if pace == "burst" else 0.001
    jupyter.put_notebook(name, [("markdown", "# Long reply"), SETUP, LONG.format(delay=delay), LAST])
    open_notebook(page, jupyter, name, ui=ui)
    # The longest gap between two animation frames while the cells run: a frozen page shows up here.
    page.evaluate(
        """() => {
            window.__gaps = {max: 0};
            let last = performance.now();
            const tick = (now) => {
                window.__gaps.max = Math.max(window.__gaps.max, now - last);
                last = now;
                requestAnimationFrame(tick);
            };
            requestAnimationFrame(tick);
        }"""
    )
    run_all(page)
    wait_idle(page, timeout=180)
    out = cell_outputs(page, 2)
    expect(out.locator(".compass-status")).to_contain_text("finish: stop", timeout=30_000)
    expect(out.filter(has_text="long stream:")).to_have_count(1)
    text = out.locator(".compass-text").inner_text()
    assert len(text) > 20_000, f"the long reply shows only {len(text)} characters"

    # A person clicks another cell right after: it must respond at once.
    started = time.perf_counter()
    cell(page, 0).click()
    expect(cell(page, 0)).to_have_class(re.compile(r"jp-mod-selected"), timeout=5_000)
    click_s = time.perf_counter() - started
    max_gap = page.evaluate("() => window.__gaps.max")
    printed = out.filter(has_text="long stream:").inner_text()
    print(
        f"\n[{ui}, {pace}] {printed.strip()}; click answered in {click_s * 1000:.0f} ms; "
        f"longest frame gap while running {max_gap:.0f} ms"
    )
    assert click_s < 5, f"the page took {click_s:.1f} s to answer a click after the long stream"


SAVED_CELLS = [
    SETUP,
    "server.enqueue(Scenario(text='## Plan\\n\\nLeave **early**.'))\n"
    "view = LiveReplyView()\nview.finish(client.chat(ask, logprobs=True, top_logprobs=2, on_delta=view.on_delta))",
    "view = LiveReplyView()\nview.finish(client.chat(ask, model='gpt-4o-audio-preview', modalities=['text', 'audio'],"
    " audio={'voice': 'alloy', 'format': 'pcm16'}, on_delta=view.on_delta))",
    LAST,
]


@pytest.mark.parametrize("ui", UIS)
def test_saved_notebook_reopens_readably(page: Page, jupyter: JupyterServer, ui: str) -> None:
    """Run elsewhere and saved without widget state, the replies still show (as their HTML)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in SAVED_CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    nb.metadata.pop("widgets", None)  # JupyterLab does not save widget state unless asked to
    name = f"reply-saved-{ui}.ipynb"
    nbformat.write(nb, jupyter.root_dir / name)

    open_notebook(page, jupyter, name, ui=ui)
    text_out = cell_outputs(page, 1)
    expect(text_out.locator("h2")).to_have_text("Plan")
    expect(text_out.locator("strong")).to_have_text("early")
    expect(text_out.locator(".compass-status")).to_contain_text("finish: stop")
    spans = text_out.locator(".compass-heatmap span")
    backgrounds = set(spans.evaluate_all("(els) => els.map((e) => getComputedStyle(e).backgroundColor)"))
    assert len(backgrounds) > 1, "the logprob colours were lost"
    audio_out = cell_outputs(page, 2).filter(has_text="Stand-in")
    expect(audio_out).to_contain_text("Stand-in gpt-4o-audio-preview here.")
    audio = audio_out.locator("audio")
    expect(audio).to_have_count(1)
    assert _audio_duration(audio) > 0, "the saved audio does not play"
    assert widget_errors(page) == []
