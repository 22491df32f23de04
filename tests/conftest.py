"""Shared fixtures: a clean kernel state for every test."""

from __future__ import annotations

import pytest

from compass_jupyter import conversation as session_module
from compass_jupyter.settings import SPECS, config


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Each test starts with no kernel settings, no conversation and no COMPASS_* leaking in.

    The store of exchanges is a fresh file per test (kernels started by a test inherit it),
    never the person's own store in their data directory.
    """
    for spec in SPECS.values():
        if spec.env:
            monkeypatch.delenv(spec.env, raising=False)
    monkeypatch.setenv("COMPASS_STORE", str(tmp_path_factory.mktemp("store") / "exchanges.db"))
    for name in SPECS:
        config.unset(name)
    session_module._session = None
    session_module._client = None
    yield
    for name in SPECS:
        config.unset(name)
    session_module._session = None
    if session_module._client is not None:
        session_module._client.close()
    session_module._client = None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API keeps an event loop running on the main
    thread for the rest of the session, and asyncio.run() refuses to start inside one."""
    items.sort(key=lambda item: "browser" in item.path.parts)
