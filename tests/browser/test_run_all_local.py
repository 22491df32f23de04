"""A newcomer's path: every tutorial, opened in JupyterLab and run with Run > Run All Cells, on the local model.

``./dev lab`` starts JupyterLab with ``COMPASS_OFFLINE=local`` and no key, so each
kernel starts llama.cpp (SmolLM2) on its first request. This module does the
same: one ``jupyter lab`` for the module whose environment holds only that and a
temporary store (no key, no cassette), serving a temporary copy of
``notebooks/`` (with ``assets/`` and ``cassettes/``), because JupyterLab
autosaves what it runs and the repository's notebooks must stay as committed.

For each tutorial the page runs every cell through the menu, waits until the
kernel is idle and every code cell has a fresh execution count, then checks what
a person would see:

- no cell shows an error (a traceback, or IPython's ``UsageError`` line on
  stderr), except the cells tagged ``raises-exception``, which must show theirs;
- every ``%%compass`` cell shows a finished reply whose status line names
  ``smollm2-135m-instruct`` (one per model in compare mode; for ``--over``, the
  summary says which model answered every row);
- the browser console shows no error from the front end.

A picture of each finished notebook, whole, goes to the test's tmp dir; its path
is in every failure message.
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import ConsoleMessage, Page
from playwright.sync_api import Error as PlaywrightError

from compass_jupyter.local_model.server import LOCAL_MODEL_ID, local_available

from .harness import CELL, PANEL, VIEWPORT, JupyterServer, open_notebook, run_all, wait_idle, widget_errors

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
# The numbered tutorials, in reading order.
TUTORIALS = sorted(path.name for path in NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))

pytestmark = [
    pytest.mark.local,
    pytest.mark.skipif(not local_available(), reason="needs the [local] extra: pip install 'compass-jupyter[local]'"),
    # A fresh kernel starts llama.cpp, then every cell of the tutorial runs at ~40 tokens/s.
    pytest.mark.timeout(600),
]

RUN_TIMEOUT = 300.0  # seconds for Run All; the longest tutorial takes about a minute on two cores
OPEN_TIMEOUT = 120.0

# How a failed cell looks in the page: a traceback output, or (for a magic's
# UsageError, which IPython prints instead of a traceback) a stderr line naming an error.
ERROR_MIME = "application/vnd.jupyter.error"
STDERR_MIME = "application/vnd.jupyter.stderr"
ERROR_LINE = re.compile(r"^(UsageError|Traceback \(most recent call last\)|\w*(Error|Exception))\b", re.MULTILINE)

# The finished summary of a ``%%compass --over`` cell: every row answered by the local model.
OVER_DONE = re.compile(rf"^([\d,]+) rows?: \1 answered by {re.escape(LOCAL_MODEL_ID)}, 0 failed\b")

# Browser console errors that do not come from the front end's code. None is known
# today: each one added here must say why it is harmless.
HARMLESS_CONSOLE: list[re.Pattern[str]] = []

# What the page shows per cell, read in one call (every cell is in the DOM: the
# harness turns JupyterLab's windowing off). Status lines and ``--over`` summaries
# are found inside the cell's outputs, wherever the widget tree puts them.
_CELLS_JS = """(cellSel) => Array.from(document.querySelectorAll(cellSel), (c) => ({
    outputs: Array.from(c.querySelectorAll('.jp-OutputArea-output'),
        (o) => ({mime: o.dataset.mimeType || '', text: o.innerText})),
    statusLines: Array.from(c.querySelectorAll('.compass-status-line'), (s) => ({
        text: s.innerText,
        state: (s.querySelector('.compass-state') || {textContent: ''}).textContent.trim(),
    })),
    overSummaries: Array.from(c.querySelectorAll('.compass-map-summary'), (s) => s.innerText.trim()),
}))"""


@dataclass
class Findings:
    """What went wrong in one notebook, gathered so one failure lists everything."""

    problems: list[str] = field(default_factory=list)

    def add(self, index: int, source: str, what: str) -> None:
        first_line = source.splitlines()[0] if source else ""
        self.problems.append(f"cell {index} ({first_line!r}): {what}")


@pytest.fixture(scope="module")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What ``./dev lab`` gives a kernel on a fresh machine, with a store of its own.

    The harness drops every ``COMPASS_*`` variable of the calling shell, so there is
    no key and no cassette: each kernel starts the local model itself.
    """
    store = tmp_path_factory.mktemp("compass-store") / "exchanges.db"
    return {"COMPASS_OFFLINE": "local", "COMPASS_STORE": str(store)}


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory, jupyter_env: dict[str, str]) -> Iterator[JupyterServer]:
    """One ``jupyter lab`` for every tutorial, rooted in a copy of ``notebooks/``.

    The page fixture shuts every kernel down after each test, so each tutorial
    still gets a fresh kernel (and its own llama.cpp), as when a person opens it.
    """
    server = JupyterServer(tmp_path_factory.mktemp("jupyter-run-all-local"), env=jupyter_env)
    shutil.copytree(NOTEBOOKS_DIR, server.root_dir)
    for name in TUTORIALS:
        _forget_execution_counts(server.root_dir / name)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def copied(jupyter: JupyterServer) -> dict[str, nbformat.NotebookNode]:
    """Each tutorial as copied, read before any page opens (and autosaves) it: the cells and their tags."""
    return {name: nbformat.read(jupyter.root_dir / name, as_version=4) for name in TUTORIALS}


def _forget_execution_counts(path: Path) -> None:
    """Blank the saved execution counts, keeping the saved outputs a newcomer sees.

    The tutorials are saved after a top-to-bottom run, so their counts (1, 2, ...)
    equal what a fresh kernel gives; ``wait_idle`` knows a cell ran only by a count
    that changed. Executing a cell clears its outputs first, so once every count
    is fresh, every output on the page is from this run.
    """
    nb = nbformat.read(path, as_version=4)
    for item in nb.cells:
        if item.cell_type == "code":
            item.execution_count = None
            for output in item.outputs:
                if "execution_count" in output:
                    output.execution_count = None
    nbformat.write(nb, path)


def _screenshot(page: Page, path: Path) -> str:
    """The whole notebook in one picture: the viewport grows to the notebook's height.

    JupyterLab scrolls the notebook inside its panel, so a full-page screenshot
    would show only the first screen. The panel's scroller also pads past the end
    by a screen, so the height that counts is that of the cells (its inner box).
    Returns the line naming the picture for a failure message; a picture that
    could not be taken must not hide the failure itself.
    """
    try:
        _take_screenshot(page, path)
    except PlaywrightError as exc:
        return f"Screenshot: none ({exc})"
    return f"Screenshot: {path}"


def _take_screenshot(page: Page, path: Path) -> None:
    sizes = page.evaluate(
        """(panel) => {
            const outer = document.querySelector(panel + ' .jp-WindowedPanel-outer');
            const inner = document.querySelector(panel + ' .jp-WindowedPanel-inner');
            return outer && inner ? [outer.clientHeight, inner.scrollHeight] : null;
        }""",
        PANEL,
    )
    if sizes:
        visible, content = sizes
        # Menus, tabs and toolbar keep their height; Chromium caps a picture at 16,384 px.
        height = min(VIEWPORT["height"] - visible + content + 40, 16_000)
        page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
        # Lumino lays the panel out again on the next frame; wait for it rather than a fixed time.
        page.wait_for_function(
            """([panel, wanted]) => {
                const outer = document.querySelector(panel + ' .jp-WindowedPanel-outer');
                return !outer || outer.clientHeight >= wanted;
            }""",
            arg=[PANEL, min(content, 16_000 - VIEWPORT["height"])],
            timeout=10_000,
        )
        # Run All leaves the notebook scrolled to its last cell.
        page.evaluate("(panel) => { document.querySelector(panel + ' .jp-WindowedPanel-outer').scrollTop = 0; }", PANEL)
    page.screenshot(path=str(path))
    page.set_viewport_size(VIEWPORT)


def _models(source: str) -> list[str]:
    """The models a ``%%compass`` line names with ``-m a,b,c`` (one entry without ``-m``)."""
    words = shlex.split(source.splitlines()[0])
    for flag, value in zip(words, words[1:]):
        if flag in ("-m", "--model"):
            return value.split(",")
    return ["default"]


def _check_cell(findings: Findings, index: int, cell: Any, shown: dict[str, Any]) -> None:
    """Append to ``findings`` what this cell shows wrong."""
    source: str = cell.source
    on_purpose = "raises-exception" in cell.metadata.get("tags", [])
    errors = [o["text"].strip() for o in shown["outputs"] if o["mime"] == ERROR_MIME]
    errors += [o["text"].strip() for o in shown["outputs"] if o["mime"] == STDERR_MIME and ERROR_LINE.search(o["text"])]
    if on_purpose:
        # Its error is the tutorial's point; without it the lesson is lost.
        if not errors:
            findings.add(index, source, "is tagged raises-exception but shows no error")
        return
    for text in errors:
        findings.add(index, source, f"shows an error: {text[-800:]}")

    if not source.lstrip().startswith("%%compass"):
        return
    if "--over" in shlex.split(source.splitlines()[0]):
        summaries = shown["overSummaries"]
        if not summaries:
            findings.add(index, source, "shows no finished summary of its rows")
        for text in summaries:
            if not OVER_DONE.match(text):
                findings.add(index, source, f"summary does not say {LOCAL_MODEL_ID} answered every row: {text!r}")
        return
    lines = shown["statusLines"]
    wanted = len(_models(source))
    if len(lines) != wanted:
        findings.add(index, source, f"shows {len(lines)} reply status line(s), not {wanted}: {lines}")
    for line in lines:
        if not line["state"].startswith("finish:"):
            findings.add(index, source, f"reply did not finish (state {line['state']!r}): {line['text']!r}")
        if LOCAL_MODEL_ID not in line["text"]:
            findings.add(index, source, f"status line does not name {LOCAL_MODEL_ID}: {line['text']!r}")


def _front_end_errors(messages: list[str]) -> list[str]:
    return [m for m in messages if not any(p.search(m) for p in HARMLESS_CONSOLE)]


@pytest.mark.parametrize("name", TUTORIALS)
def test_run_all_cells_answers_from_the_local_model(
    page: Page, jupyter: JupyterServer, copied: dict[str, nbformat.NotebookNode], name: str, tmp_path: Path
) -> None:
    console_errors: list[str] = []

    def remember(msg: ConsoleMessage) -> None:
        if msg.type == "error":
            location = msg.location.get("url", "")
            console_errors.append(f"{msg.text} (at {location})" if location else msg.text)

    page.on("console", remember)
    page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc}"))

    picture = tmp_path / f"{Path(name).stem}.png"
    nb = copied[name]
    open_notebook(page, jupyter, name, timeout=OPEN_TIMEOUT)
    run_all(page)
    try:
        wait_idle(page, timeout=RUN_TIMEOUT)
    except AssertionError as exc:
        shot = _screenshot(page, picture)
        console = "".join(f"\nbrowser console error: {text}" for text in _front_end_errors(console_errors))
        raise AssertionError(f"{name}: {exc}{console}\n{shot}") from None
    shot = _screenshot(page, picture)

    shown = page.evaluate(_CELLS_JS, CELL)
    assert len(shown) == len(nb.cells), (
        f"{name}: the page shows {len(shown)} cells, the file has {len(nb.cells)}\n{shot}"
    )
    findings = Findings()
    for index, (cell, seen) in enumerate(zip(nb.cells, shown)):
        if cell.cell_type == "code":
            _check_cell(findings, index, cell, seen)
    for text in widget_errors(page):
        findings.problems.append(f"a widget did not render: {text}")
    for text in _front_end_errors(console_errors):
        findings.problems.append(f"browser console error: {text}")

    assert not findings.problems, f"{name}:\n- " + "\n- ".join(findings.problems) + f"\n{shot}"
