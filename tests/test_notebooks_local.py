"""Every tutorial runs top to bottom on the real local model, as a newcomer's Run All does.

The strict nbval run (tests/test_notebooks.py) replays recorded answers; this one
asks the local model (llama.cpp + SmolLM2) again, with no key and no cassette, in
a kernel started as ``./dev lab`` starts them (``COMPASS_OFFLINE=local``). Outputs
are not compared (a model's words may change with llama.cpp's version): what is
checked is that no cell fails, except those a tutorial marks ``raises-exception``
to show an error on purpose, and that every ``%%compass`` cell ended with a reply
that names the model that answered.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from compass_jupyter.local_model.server import LOCAL_MODEL_ID, local_available

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = [
    pytest.mark.local,
    pytest.mark.skipif(not local_available(), reason="needs the [local] extra: pip install 'compass-jupyter[local]'"),
    pytest.mark.timeout(900),
]


@pytest.fixture
def newcomer_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key, no cassette, no server: what ``./dev lab`` gives a kernel on a fresh machine."""
    for name in [n for n in os.environ if n.startswith("COMPASS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COMPASS_OFFLINE", "local")
    monkeypatch.setenv("COMPASS_STORE", str(tmp_path / "exchanges.db"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_tutorial_runs_to_its_end_on_the_local_model(path: Path, newcomer_env: None, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=300,
        allow_errors=False,  # a cell tagged raises-exception may fail; any other failure stops the run
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.startswith("%%compass"):
            continue
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        shown = "\n".join(
            str(out.get("data", {}).get("text/plain", "")) for out in cell.outputs if out.output_type != "stream"
        )
        assert " · " in shown, f"{path.name}: no finished reply under\n{cell.source}"
        if "-m gpt-4o," not in cell.source:  # compare columns name "asked → answered"
            assert LOCAL_MODEL_ID in shown, f"{path.name}: the reply does not name the model that answered:\n{shown}"
