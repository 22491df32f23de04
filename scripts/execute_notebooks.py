"""Re-run the tutorial notebooks and save their outputs; ``--record`` records their cassettes first.

    python scripts/execute_notebooks.py                       # every notebooks/*.ipynb, from the cassettes
    python scripts/execute_notebooks.py notebooks/04-tools.ipynb
    python scripts/execute_notebooks.py --record              # ask the models again (see below)
    COMPASS_API_KEY=... python scripts/execute_notebooks.py --record --recorder compass   # Compass's answers

Each notebook runs top to bottom in its own kernel, with ``notebooks/`` as the
working directory and the environment of ``tests/nbval/conftest.py``: it replays
its cassette (``notebooks/cassettes/<name>.json``), or talks to one stand-in
server on 127.0.0.1 for the tutorials about the stand-in itself; every other
``COMPASS_*`` variable is removed. So the saved outputs are exactly what the
nbval check expects.

``--record`` first runs each notebook with its cassette in record mode against
what answers it: the local model for most (``[local]`` extra; no key), the
stand-in for the tutorials the local model cannot answer (images, speech), or,
with ``--recorder compass`` and a key, Compass for all of them. Then the replay run
saves the outputs. Widget views are left out of the saved outputs (see
``_without_widget_views``). A cell that raises stops the run with its error,
unless the cell is tagged ``raises-exception`` (a deliberate error the tutorial
shows). The file is written only when every cell ran.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
NBVAL_CONFTEST = ROOT / "tests" / "nbval" / "conftest.py"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _nbval_conftest() -> ModuleType:
    # The conftest owns the server set-up, so saved and checked outputs share one recipe.
    spec = importlib.util.spec_from_file_location("compass_nbval_conftest", NBVAL_CONFTEST)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def execute(path: Path, *, timeout: int = 300, save: bool = True) -> float:
    """Run one notebook (in place when ``save``); returns the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        allow_errors=False,
        record_timing=False,  # no per-cell timestamps: a re-run changes only what the cells show
        store_widget_state=False,  # hundreds of kilobytes of ids that change with every run
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.monotonic()
    client.execute()
    took = time.monotonic() - started
    if not save:
        return took
    nb.metadata.pop("widgets", None)  # state saved by an earlier run
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _without_widget_views(cell.outputs)
    nbformat.write(nb, path)
    return took


def _without_widget_views(outputs: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """Outputs minus their widget views, which cannot render without the (unsaved) widget state.

    What is left is each output's HTML or text rendering, which a front end shows
    instead of "Error displaying widget" and which nbval compares anyway (it skips
    widget views). An output that was nothing but a widget view is dropped.
    """
    kept = []
    for output in outputs:
        data = output.get("data")
        if data is not None and WIDGET_VIEW in data:
            del data[WIDGET_VIEW]
            if not data:
                continue
        kept.append(output)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds a single cell may take (default 300)")
    parser.add_argument("--record", action="store_true", help="record the cassettes first (each tutorial's recorder)")
    parser.add_argument(
        "--recorder",
        choices=["local", "stand-in", "compass"],
        help="with --record: record every tutorial with this one (compass needs COMPASS_API_KEY)",
    )
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")

    conftest = _nbval_conftest()
    failed = 0
    saved_env = conftest.apply_env({})
    try:
        with conftest.stand_in_server() as server:
            for path in paths:
                server.reset()  # each notebook sees a server with nothing queued
                try:
                    if args.record and path.stem not in conftest.LIVE_STAND_IN:
                        if args.recorder:
                            conftest.RECORDED_WITH[path.stem] = args.recorder
                        conftest.cassette_of(path).unlink(missing_ok=True)
                        conftest.CASSETTES.mkdir(exist_ok=True)
                        conftest.apply_env(conftest.notebook_env(path, server, mode="record"))
                        took = execute(path, timeout=args.timeout, save=False)
                        recorder = conftest.recorder_of(path)
                        print(f"recorded {path.name:38} {took:5.1f} s  ({recorder})", flush=True)
                    conftest.apply_env(conftest.notebook_env(path, server))
                    took = execute(path, timeout=args.timeout)
                except CellExecutionError as exc:
                    failed += 1
                    print(f"FAILED {path.name} (not saved):\n{exc}", file=sys.stderr, flush=True)
                    continue
                print(f"saved    {path.name:38} {took:5.1f} s", flush=True)
    finally:
        conftest.apply_env(saved_env)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
