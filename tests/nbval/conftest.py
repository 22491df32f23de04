"""nbval runs of the tutorial notebooks against one stand-in Compass server.

The tutorials are checked by re-running them and comparing every cell's output
with the output saved in the file::

    python -m pytest --nbval --nbval-current-env \\
        --nbval-sanitize-with tests/nbval/sanitize.cfg notebooks/ tests/nbval/

Naming ``tests/nbval/`` makes pytest load this conftest before it collects the
notebooks. When ``--nbval`` (or ``--nbval-lax``) is given, it starts one stand-in
server on 127.0.0.1 for the whole run and points ``COMPASS_BASE_URL`` and
``COMPASS_API_KEY`` at it in ``os.environ`` *before* any kernel starts, so every
kernel inherits them. The key is fixed (:data:`NOTEBOOK_KEY`): ``%compass config``
shows it masked, and the saved notebooks were made with the same one. Without
``--nbval`` this file does nothing, so the ordinary test run is untouched.

``scripts/execute_notebooks.py`` uses :func:`stand_in_environment` too, so saved
outputs and checked outputs come from identically configured servers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from compass_jupyter.testing import StandInServer

# Not a secret: the stand-in accepts only this key, and only on loopback.
NOTEBOOK_KEY = "nbval-stand-in-key"

_SERVER = pytest.StashKey[StandInServer]()
_SAVED_ENV = pytest.StashKey[dict]()


def notebook_env(server: StandInServer) -> dict[str, str]:
    """The COMPASS_* variables a notebook kernel gets: this server, this key, nothing else."""
    return {"COMPASS_BASE_URL": server.base_url, "COMPASS_API_KEY": server.key}


def _apply(env: dict[str, str]) -> dict[str, str]:
    """Replace every COMPASS_* variable of os.environ by ``env``; returns the old ones."""
    old = {k: v for k, v in os.environ.items() if k.startswith("COMPASS_")}
    for name in old:
        del os.environ[name]
    os.environ.update(env)
    return old


def _restore(old: dict[str, str]) -> None:
    _apply(old)


@contextmanager
def stand_in_environment() -> Iterator[StandInServer]:
    """A running stand-in with the fixed key, and os.environ pointing at it (restored after)."""
    server = StandInServer(host="127.0.0.1", key=NOTEBOOK_KEY).start()
    old = _apply(notebook_env(server))
    try:
        yield server
    finally:
        _restore(old)
        server.stop()


def _nbval_run(config: pytest.Config) -> bool:
    return bool(config.getoption("nbval", False) or config.getoption("nbval_lax", False))


def pytest_configure(config: pytest.Config) -> None:
    if not _nbval_run(config):
        return
    server = StandInServer(host="127.0.0.1", key=NOTEBOOK_KEY).start()
    config.stash[_SERVER] = server
    config.stash[_SAVED_ENV] = _apply(notebook_env(server))


def pytest_unconfigure(config: pytest.Config) -> None:
    server = config.stash.get(_SERVER, None)
    if server is None:
        return
    _restore(config.stash[_SAVED_ENV])
    server.stop()
    del config.stash[_SERVER]
