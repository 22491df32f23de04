"""The magics in a real Jupyter kernel, driven by nbclient, as a saved notebook keeps them.

The kernel inherits COMPASS_BASE_URL / COMPASS_API_KEY from the ``compass_server``
fixture's environment, exactly like a notebook started with those variables set.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from compass_jupyter.testing import Scenario

pytestmark = pytest.mark.timeout(120)


def notebook(*sources: str) -> Any:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


def visible(cell: Any) -> list[Any]:
    """Outputs that show something (the emptied live output of a streamed reply left out)."""
    shown = []
    for out in cell.outputs:
        if out.output_type in ("display_data", "execute_result") and not any(out.data.values()):
            continue
        shown.append(out)
    return shown


def texts(cell: Any) -> str:
    return "\n".join(
        out.get("text", "") if out.output_type == "stream" else "\n".join(str(v) for v in out.get("data", {}).values())
        for out in cell.outputs
    )


@pytest.fixture(params=["plain", "widget"])
def view(request, monkeypatch) -> str:
    """Both ways a reply renders: plain mime outputs, and the widget panel (with its HTML twin)."""
    monkeypatch.setenv("COMPASS_VIEW", request.param)
    return request.param


def rendered(out: Any) -> str:
    """The rich rendering a reader sees: markdown (plain view) or HTML (widget view)."""
    return out.data.get("text/markdown") or out.data["text/html"]


def test_a_notebook_of_compass_cells_saves_final_outputs(compass_server, view):
    nb = notebook(
        "%load_ext compass_jupyter",
        "%%compass -t 0\nHello from the notebook",
        "topic = 'streams'\n",
        "%%compass -o answer\nTell me about {topic}",
        "answer.text",
        "%%compass -t 9\nThis is refused",
        "%compass history",
    )
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True)
    client.execute()
    cells = nb.cells

    assert cells[0].outputs == []
    # a streamed reply: one final markdown output (reply + summary), the live output emptied
    shown = visible(cells[1])
    assert len(shown) == 1, cells[1].outputs
    markdown = rendered(shown[0])
    assert "Hello from the notebook" in markdown
    assert "gpt-4o · finish: stop" in shown[0].data["text/plain"] and "total" in markdown
    if view == "widget":
        assert "application/vnd.jupyter.widget-view+json" in shown[0].data
    assert all(out.output_type == "display_data" for out in cells[1].outputs)
    assert len(cells[1].outputs) <= 2

    assert "Tell me about streams" in rendered(visible(cells[3])[0])
    assert "streams" in cells[4].outputs[0].data["text/plain"]
    assert compass_server.requests[-1].body["messages"][-1]["content"] == "Tell me about streams"

    # a refused cell: a short error, no traceback, nothing sent
    error_text = texts(cells[5])
    assert "temperature must be between 0 and 2" in error_text
    assert "Traceback" not in error_text and "File " not in error_text
    assert len(compass_server.requests) == 2

    history = texts(cells[6])
    assert "Hello from the notebook" in history and "Tell me about streams" in history
    assert "This is refused" not in history


def test_interrupting_a_stream_keeps_the_partial_reply(compass_server, view):
    compass_server.enqueue(Scenario(tokens=200, text="alpha beta gamma delta", delay=0.15))
    nb = notebook(
        "%load_ext compass_jupyter",
        "%%compass -o partial\nCount slowly",
        "%compass history",
        "print(partial.incomplete, partial.interrupted, len(partial.text) > 0)",
    )
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True)

    def interrupt_after_first_chunks() -> None:
        deadline = time.monotonic() + 30
        while not compass_server.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(1.0)  # a few chunks at 0.15 s each
        asyncio.run(client.km.interrupt_kernel())  # what the front end's interrupt button does

    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        started = time.monotonic()
        thread = threading.Thread(target=interrupt_after_first_chunks, daemon=True)
        thread.start()
        client.execute_cell(nb.cells[1], 1)
        took = time.monotonic() - started
        thread.join()
        for index in (2, 3):
            client.execute_cell(nb.cells[index], index)

    assert took < 15, "the interrupt must stop the stream at once, not after all 200 tokens (30 s)"
    cell = nb.cells[1]
    shown = visible(cell)
    reply = [out for out in shown if out.output_type == "display_data"]
    assert len(reply) == 1
    markdown = rendered(reply[0])
    assert "alpha beta" in markdown and reply[0].data["text/plain"].startswith("alpha beta")
    assert "nterrupted" in markdown
    error_text = texts(cell)
    assert "Interrupted" in error_text and "Traceback" not in error_text and "KeyboardInterrupt" not in error_text

    history = nb.cells[2].outputs[0].data
    assert "(incomplete" in history["text/markdown"]
    assert "[assistant] (incomplete) alpha beta" in history["text/plain"]
    assert nb.cells[3].outputs[0].text.strip() == "True True True"
