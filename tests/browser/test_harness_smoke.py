"""The harness itself: a widget updated in place renders step by step in both UIs."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .harness import (
    JupyterServer,
    cell_outputs,
    open_notebook,
    read_recorded,
    record_distinct_texts,
    run_all,
    wait_idle,
    widget_errors,
)

UPDATES = 40

STREAMING_CELL = f"""\
import time
import ipywidgets as widgets
from IPython.display import display

box = widgets.HTML(value="step 0")
display(box)
for step in range(1, {UPDATES + 1}):
    time.sleep(0.05)
    box.value = f"step {{step}}"
print("done")
"""


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_widget_streams_step_by_step(page: Page, jupyter: JupyterServer, ui: str) -> None:
    name = f"smoke-{ui}.ipynb"  # one file per UI: a shared file would share its kernel
    jupyter.put_notebook(name, [("markdown", "# Smoke"), STREAMING_CELL])

    open_notebook(page, jupyter, name, ui=ui)
    record_distinct_texts(page, ".widget-html-content")
    run_all(page)
    wait_idle(page)

    outputs = cell_outputs(page, 1)
    expect(outputs.locator(".widget-html-content")).to_have_text(f"step {UPDATES}")
    expect(outputs.filter(has_text="done")).to_have_count(1)
    seen = read_recorded(page)
    assert len(seen) >= 10, f"the widget jumped to its end state; it showed only {seen}"
    assert seen[-1] == f"step {UPDATES}"
    assert widget_errors(page) == []
