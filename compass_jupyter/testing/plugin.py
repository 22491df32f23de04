"""pytest plugin: the ``compass_server`` fixture.

Installed with the package (entry point ``pytest11``), so any test can ask for
``compass_server``. Where plugin auto-loading is off
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``), enable it in a ``conftest.py``::

    pytest_plugins = ["compass_jupyter.testing.plugin"]

Example::

    def test_my_notebook_helper(compass_server):
        import compass_jupyter as cj
        reply = cj.chat("Hi", history=False)
        assert reply.text.startswith("Stand-in gpt-4o here.")
        assert compass_server.last_request.body["messages"][-1]["content"] == "Hi"
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .server import StandInServer


@pytest.fixture
def compass_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInServer]:
    """A running stand-in Compass server for one test, with the environment pointing at it.

    Sets ``COMPASS_BASE_URL``, ``COMPASS_API_KEY`` (a fresh random key) and
    ``COMPASS_API_STYLE=openai``, and removes ``COMPASS_MODEL`` so the default
    model applies; all are restored after the test. Yields the
    :class:`~compass_jupyter.testing.StandInServer` (``.base_url``, ``.key``,
    ``.requests``, ``.enqueue(...)``) and stops it afterwards. Another process
    driving it over ``/_standin/...`` must send ``compass_server.key`` as the
    ``api-key`` header, like a chat request.
    """
    # Imported here so that loading the plugin at pytest start-up stays cheap.
    from .server import StandInServer

    server = StandInServer().start()
    try:
        monkeypatch.setenv("COMPASS_BASE_URL", server.base_url)
        monkeypatch.setenv("COMPASS_API_KEY", server.key)
        monkeypatch.setenv("COMPASS_API_STYLE", "openai")
        monkeypatch.delenv("COMPASS_MODEL", raising=False)
        yield server
    finally:
        server.stop()
