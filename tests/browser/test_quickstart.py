"""The quickstart tutorial as a reader meets it: opened in JupyterLab, Run All, read the replies.

The notebook is the real ``notebooks/01-quickstart.ipynb``, copied into the
server's folder without its saved outputs. Its kernel finds its backend in the environment,
as a reader's would: this module starts a stand-in Compass server and runs a
``jupyter lab`` of its own whose environment points at it (the session's shared
server may already be running without that environment, and a session fixture
is set up only once).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect

from compass_jupyter.testing import StandInServer

from .harness import JupyterServer, cell, open_notebook, run_all, wait_idle, widget_errors

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01-quickstart.ipynb"
FIRST_QUESTION = "Explain in two sentences what a Python list comprehension is."
FIRST_REPLY = f"Stand-in gpt-4o here. You said: \u201c{FIRST_QUESTION}\u201d"
# The summary line under it. Its parts are separate elements in the widget view (the
# separators carry their own padding), so spaces around them are optional.
SUMMARY = re.compile(r"gpt-4o\s*\u00b7\s*finish: stop\s*\u00b7.*first token \d+\.\d+s")
# Outputs that mean something went wrong: stderr (warnings, UsageError) and tracebacks.
ERROR_OUTPUTS = (
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
)


@pytest.fixture(scope="module")
def stand_in() -> Iterator[StandInServer]:
    with StandInServer(key="quickstart-browser-key") as server:
        yield server


@pytest.fixture(scope="module")
def jupyter_env(stand_in: StandInServer) -> dict[str, str]:
    return {"COMPASS_BASE_URL": stand_in.base_url, "COMPASS_API_KEY": stand_in.key}


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory, jupyter_env: dict[str, str]) -> Iterator[JupyterServer]:
    server = JupyterServer(tmp_path_factory.mktemp("jupyter-quickstart"), env=jupyter_env).start()
    try:
        yield server
    finally:
        server.stop()


def _index_of(source_start: str) -> int:
    """Index (among all cells, as the harness counts) of the first cell whose source starts so."""
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    return next(i for i, c in enumerate(cells) if c.source.startswith(source_start))


def _copy_without_outputs(jupyter: JupyterServer) -> str:
    """The tutorial as committed, minus its saved outputs.

    Otherwise what is checked could be the saved outputs rather than this run's,
    and the fresh execution counts (1, 2, ...) would equal the saved ones, which
    ``wait_idle`` rightly does not take as proof that the cells ran.
    """
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for item in nb.cells:
        if item.cell_type == "code":
            item.outputs = []
            item.execution_count = None
    nbformat.write(nb, jupyter.root_dir / NOTEBOOK.name)
    return NOTEBOOK.name


def test_quickstart_runs_in_jupyterlab(page: Page, jupyter: JupyterServer, stand_in: StandInServer) -> None:
    name = _copy_without_outputs(jupyter)
    open_notebook(page, jupyter, name, ui="lab")
    run_all(page)
    wait_idle(page, timeout=120)

    first = cell(page, _index_of("%%compass"))
    expect(first.locator(".jp-OutputArea")).to_contain_text(FIRST_REPLY)
    expect(first.locator(".jp-OutputArea")).to_contain_text(SUMMARY)
    # The reply is shown once, not once live and again at the end.
    assert first.locator(".jp-OutputArea").inner_text().count(FIRST_QUESTION) == 1

    # %compass usage: one table row per request made so far (three cells above it).
    usage = cell(page, _index_of("%compass usage")).locator(".jp-OutputArea")
    expect(usage.locator("tr", has_text="gpt-4o")).to_have_count(3)

    assert page.locator(ERROR_OUTPUTS).all_inner_texts() == []
    assert widget_errors(page) == []

    # Every question reached the backend named by the environment, each streamed.
    asked = [r.body["messages"][-1]["content"] for r in stand_in.requests]
    assert asked[0] == FIRST_QUESTION
    assert len(asked) == 4, asked
    assert all(r.body.get("stream") is True for r in stand_in.requests)
