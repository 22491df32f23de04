"""Drive JupyterLab 4 and Notebook 7 in headless Chromium.

One ``jupyter lab`` server per pytest session serves both user interfaces: the
JupyterLab UI at ``/lab/tree/NAME`` and (because ``notebook`` is installed) the
Notebook 7 UI at ``/notebooks/NAME``. Chromium is Debian's ``/usr/bin/chromium``
driven by the Python ``playwright`` package (``playwright install`` cannot fetch
browsers on these machines; ``./dev setup`` installs Chromium).

Fixtures (``tests/browser/conftest.py``)
----------------------------------------
``jupyter_env`` (session)
    Extra environment for the server and so for every kernel it starts. Default
    ``{}``. Override it in a ``conftest.py`` or test module, for instance to point
    kernels at a stand-in Compass server::

        @pytest.fixture(scope="session")
        def jupyter_env(stand_in_server):  # a session-scoped stand-in
            return {"COMPASS_BASE_URL": stand_in_server.base_url,
                    "COMPASS_API_KEY": stand_in_server.key}

    ``COMPASS_*`` variables of the calling shell never reach the server: a test
    sees only what it passes here.
``jupyter`` (session) -> :class:`JupyterServer`
    ``.url``, ``.root_dir`` (the server's root folder), ``.put_notebook(name,
    cells)``, ``.copy_notebook(path, name=None)``, ``.shutdown_kernels()``,
    ``.stop()``. Its log is ``test-artifacts/jupyter-server.log``.
``browser`` (session)
    A Playwright Chromium ``Browser``. Fails (does not skip) when Chromium is
    missing.
``page`` (function)
    A fresh context and page (1400x1000). After the test, pass or fail, a
    screenshot goes to ``test-artifacts/screenshots/<test-name>.png`` and the
    browser console to ``test-artifacts/console/<test-name>.log``. When the test
    also uses ``jupyter``, every kernel is shut down afterwards so the next test
    starts from fresh kernels.

Every test under ``tests/browser`` is marked ``browser`` automatically.

Helpers (this module)
---------------------
``open_notebook(page, jupyter, name, ui="lab")``
    Navigate to the notebook in ``"lab"`` or ``"notebook"`` (Notebook 7) and wait
    until it is really usable: the rendered cell count equals the file's, the
    kernel name shows Python and the kernel is idle. (Before that the page shows
    one empty cell with no kernel, and Run All silently does nothing.)
``run_all(page)``
    Run > Run All Cells, through the menu as a person would.
``wait_idle(page, timeout=120.0, allow_errors=False)``
    Wait until every non-empty code cell has an execution count (a fresh one,
    after ``run_all``) and the kernel is idle. A cell that raises stops Run All
    and fails the wait at once, unless ``allow_errors``. A failure lists each
    cell's prompt and the end of its stderr/traceback.
``cell(page, index)`` / ``cell_outputs(page, index)``
    Locators for the cell at ``index`` (0-based, counting every cell of the
    file, markdown included) and for its ``.jp-OutputArea-output`` elements.
``record_distinct_texts(page, selector)`` / ``read_recorded(page, selector=None)``
    A MutationObserver, installed after ``open_notebook`` and before
    ``run_all``, that records every distinct ``textContent`` of the elements
    matching ``selector`` in order of first appearance: the proof that a display
    updated step by step rather than once at the end.
``widget_errors(page)``
    The texts of "Error displaying widget" placeholders (a widget whose model
    the page could not load); assert it is empty. Without the widget manager
    at all, a widget shows only its text repr, e.g. ``HTML(value='x')``, so
    also assert the widget's own element (``.widget-html-content``, ...).

A typical test::

    def test_counter(page, jupyter):
        jupyter.put_notebook("counter.ipynb", ["import ipywidgets as w; w.IntSlider(3)"])
        open_notebook(page, jupyter, "counter.ipynb", ui="notebook")
        run_all(page)
        wait_idle(page)
        expect(cell_outputs(page, 0).locator(".widget-slider")).to_be_visible()
        assert widget_errors(page) == []

Use one notebook file per UI in a test: opening one file in both UIs shares its
kernel. Timeouts of these helpers are in seconds. Import them relatively
(``from .harness import open_notebook, ...``): ``tests/browser`` is a package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal, Mapping, Sequence
from urllib.parse import quote

import nbformat
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"
SCREENSHOTS_DIR = ARTIFACTS_DIR / "screenshots"
CONSOLE_DIR = ARTIFACTS_DIR / "console"
SERVER_LOG = ARTIFACTS_DIR / "jupyter-server.log"

CHROMIUM_PATH = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium floods refused connections
# on a machine without internet.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
VIEWPORT = {"width": 1400, "height": 1000}

UI = Literal["lab", "notebook"]
CellSpec = str | tuple[str, str]

# The active notebook only: Lab keeps other open documents in the DOM, hidden.
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
NOTEBOOK = f"{PANEL} .jp-Notebook"
CELL = f"{NOTEBOOK} .jp-Cell"
CODE_CELL = f"{NOTEBOOK} .jp-CodeCell"
KERNEL_NAME = f"{PANEL} .jp-Toolbar-kernelName"
EXECUTION_INDICATOR = f"{PANEL} .jp-Notebook-ExecutionIndicator"
WIDGET_ERROR_TEXT = "Error displaying widget"

_KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


class JupyterServer:
    """A ``jupyter lab`` process serving JupyterLab and Notebook 7 on loopback.

    Configuration, data and runtime folders are private to this server, so
    nothing of a person's own Jupyter set-up (workspaces, settings, news popups)
    leaks in; the kernelspec and lab extensions of the running Python's prefix
    are still found through ``sys.prefix/share/jupyter``.
    """

    def __init__(self, base_dir: Path, *, env: Mapping[str, str] | None = None, log_path: Path = SERVER_LOG) -> None:
        self.base_dir = Path(base_dir)
        self.root_dir = self.base_dir / "root"
        self.log_path = Path(log_path)
        self.port = 0
        self._extra_env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:43117``."""
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> JupyterServer:
        """Start the server and wait until ``/api/status`` answers; returns ``self``."""
        dirs = {name: self.base_dir / name for name in ("config", "data", "runtime", "ipython")}
        for path in (self.root_dir, *dirs.values()):
            path.mkdir(parents=True, exist_ok=True)
        _write_lab_settings(dirs["config"])
        env = _server_env(dirs, self._extra_env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # A port picked free can be taken before the server binds it; with
        # port_retries=0 that shows as an early exit, so pick again.
        for attempt in range(3):
            self.port = _free_port()
            with self.log_path.open("ab") as log:
                log.write(f"\n=== jupyter lab on port {self.port} (attempt {attempt + 1})\n".encode())
                self._process = subprocess.Popen(
                    self._command(),
                    cwd=self.root_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            if self._wait_ready(timeout):
                return self
            if "already in use" not in self._log_tail():
                break
        code = self._process.poll() if self._process else None
        self.stop()
        raise RuntimeError(
            f"jupyter lab did not answer /api/status within {timeout:.0f} s (exit code {code}). "
            f"Its log is {self.log_path}; the last lines were:\n{self._log_tail()}\n"
            "Check that the virtualenv has jupyterlab and notebook installed (./dev setup)."
        )

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            "--no-browser",
            "--allow-root",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            # Loopback-only test server without a token: the REST helpers below
            # send DELETEs without an XSRF cookie.
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root_dir}",
        ]

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """Shut kernels down, then terminate the server (kill if it lingers)."""
        proc, self._process = self._process, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self.shutdown_kernels()
            except OSError:
                pass
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- REST --------------------------------------------------------------

    def api(self, method: str, path: str, body: object = None) -> object:
        """Call the server's REST API (``path`` such as ``/api/sessions``); JSON in and out."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def shutdown_kernels(self) -> None:
        """Close every session and kernel, so the next page starts fresh kernels."""
        for session in self.api("GET", "/api/sessions") or []:
            self._delete(f"/api/sessions/{session['id']}")
        for kernel in self.api("GET", "/api/kernels") or []:
            self._delete(f"/api/kernels/{kernel['id']}")

    def _delete(self, path: str) -> None:
        try:
            self.api("DELETE", path)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:  # already gone is fine
                raise

    # -- files -------------------------------------------------------------

    def put_notebook(
        self, name: str, cells: Sequence[CellSpec], *, metadata: Mapping[str, object] | None = None
    ) -> Path:
        """Write ``root_dir/name`` from code-cell sources or ``(cell_type, source)`` pairs.

        ``cell_type`` is ``"code"``, ``"markdown"`` or ``"raw"``. The notebook
        names the python3 kernel, so neither UI asks which kernel to start.
        """
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = dict(_KERNELSPEC)
        nb.metadata["language_info"] = {"name": "python"}
        nb.metadata.update(metadata or {})
        nb.cells = [_new_cell(spec) for spec in cells]
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        return path

    def copy_notebook(self, source: Path | str, name: str | None = None) -> str:
        """Copy an existing notebook (e.g. a tutorial) into the root; return its name there."""
        source = Path(source)
        name = name or source.name
        target = self.root_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return name

    def notebook_url(self, name: str, ui: UI = "lab") -> str:
        """Where ``name`` opens in JupyterLab (``"lab"``) or Notebook 7 (``"notebook"``)."""
        if ui == "lab":
            # ?reset: start from an empty workspace, so no document of an
            # earlier test is restored next to this one.
            return f"{self.url}/lab/tree/{quote(name)}?reset"
        if ui == "notebook":
            return f"{self.url}/notebooks/{quote(name)}"
        raise ValueError(f"ui must be 'lab' or 'notebook', not {ui!r}")


def _new_cell(spec: CellSpec) -> nbformat.NotebookNode:
    cell_type, source = ("code", spec) if isinstance(spec, str) else spec
    makers = {
        "code": nbformat.v4.new_code_cell,
        "markdown": nbformat.v4.new_markdown_cell,
        "raw": nbformat.v4.new_raw_cell,
    }
    if cell_type not in makers:
        raise ValueError(f"cell type must be one of {sorted(makers)}, not {cell_type!r}")
    return makers[cell_type](source)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(dirs: Mapping[str, Path], extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPASS_")}
    env.update(
        {
            "JUPYTER_CONFIG_DIR": str(dirs["config"]),
            "JUPYTER_DATA_DIR": str(dirs["data"]),
            "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
            "IPYTHONDIR": str(dirs["ipython"]),
            "JUPYTER_PLATFORM_DIRS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def _write_lab_settings(config_dir: Path) -> None:
    settings = config_dir / "lab" / "user-settings" / "@jupyterlab"
    files = {
        # Else a news popup covers the page.
        "apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
        # Every cell stays in the DOM, so long notebooks count and query right.
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for rel, value in files.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


# -- page helpers ------------------------------------------------------------


def open_notebook(page: Page, jupyter: JupyterServer, name: str, ui: UI = "lab", *, timeout: float = 90.0) -> None:
    """Open ``name`` (relative to ``jupyter.root_dir``) and wait until it can run."""
    expected = len(nbformat.read(jupyter.root_dir / name, as_version=4).cells)
    page.goto(jupyter.notebook_url(name, ui), timeout=timeout * 1000)
    try:
        page.wait_for_function(
            """([cellSel, kernelSel, indicatorSel, expected]) => {
                const cells = document.querySelectorAll(cellSel).length;
                const kernel = document.querySelector(kernelSel);
                const indicator = document.querySelector(indicatorSel);
                return cells === expected
                    && kernel && /python/i.test(kernel.textContent)
                    && indicator && indicator.dataset.status === 'idle';
            }""",
            arg=[CELL, KERNEL_NAME, EXECUTION_INDICATOR, expected],
            timeout=timeout * 1000,
            polling=200,
        )
    except PlaywrightTimeoutError:
        raise AssertionError(
            f"{name} did not become ready in {ui!r} within {timeout:.0f} s "
            f"(wanted {expected} cells, a Python kernel and an idle indicator): "
            f"{_readiness(page)}"
        ) from None


def _readiness(page: Page) -> str:
    try:
        return page.evaluate(
            """([cellSel, kernelSel, indicatorSel]) => {
                const kernel = document.querySelector(kernelSel);
                const indicator = document.querySelector(indicatorSel);
                return `cells=${document.querySelectorAll(cellSel).length}`
                    + ` kernel=${kernel ? JSON.stringify(kernel.textContent) : 'none'}`
                    + ` indicator=${indicator ? indicator.dataset.status : 'none'}`;
            }""",
            [CELL, KERNEL_NAME, EXECUTION_INDICATOR],
        )
    except PlaywrightError as exc:
        return f"(page state unreadable: {exc})"


def run_all(page: Page) -> None:
    """Run > Run All Cells; remember the prompts so ``wait_idle`` sees fresh counts."""
    page.evaluate(
        "(sel) => { window.__harnessPrompts = Array.from(document.querySelectorAll(sel),"
        " (c) => { const p = c.querySelector('.jp-InputArea-prompt');"
        " return p ? p.textContent.trim() : ''; }); }",
        CODE_CELL,
    )
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


# Per code cell with source: "fresh" (ran since run_all), "pending" ([*]) or
# "stale". Empty cells are left out: the UIs never give them a count.
_RUN_STATE_JS = """([cellSel, indicatorSel]) => {
    const before = window.__harnessPrompts || [];
    const states = [];
    document.querySelectorAll(cellSel).forEach((c, i) => {
        const editor = c.querySelector('.jp-InputArea-editor');
        if (editor && editor.textContent.trim() === '') return;
        const promptEl = c.querySelector('.jp-InputArea-prompt');
        const p = promptEl ? promptEl.textContent.trim() : '';
        if (p.includes('*')) states.push('pending');
        else if (/^\\[\\d+\\]:?$/.test(p) && p !== before[i]) states.push('fresh');
        else states.push('stale');
    });
    const indicator = document.querySelector(indicatorSel);
    const idle = !!indicator && indicator.dataset.status === 'idle';
    if (!idle || states.includes('pending') || !states.includes('fresh')) return null;
    return states.every((s) => s === 'fresh') ? 'done' : 'stopped';
}"""


def wait_idle(page: Page, timeout: float = 120.0, *, allow_errors: bool = False) -> None:
    """Wait until every code cell shows an execution count and the kernel is idle.

    After ``run_all``, a count equal to the one shown before the run does not
    count, so a notebook saved with outputs cannot pass before it ran. Empty
    code cells are not waited for. When a cell raises, Run All stops there;
    that fails at once with the error, unless ``allow_errors`` (then the wait
    ends when the run has stopped).
    """
    try:
        handle = page.wait_for_function(
            _RUN_STATE_JS,
            arg=[CODE_CELL, EXECUTION_INDICATOR],
            timeout=timeout * 1000,
            polling=200,
        )
    except PlaywrightTimeoutError:
        raise AssertionError(f"cells did not all finish within {timeout:.0f} s: {_execution_summary(page)}") from None
    if handle.json_value() == "stopped" and not allow_errors:
        raise AssertionError(f"the run stopped before the last cell: {_execution_summary(page)}")


def _execution_summary(page: Page) -> str:
    try:
        return page.evaluate(
            """([cellSel, indicatorSel]) => {
                const cells = Array.from(document.querySelectorAll(cellSel), (c, i) => {
                    const prompt = c.querySelector('.jp-InputArea-prompt');
                    const err = c.querySelector(
                        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
                    const p = prompt ? prompt.textContent.trim() : '';
                    return `cell ${i} ${p}` + (err ? ` stderr: ${err.textContent.slice(-600)}` : '');
                });
                const ind = document.querySelector(indicatorSel);
                return `kernel ${ind ? ind.dataset.status : 'unknown'}; ` + cells.join('; ');
            }""",
            [CELL, EXECUTION_INDICATOR],
        )
    except PlaywrightError as exc:
        return f"(page state unreadable: {exc})"


def cell(page: Page, index: int) -> Locator:
    """The cell at ``index``, counting every cell of the file from 0."""
    return page.locator(CELL).nth(index)


def cell_outputs(page: Page, index: int) -> Locator:
    """The rendered outputs (``.jp-OutputArea-output``) of the cell at ``index``."""
    return cell(page, index).locator(".jp-OutputArea-output")


def widget_errors(page: Page) -> list[str]:
    """Texts of "Error displaying widget" placeholders: widgets whose model did not load."""
    return page.evaluate(
        """(needle) => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
            .map((e) => e.textContent.trim()).filter((t) => t.includes(needle))""",
        WIDGET_ERROR_TEXT,
    )


def record_distinct_texts(page: Page, selector: str) -> None:
    """Start recording each distinct ``textContent`` of elements matching ``selector``.

    Call after ``open_notebook`` (a navigation drops the recorder) and before
    running cells. Recorders for several selectors can run side by side.
    """
    page.evaluate(
        """(selector) => {
            const store = (window.__harnessRecorded = window.__harnessRecorded || {});
            if (store[selector]) return;
            const seen = new Set();
            const texts = (store[selector] = []);
            const sample = () => {
                for (const el of document.querySelectorAll(selector)) {
                    const t = el.textContent;
                    if (!seen.has(t)) { seen.add(t); texts.push(t); }
                }
            };
            sample();
            new MutationObserver(sample).observe(document.body,
                {subtree: true, childList: true, characterData: true});
        }""",
        selector,
    )


def read_recorded(page: Page, selector: str | None = None) -> list[str]:
    """The distinct texts recorded so far, in order of first appearance.

    ``selector`` may be left out when only one recorder was installed.
    """
    store: dict[str, list[str]] = page.evaluate("() => window.__harnessRecorded || {}")
    if selector is not None:
        if selector not in store:
            raise KeyError(f"no recorder for {selector!r}; call record_distinct_texts first")
        return store[selector]
    if len(store) != 1:
        raise ValueError(f"{len(store)} recorders are installed ({sorted(store)}); name the selector to read")
    return next(iter(store.values()))


def artifact_name(nodeid_name: str) -> str:
    """A file-name-safe form of a test's name, e.g. ``test_x[lab]`` -> ``test_x-lab``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", nodeid_name).strip("-")
    return cleaned or "test"


def chromium_missing_message(path: Path = CHROMIUM_PATH) -> str:
    return (
        f"Chromium is not installed at {path}, which the browser tests drive. "
        "Run ./dev setup (it installs Debian's chromium package), then run the tests again."
    )


__all__ = [
    "ARTIFACTS_DIR",
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "JupyterServer",
    "SCREENSHOTS_DIR",
    "VIEWPORT",
    "artifact_name",
    "cell",
    "cell_outputs",
    "open_notebook",
    "read_recorded",
    "record_distinct_texts",
    "run_all",
    "wait_idle",
    "widget_errors",
]
