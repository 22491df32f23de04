"""nbval runs of the tutorial notebooks: each replays its cassette, or talks to one stand-in server.

The tutorials are checked by re-running them and comparing every cell's output
with the output saved in the file::

    python -m pytest --nbval --nbval-current-env \\
        --nbval-sanitize-with tests/nbval/sanitize.cfg notebooks/ tests/nbval/

Naming ``tests/nbval/`` makes pytest load this conftest before it collects the
notebooks. When ``--nbval`` (or ``--nbval-lax``) is given, every notebook's kernel
starts with exactly the ``COMPASS_*`` environment of :func:`notebook_env`, set
just before that kernel starts:

- most tutorials replay ``notebooks/cassettes/<name>.json``, the exchanges
  recorded from a real model (:data:`RECORDED_WITH` says which), so their saved
  outputs are real answers and the run needs no network, no key and no server;
- the tutorials about the stand-in server and about cassettes themselves
  (:data:`LIVE_STAND_IN`) talk to one stand-in server on 127.0.0.1 with the fixed
  key :data:`NOTEBOOK_KEY` (``%compass config`` shows it masked).

Nothing else of the caller's environment reaches a kernel, so the documented
command passes whatever ``COMPASS_*`` variables are set. Without ``--nbval`` this
file does nothing, so the ordinary test run is untouched.

``scripts/execute_notebooks.py`` uses the same functions: saved outputs and
checked outputs come from identical environments, and ``--record`` records the
cassettes again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from compass_jupyter.local_model.server import LOCAL_MODEL_ID
from compass_jupyter.testing import StandInServer

# Not a secret: the stand-in accepts only this key, and only on loopback.
NOTEBOOK_KEY = "nbval-stand-in-key"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
CASSETTES = NOTEBOOKS / "cassettes"

# Tutorials that show the stand-in server or cassettes themselves run against a live stand-in.
LIVE_STAND_IN = frozenset({"07-testing-offline", "08-log-cache-and-cassettes"})
# What answered when a tutorial's cassette was recorded (the default: the local model).
RECORDED_WITH: dict[str, str] = {"05-images-and-audio": "stand-in"}
DEFAULT_RECORDER = "local"

_SERVER = pytest.StashKey[StandInServer]()
_SAVED_ENV = pytest.StashKey[dict]()


def cassette_of(notebook: Path) -> Path:
    return CASSETTES / f"{notebook.stem}.json"


def recorder_of(notebook: Path) -> str:
    """What records this tutorial's cassette: 'local', 'stand-in' or 'compass'."""
    return RECORDED_WITH.get(notebook.stem, DEFAULT_RECORDER)


def notebook_env(notebook: Path, server: StandInServer | None, *, mode: str = "replay") -> dict[str, str]:
    """The COMPASS_* variables the kernel of ``notebook`` gets, and nothing else of the caller's."""
    if notebook.stem in LIVE_STAND_IN:
        if server is None:
            raise RuntimeError(f"{notebook.name} runs against the stand-in server; start one first")
        return {"COMPASS_BASE_URL": server.base_url, "COMPASS_API_KEY": server.key}
    # Relative to the kernel's working directory, the notebook's folder: no path of this machine is shown.
    env = {"COMPASS_CASSETTE": f"cassettes/{notebook.stem}.json", "COMPASS_CASSETTE_MODE": mode}
    recorder = recorder_of(notebook)
    if recorder == "local" and mode == "replay":
        # The local route makes its model the default one, so the recorded requests ask for it.
        env["COMPASS_MODEL"] = LOCAL_MODEL_ID
    if mode == "record":
        if recorder == "stand-in":
            assert server is not None
            env.update({"COMPASS_BASE_URL": server.base_url, "COMPASS_API_KEY": server.key})
        elif recorder == "local":
            env["COMPASS_OFFLINE"] = "local"  # no key: the kernel answers with the local model
        elif recorder == "compass":
            env["COMPASS_API_KEY"] = os.environ.get("COMPASS_API_KEY", "")
    return env


def apply_env(env: dict[str, str]) -> dict[str, str]:
    """Replace every COMPASS_* variable of os.environ by ``env``; returns the old ones."""
    old = {k: v for k, v in os.environ.items() if k.startswith("COMPASS_")}
    for name in old:
        del os.environ[name]
    os.environ.update(env)
    return old


@contextmanager
def stand_in_server() -> Iterator[StandInServer]:
    """A running stand-in with the fixed key (the live tutorials' server and the stand-in recorder)."""
    server = StandInServer(host="127.0.0.1", key=NOTEBOOK_KEY).start()
    try:
        yield server
    finally:
        server.stop()


def _nbval_run(config: pytest.Config) -> bool:
    return bool(config.getoption("nbval", False) or config.getoption("nbval_lax", False))


class _NotebookEnvironments:
    """Gives each notebook its environment just before its first cell sets up the file (starting the kernel).

    Registered as a plugin rather than written as this conftest's hook: a conftest's
    runtest hooks only see the items under its own folder, and the notebooks are not.
    """

    def __init__(self, server: StandInServer) -> None:
        self.server = server
        self.current: str | None = None

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb" and self.current != str(path):
            self.current = str(path)
            self.server.reset()  # each notebook sees a server with nothing queued
            apply_env(notebook_env(path, self.server))
        yield


def pytest_configure(config: pytest.Config) -> None:
    if not _nbval_run(config):
        return
    server = StandInServer(host="127.0.0.1", key=NOTEBOOK_KEY).start()
    config.stash[_SERVER] = server
    config.stash[_SAVED_ENV] = apply_env({})
    config.pluginmanager.register(_NotebookEnvironments(server), "compass-notebook-environments")


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_SERVER, None)
    if server is None:
        return
    apply_env(config.stash[_SAVED_ENV])
    server.stop()
    del config.stash[_SERVER]
