"""The progress panel of cj.map as a person sees it, in JupyterLab 4 and Notebook 7.

The notebook starts a stand-in server inside its kernel that answers each request
in about half a second, then maps a prompt over 24 rows, three at a time, one of
which the server refuses (the sixth to arrive). While it runs, the panel must show the counts moving
(recorded by a MutationObserver: several distinct states, the done count
growing, rows in flight, the tokens); at the end the same panel shows the
summary with the failure and its row, and the bar is full.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from .harness import (
    SCREENSHOTS_DIR,
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

SETUP = """\
import os
import tempfile

import compass_jupyter as cj
from compass_jupyter.testing import Scenario, StandInServer

server = StandInServer(delay=0.04).start()  # about half a second per answer
os.environ.update(
    COMPASS_BASE_URL=server.base_url,
    COMPASS_API_KEY=server.key,
    COMPASS_STORE=os.path.join(tempfile.mkdtemp(), "exchanges.db"),
)
"""

MAP = """\
server.enqueue(Scenario(times=5), Scenario(status=400, error_message="This row was refused on purpose."))
result = cj.map("Answer briefly: {row}", [f"item {i}" for i in range(24)], concurrency=3)
"""

CHECK = """\
failed = [i for i, value in enumerate(result) if isinstance(value, cj.RowError)]
print(result.summary.answered, result.summary.failed, f"failed row {failed[0]}")
server.stop()
"""

CELLS = [("markdown", "# Progress of cj.map"), SETUP, MAP, CHECK]
MAP_CELL, CHECK_CELL = 2, 3
PANEL = ".compass-map-progress"


def _picture(page: Page, name: str) -> None:
    try:
        cell(page, MAP_CELL).screenshot(path=str(SCREENSHOTS_DIR / f"{artifact_name(name)}.png"), timeout=10_000)
    except Exception:  # a missing picture must not hide the test's own result
        pass


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_the_panel_counts_live_and_ends_with_the_summary(page: Page, jupyter: JupyterServer, ui: str) -> None:
    name = f"batch-progress-{ui}.ipynb"
    jupyter.put_notebook(name, CELLS)
    open_notebook(page, jupyter, name, ui=ui)
    record_distinct_texts(page, PANEL)
    run_all(page)
    # A picture of the panel while it counts, for a person to look at.
    page.wait_for_function(
        "(sel) => Array.from(document.querySelectorAll(sel)).some((e) => /\\b1[0-6] of 24 rows/.test(e.textContent))",
        arg=PANEL,
        timeout=60_000,
    )
    _picture(page, f"batch-progress-{ui}-live")
    wait_idle(page, timeout=180)
    _picture(page, f"batch-progress-{ui}-done")

    assert widget_errors(page) == []
    out = cell_outputs(page, MAP_CELL)
    panel = out.locator(PANEL)
    expect(panel).to_have_count(1)  # the live output was emptied; the finished panel is the one left
    expect(panel).to_contain_text("24 rows: 23 answered by gpt-4o, 1 failed")
    expect(panel).to_contain_text("BadRequestError")
    expect(panel).to_contain_text("refused on purpose")
    check = cell_outputs(page, CHECK_CELL)
    expect(check).to_contain_text(re.compile(r"23 1 failed row \d+"))
    row = re.search(r"failed row (\d+)", check.first.inner_text()).group(1)  # type: ignore[union-attr]
    expect(panel).to_contain_text(f"(row {row})")  # the summary names the row that failed
    bar = out.locator(".widget-progress, .progress")
    expect(bar.first).to_be_visible()

    states = read_recorded(page, PANEL)
    live = [s for s in states if re.search(r"of 24 rows", s)]
    done = [int(re.search(r"(\d+) of 24 rows", s).group(1)) for s in live]  # type: ignore[union-attr]
    assert len(set(done)) >= 3, f"the panel did not count step by step: {live}"
    assert done == sorted(done), f"the done count went backwards: {done}"
    assert any(0 < d < 24 for d in done), done
    assert any("in flight" in s and not re.search(r"\b0 in flight", s) for s in live), live
    assert any(re.search(r"[1-9][\d,]* tokens in", s) for s in live), live
    assert any("left" in s for s in live), f"no time left was shown: {live}"
    assert any("last error" in s and "refused on purpose" in s for s in live), live
