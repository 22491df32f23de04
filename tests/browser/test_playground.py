"""The playground in JupyterLab 4 and Notebook 7: set a slider, send, watch it stream, stop, copy as cell.

The notebooks start a stand-in server inside their own kernel and point the
settings at it, so the Jupyter server needs no environment.

The first test: the first reply streams at the server's pace (several distinct
states must be seen); the second is long and slow, so that Stop can end it while
it streams, which proves that Send left the kernel free to run the Stop
button's callback.

The second test: Stop pressed while the server has not sent a word yet closes
the connection within a second (seen in the kernel's TCP table: the server's
socket leaves ESTABLISHED), the status line moves from "Waiting for gpt-4o…" to
the model that answered as soon as it writes, and no box of the playground
sticks out of its output area, measured with the boxes' bounding rectangles.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .harness import (
    EXECUTION_INDICATOR,
    SCREENSHOTS_DIR,
    JupyterServer,
    cell,
    cell_outputs,
    open_notebook,
    read_recorded,
    record_distinct_texts,
    run_all,
    wait_idle,
    widget_errors,
)

SETUP = """\
import json
import compass_jupyter as cj
from compass_jupyter.settings import config
from compass_jupyter.testing import Scenario, StandInServer

server = StandInServer(delay=0.15).start()
# The first request gets the default reply at the server's pace, the second a long, slow one.
server.enqueue(Scenario(), Scenario(tokens=400, delay=0.1))
config.set("base_url", server.base_url)
config.set("api_key", server.key)
print("stand-in ready")
"""

SHOW = "pg = cj.Playground()\npg"

CHECK = """\
print("TASK " + type(pg.task).__name__)  # scheduled on the kernel's own asyncio loop
last = server.requests[-1].body if server.requests else None
print("LAST-BODY " + json.dumps(last))
"""

TRANSCRIPT = ".compass-pg-transcript"
REPLY_TEXT = f"{TRANSCRIPT} .compass-text"
FIRST = "Hello from the browser"
SECOND = "Tell me a long story"


def set_temperature(page: Page, value: str) -> None:
    """Type into the slider's readout, as a person does to set an exact value."""
    readout = page.locator(".compass-pg-temperature .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    expect(readout).to_have_text(value)


def transcript_text(page: Page) -> str:
    return page.locator(TRANSCRIPT).inner_text()


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_playground_streams_stops_and_copies(page: Page, jupyter: JupyterServer, ui: str) -> None:
    name = f"playground-{ui}.ipynb"
    jupyter.put_notebook(name, [("markdown", "# Playground"), SETUP, SHOW, CHECK])
    open_notebook(page, jupyter, name, ui=ui)
    record_distinct_texts(page, REPLY_TEXT)
    run_all(page)
    wait_idle(page)

    playground = cell_outputs(page, 2).locator(".compass-playground")
    expect(playground).to_be_visible()
    assert widget_errors(page) == []
    expect(playground).to_contain_text("No messages yet")
    # A parameter the chosen model is not documented for is disabled, and says why.
    effort = page.locator(".compass-pg-send-reasoning_effort input")
    expect(effort).to_be_disabled()
    reason = "reasoning_effort is documented only for gpt-5"
    assert reason in (effort.get_attribute("title") or "")
    assert reason in (page.locator(".compass-pg-label-reasoning_effort span").get_attribute("title") or "")

    # Temperature: typing into the readout moves the slider and ticks its "send" box.
    set_temperature(page, "1.30")
    expect(page.locator(".compass-pg-send-temperature input")).to_be_checked()

    # Send: the reply streams into the transcript, step by step.
    page.locator(".compass-pg-message textarea").fill(FIRST)
    send = page.locator("button.compass-pg-send")
    send.click()
    expect(page.locator(REPLY_TEXT).first).to_contain_text(f"You said: “{FIRST}”", timeout=30_000)
    expect(send).to_be_enabled(timeout=30_000)
    states = [t for t in read_recorded(page, REPLY_TEXT) if t.strip()]
    assert len(states) >= 4, f"the reply did not stream step by step; it showed only {states}"
    assert f"You said: “{FIRST}”" in states[-1]
    expect(page.locator(f"{TRANSCRIPT} .compass-status-line").first).to_contain_text("finish")

    # Stop: a long, slow reply ends at once, is marked interrupted and stops growing.
    page.locator(".compass-pg-message textarea").fill(SECOND)
    send.click()
    expect(send).to_be_disabled()
    second_reply = page.locator(REPLY_TEXT).nth(1)
    expect(second_reply).to_contain_text(re.compile(r"(\w+\W+){8}"), timeout=30_000)
    # While it streams, the kernel is idle: the request runs off the kernel's main thread.
    expect(page.locator(EXECUTION_INDICATOR)).to_have_attribute("data-status", "idle")
    page.locator("button.compass-pg-stop").click()
    expect(page.locator(TRANSCRIPT)).to_contain_text("Interrupted", timeout=15_000)
    expect(send).to_be_enabled()
    stopped_at = second_reply.inner_text()
    page.wait_for_timeout(1200)  # ten more chunks' time
    assert second_reply.inner_text() == stopped_at, "the reply kept growing after Stop"
    assert len(stopped_at.split()) < 300
    expect(page.locator(".compass-pg-notice")).to_contain_text("Stopped")
    # The harness keeps the page's screenshot; this one shows the whole panel after Stop.
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    playground.screenshot(path=str(SCREENSHOTS_DIR / f"playground-panel-{ui}.png"))

    # Copy as cell: the exact %%compass cell with the settings and the last message.
    page.locator("button.compass-pg-copy-as-cell").click()
    cell_box = page.locator(".compass-pg-cell textarea")
    expect(cell_box).to_be_visible()
    cell_text = cell_box.input_value()
    assert cell_text == f"%%compass -m gpt-4o -t 1.3\n{SECOND}", cell_text
    python_text = page.locator(".compass-pg-python textarea").input_value()
    assert "temperature=1.3," in python_text and f"{SECOND!r}," in python_text

    # The kernel confirms what was sent.
    cell(page, 3).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    output = cell_outputs(page, 3).filter(has_text="temperature")
    expect(output).to_have_count(1, timeout=30_000)
    printed = output.inner_text()
    assert "TASK Task" in printed, printed
    sent = json.loads(printed.split("LAST-BODY ", 1)[1])
    assert sent["temperature"] == 1.3
    assert sent["messages"][-1] == {"role": "user", "content": SECOND}
    assert sent["messages"][0]["content"] == FIRST  # the conversation went on from the first turn
    assert widget_errors(page) == []


# -- Stop before the first token, the status line, the layout ------------------------------

STOP_SETUP = """\
import compass_jupyter as cj
from compass_jupyter.settings import config
from compass_jupyter.testing import Scenario, StandInServer

server = StandInServer().start()
server.enqueue(
    # Nothing but the response head and an opening chunk for 8 s, then a word every 8 s.
    Scenario(model="gpt-4o-2024-08-06", delay=8),
    # A reply that streams slowly, from a model id other than the one asked for.
    Scenario(model="gpt-4o-2024-08-06", tokens=12, delay=0.3),
)
config.set("base_url", server.base_url)
config.set("api_key", server.key)
print(f"PORT {server.port}")
"""

STATUS = ".compass-pg-status"
MESSAGE = ".compass-pg-message textarea"

# Every element of the playground whose box sticks out of the output area (half a pixel of rounding allowed).
OVERFLOW_JS = """(root) => {
    const area = root.closest('.jp-OutputArea-output').getBoundingClientRect();
    const out = [];
    for (const el of [root, ...root.querySelectorAll('*')]) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 && r.height === 0) continue;  // not displayed
        if (r.right > area.right + 0.5 || r.left < area.left - 0.5) {
            out.push(`${el.tagName}.${String(el.className).split(' ').slice(-2).join('.')} `
                + `[${r.left.toFixed(1)}, ${r.right.toFixed(1)}] outside [${area.left.toFixed(1)}, ${area.right.toFixed(1)}]`);
        }
    }
    return out;
}"""


def server_connections(port: int) -> int:
    """The stand-in's open connections: its ESTABLISHED sockets (a closed peer leaves CLOSE_WAIT or nothing)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


def wait_for(condition: object, timeout: float, what: str) -> float:
    """Poll ``condition()`` until true; the seconds it took."""
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, f"{what} did not happen within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - start


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the server's connections from /proc/net/tcp")
@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_stop_before_the_first_token_status_lines_and_no_overflow(page: Page, jupyter: JupyterServer, ui: str) -> None:
    name = f"playground-stop-{ui}.ipynb"
    jupyter.put_notebook(name, [STOP_SETUP, "pg = cj.Playground()\npg"])
    open_notebook(page, jupyter, name, ui=ui)
    record_distinct_texts(page, STATUS)
    run_all(page)
    wait_idle(page)
    port = int(re.search(r"PORT (\d+)", cell_outputs(page, 0).first.inner_text()).group(1))  # type: ignore[union-attr]
    playground = cell_outputs(page, 1).locator(".compass-playground")
    expect(playground).to_be_visible()
    send, stop = page.locator("button.compass-pg-send"), page.locator("button.compass-pg-stop")

    # Stop before the first token: the server has answered with nothing but its head.
    page.locator(MESSAGE).fill("Are you there?")
    send.click()
    expect(page.locator(STATUS)).to_contain_text("Waiting for gpt-4o…")
    wait_for(lambda: server_connections(port) == 1, 10, "the request reaching the server")
    page.wait_for_timeout(500)
    expect(page.locator(STATUS)).to_contain_text("Waiting for gpt-4o")  # still no word, so still waiting
    clicked = time.monotonic()
    stop.click()
    closed = wait_for(lambda: server_connections(port) == 0, 1.5, "the connection closing after Stop")
    expect(page.locator(".compass-pg-notice")).to_contain_text("Stopped before the first words arrived", timeout=1500)
    ended = time.monotonic() - clicked
    assert closed < 1.0 and ended < 1.5, (
        f"the connection closed {closed:.2f} s and the panel settled {ended:.2f} s after Stop"
    )
    expect(send).to_be_enabled()
    expect(page.locator(MESSAGE)).to_have_value("Are you there?")  # back in the box, nothing was said
    expect(page.locator(".compass-pg-transcript")).to_contain_text("No messages yet")

    # Send it again: the status line names the model that answered as soon as it writes.
    send.click()
    expect(page.locator(STATUS)).to_contain_text("gpt-4o-2024-08-06 is writing…", timeout=10_000)
    reply = page.locator(".compass-pg-transcript .compass-text").first
    expect(reply).to_contain_text("stand-in")
    expect(send).to_be_enabled(timeout=30_000)
    expect(page.locator(STATUS)).to_have_text("")
    expect(page.locator(".compass-pg-transcript .compass-status-line")).to_contain_text("gpt-4o-2024-08-06")
    statuses = [t for t in read_recorded(page, STATUS) if t.strip()]
    assert statuses[0].startswith("Waiting for gpt-4o…"), statuses
    writing = next(i for i, t in enumerate(statuses) if "is writing" in t)
    assert not any("Waiting" in t for t in statuses[writing:]), statuses

    # Everything on show (a comparison, the copy box) stays inside the output area.
    page.locator(".compass-pg-compare-models select").select_option(["gpt-4o", "gpt-4.1"])
    page.locator(MESSAGE).fill("Which is better?")
    page.locator("button.compass-pg-compare").click()
    expect(page.locator(".compass-pg-transcript .compass-compare-view")).to_be_visible(timeout=10_000)
    expect(send).to_be_enabled(timeout=30_000)
    page.locator("button.compass-pg-copy-as-cell").click()
    expect(page.locator(".compass-pg-python textarea")).to_be_visible()
    playground.scroll_into_view_if_needed()
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    playground.screenshot(path=str(SCREENSHOTS_DIR / f"playground-stop-layout-{ui}.png"))
    outside = playground.evaluate(OVERFLOW_JS)
    assert outside == [], "parts of the playground stick out of the cell:\n" + "\n".join(outside)
    area = cell_outputs(page, 1).first
    assert area.evaluate("(e) => e.scrollWidth <= e.clientWidth"), "the output area scrolls sideways"
    assert widget_errors(page) == []


def test_a_saved_playground_reads_as_a_snapshot_without_a_kernel(
    page: Page, jupyter: JupyterServer, compass_server: object
) -> None:
    """As the tutorials are saved: the widget view dropped (its state is not saved), the snapshot kept."""
    import nbformat

    import compass_jupyter as cj

    cj.chat("Explain recursion in one sentence.", system="Be brief.")
    pg = cj.Playground().set(temperature=0.3)
    bundle = {k: v for k, v in pg._repr_mimebundle_().items() if not k.startswith("application/vnd.jupyter.widget")}
    pg.close()
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    cell_ = nbformat.v4.new_code_cell("cj.Playground()", execution_count=1)
    cell_.outputs = [nbformat.v4.new_output("execute_result", data=bundle, execution_count=1)]
    notebook.cells = [cell_]
    nbformat.write(notebook, jupyter.root_dir / "playground-saved.ipynb")

    open_notebook(page, jupyter, "playground-saved.ipynb")
    shown = cell_outputs(page, 0).first
    expect(shown.locator(".compass-pg-snapshot")).to_be_visible()
    for words in ("Compass playground", "snapshot", "temperature", "0.3", "Be brief.", "Explain recursion"):
        expect(shown).to_contain_text(words)
    assert "ipywidgets" not in shown.inner_text()
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    shown.screenshot(path=str(SCREENSHOTS_DIR / "playground-saved-lab.png"))
