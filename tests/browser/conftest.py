"""Fixtures for the browser tests; the API is described in ``harness.py``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from .harness import (
    CHROMIUM_ARGS,
    CHROMIUM_PATH,
    CONSOLE_DIR,
    SCREENSHOTS_DIR,
    VIEWPORT,
    JupyterServer,
    artifact_name,
    chromium_missing_message,
)

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def jupyter_env() -> dict[str, str]:
    """Extra environment for the Jupyter server and its kernels; override to add some."""
    return {}


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory: pytest.TempPathFactory, jupyter_env: dict[str, str]) -> Iterator[JupyterServer]:
    """One ``jupyter lab`` for the session, serving JupyterLab and Notebook 7."""
    server = JupyterServer(tmp_path_factory.mktemp("jupyter"), env=jupyter_env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium through Playwright (``playwright install`` cannot fetch one here)."""
    if not CHROMIUM_PATH.exists():
        pytest.fail(chromium_missing_message(CHROMIUM_PATH), pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM_PATH), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh context and page; its screenshot and console are kept, pass or fail."""
    context = browser.new_context(viewport=VIEWPORT)
    new_page = context.new_page()
    console: list[str] = []

    def remember(msg: ConsoleMessage) -> None:
        console.append(f"[{msg.type}] {msg.text}")

    new_page.on("console", remember)
    new_page.on("pageerror", lambda exc: console.append(f"[pageerror] {exc}"))
    try:
        yield new_page
    finally:
        name = artifact_name(request.node.name)
        _save_artifacts(new_page, name, console)
        context.close()
        if "jupyter" in request.fixturenames:
            _shutdown_kernels(request)


def _shutdown_kernels(request: pytest.FixtureRequest) -> None:
    """Kernels of one test must not answer the next one."""
    try:
        server: JupyterServer = request.getfixturevalue("jupyter")
    except Exception:  # the server's own set-up error is already reported
        return
    try:
        server.shutdown_kernels()
    except OSError as exc:
        warnings.warn(f"could not shut the kernels down (see {server.log_path}): {exc}", stacklevel=1)


def _save_artifacts(page: Page, name: str, console: list[str]) -> None:
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    CONSOLE_DIR.mkdir(parents=True, exist_ok=True)
    (CONSOLE_DIR / f"{name}.log").write_text("\n".join(console) + "\n")
    try:
        page.screenshot(path=str(SCREENSHOTS_DIR / f"{name}.png"), full_page=True)
    except Exception as exc:  # a broken page must not hide the test's own failure
        warnings.warn(f"could not save the screenshot of {name}: {exc}", stacklevel=1)
