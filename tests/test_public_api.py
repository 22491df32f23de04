"""The public surface: the names INTERFACE promises, cheap imports, an engine free of IPython."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import compass_jupyter as cj

PROMISED = {
    "chat",
    "session",
    "Client",
    "Playground",
    "local",
    "Reply",
    "Usage",
    "CompassError",
    "ConfigError",
    "ValidationError",
    "AuthenticationError",
    "NotFoundError",
    "BadRequestError",
    "RateLimitError",
    "ServerError",
    "APITimeoutError",
    "StreamError",
}


def test_every_promised_name_is_exported_and_resolves():
    assert PROMISED <= set(cj.__all__)
    for name in cj.__all__:
        assert getattr(cj, name) is not None


def test_errors_form_one_hierarchy():
    for name in PROMISED:
        value = getattr(cj, name)
        if isinstance(value, type) and name.endswith("Error"):
            assert issubclass(value, cj.CompassError), name


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_importing_the_package_loads_nothing_heavy():
    stdout = _fresh(
        """
        import sys, compass_jupyter
        print(sorted(m for m in ("httpx", "IPython", "ipywidgets", "compass_jupyter.client") if m in sys.modules))
        """
    )
    assert stdout.strip() == "[]"


def test_the_engine_imports_neither_ipython_nor_ipywidgets():
    stdout = _fresh(
        """
        import sys
        import compass_jupyter as cj
        from compass_jupyter import client, conversation, stream, reply, request, catalog, tools, media, rendering, settings
        from compass_jupyter.rendering import compare, tables, transcript, usage
        import compass_jupyter.local_model.server, compass_jupyter.local_model.dialect, compass_jupyter.dialect
        from compass_jupyter.testing import StandInServer
        cj.Client; cj.session(); cj.Reply
        print(sorted(m for m in ("IPython", "ipywidgets", "ipykernel") if m in sys.modules))
        """
    )
    assert stdout.strip() == "[]"


def test_cj_config_stays_the_settings_after_the_engine_is_imported():
    # Importing a submodule binds its name on the package: a module named `config`
    # would replace the settings object users reach as cj.config.
    stdout = _fresh(
        """
        import compass_jupyter as cj
        cj.Client(api_key="k-1234567890"); cj.session()
        from compass_jupyter import client, conversation, magics
        print(type(cj.config).__name__, cj.config.get("model"))
        """
    )
    assert stdout.split()[0] == "Config"
