"""The playground in JupyterLab 4 and Notebook 7: set a slider, send, watch it stream, stop, copy as cell.

The notebook starts a stand-in server inside its own kernel and points the
settings at it, so the Jupyter server needs no environment. The first reply
streams at the server's pace (several distinct states must be seen); the second
is long and slow, so that Stop can end it while it streams, which proves that
Send left the kernel free to run the Stop button's callback.
"""

from __future__ import annotations

import json
import re

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

    # Stop: a long, slow reply ends at its next chunk, is marked interrupted and stops growing.
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
