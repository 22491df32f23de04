"""The tutorial notebooks: saved outputs that re-run identically (nbval) and read well anywhere.

``test_notebooks_match_their_saved_outputs`` runs nbval in a subprocess, exactly
as a person would::

    python -m pytest --nbval --nbval-current-env \\
        --nbval-sanitize-with tests/nbval/sanitize.cfg notebooks/ tests/nbval/

A subprocess keeps nbval's kernels, its stand-in server and its environment
apart from the rest of the test session (and nbval's collection of ``.ipynb``
files out of every other ``pytest`` run). ``scripts/execute_notebooks.py``
regenerates the saved outputs after a deliberate change.

The other tests read the saved files: nbval only compares cells that were run,
so a notebook saved without outputs would pass it without checking anything.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = [
    "01-quickstart.ipynb",
    "02-conversations.ipynb",
    "03-parameters-and-logprobs.ipynb",
    "04-tools.ipynb",
    "05-images-and-audio.ipynb",
    "06-compare-and-playground.ipynb",
    "07-testing-offline.ipynb",
    "08-log-cache-and-cassettes.ipynb",
    "09-prompts-over-data.ipynb",
]
NBVAL_COMMAND = [
    sys.executable,
    "-m",
    "pytest",
    "--nbval",
    "--nbval-current-env",
    "--nbval-sanitize-with",
    "tests/nbval/sanitize.cfg",
    "-p",
    "no:cacheprovider",
    "-q",
    "-rA",
    "--color=no",
    "notebooks/",
    "tests/nbval/",
]
# A reply's summary line: "gpt-4o · finish: stop · 16 in · 15 out · 31 total · ..."
SUMMARY = re.compile(r"\S+ \u00b7 (finish: \w+|incomplete|interrupted) \u00b7 ")
MAP_SUMMARY = re.compile(r"^[\d,]+ rows?: [\d,]+ answered.*, [\d,]+ failed")


def _code_cells(path: Path) -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _texts(cell: nbformat.NotebookNode) -> list[str]:
    """Every text the cell's saved outputs show (streams and the text mime types)."""
    texts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            texts.append(output.text)
        for mime, value in output.get("data", {}).items():
            if isinstance(value, str) and mime.startswith("text/"):
                texts.append(value)
    return texts


def test_every_tutorial_is_there() -> None:
    assert [p.name for p in NOTEBOOKS] == EXPECTED


def test_notebooks_match_their_saved_outputs() -> None:
    # The conftest of tests/nbval sets the COMPASS_* variables the kernels need.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPASS_") and k != "PYTEST_ADDOPTS"}
    run = subprocess.run(NBVAL_COMMAND, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    report = run.stdout + run.stderr
    assert run.returncode == 0, f"nbval failed ({' '.join(NBVAL_COMMAND[1:])}):\n{report[-12000:]}"
    for name in EXPECTED:
        # Every code cell is one nbval item; a notebook that was not collected would not fail.
        checked = len(re.findall(rf"^PASSED notebooks/{re.escape(name)}::Cell \d+$", report, re.M))
        assert checked == len(_code_cells(NOTEBOOK_DIR / name)), f"nbval did not check every cell of {name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_outputs_come_from_one_run_top_to_bottom(path: Path) -> None:
    counts = [cell.execution_count for cell in _code_cells(path) if cell.source.strip()]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name} was not saved from one clean run (execution counts {counts}); "
        "regenerate it with python scripts/execute_notebooks.py"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_cells_tagged_raises_exception_show_errors(path: Path) -> None:
    for cell in _code_cells(path):
        shown = "\n".join(_texts(cell))
        failed = any(o.output_type == "error" for o in cell.outputs) or re.search(r"^\w*Error: ", shown, re.M)
        if "raises-exception" in _tags(cell):
            assert failed, f"{path.name}: a cell tagged raises-exception shows no error:\n{cell.source}"
        else:
            assert not failed, f"{path.name}: an error in the cell\n{cell.source}\n---\n{shown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_compass_cell_ends_with_the_whole_reply(path: Path) -> None:
    """nbval ignores display updates, so the reply must also arrive as a last, plain output."""
    for cell in _code_cells(path):
        if not cell.source.startswith("%%compass") or "raises-exception" in _tags(cell):
            continue
        finals = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        assert finals, f"{path.name}: no output saved for\n{cell.source}"
        last = finals[-1].get("data", {})
        # A cell sent over rows (--over) ends with the run's summary instead: "20 rows: 20 answered, ...".
        summary = MAP_SUMMARY if "--over" in cell.source.splitlines()[0] else SUMMARY
        assert summary.search(last.get("text/plain", "")), (
            f"{path.name}: the last output of this cell is not the finished reply with its summary line:\n"
            f"{cell.source}\n---\n{last.get('text/plain')!r}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_outputs_hold_no_key_and_no_local_paths(path: Path) -> None:
    key = _notebook_key()
    for cell in _code_cells(path):
        for text in _texts(cell):
            assert key not in text, f"{path.name}: the API key is shown in an output of\n{cell.source}"
            leaked = [p for p in (str(ROOT), str(Path.home()), "/tmp/") if len(p) > 1 and p in text]
            assert not leaked, f"{path.name}: a path of the machine that ran it ({leaked}) is saved in\n{cell.source}"


def _notebook_key() -> str:
    """The fixed key the notebooks run with, from tests/nbval/conftest.py (its one definition)."""
    spec = importlib.util.spec_from_file_location("compass_nbval_conftest", ROOT / "tests" / "nbval" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NOTEBOOK_KEY
