"""Running a playground request without blocking the kernel, and stopping it at once.

A widget callback only runs while the kernel is idle, and the Stop button must
still work while a reply streams. So inside a kernel the turn (the session's
blocking ``chat`` or ``compare``, with its tool loop and its bookkeeping) runs
in a worker thread, awaited by a task on the kernel's running asyncio loop, and
the task reports the result back on the loop's thread. Without a running loop
(plain Python, a script) the turn runs and finishes in a thread of its own, and
the caller gets a ``concurrent.futures.Future``.

Stop must close the connection at once, also before the first chunk arrives,
when nothing in the worker thread runs: it sits in a blocking socket read that
no flag can interrupt. So each turn gets a :class:`StoppableClient`: the session
sends through it as through its own client, and it sends each request with
:meth:`Client.achat <compass_jupyter.client.Client.achat>` as a task on an
event loop of its own (one thread for the process, "compass-playground-io")
while the worker thread waits. :meth:`StoppableClient.stop` cancels those
tasks; cancelling ``achat`` closes its connection and hands on the partial
reply, marked interrupted, which the session keeps as it keeps a Ctrl-C (the
history and the store record the turn as interrupted). That loop is not the
kernel's, so a reply keeps streaming while a cell runs, and Stop closes at once
in plain Python too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import copy
import threading
from typing import TYPE_CHECKING, Any, Callable, TypeAlias, Union

import httpx

from ..client import Client
from ..turn import Cancelled

if TYPE_CHECKING:
    from ..reply import Reply

__all__ = ["Running", "StoppableClient", "run"]

Running: TypeAlias = Union["asyncio.Task[Any]", "concurrent.futures.Future[Any]"]
Done = Callable[[Any, BaseException | None], None]  # (result, error); both None when cancelled

_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _worker_pool() -> concurrent.futures.ThreadPoolExecutor:
    # Own named threads, so a stuck request is recognisable in a thread dump.
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="compass-playground")
        return _executor


def run(work: Callable[[], Any], done: Done) -> Running:
    """Run ``work`` off the kernel's loop and call ``done(result, error)`` when it ends.

    Inside a running loop: a task, and ``done`` runs on the loop's thread. Without
    one: a future, and ``done`` runs on the worker thread. The task or future gives
    the result (None when the work failed: the error went to ``done``).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return loop.create_task(_drive(work, done))

    # No loop to come back to: run and finish on a worker thread.
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run_here() -> None:
        try:
            result = work()
        except Exception as exc:
            done(None, exc)
            future.set_result(None)
        else:
            done(result, None)
            future.set_result(result)

    threading.Thread(target=run_here, name="compass-playground-turn", daemon=True).start()
    return future


async def _drive(work: Callable[[], Any], done: Done) -> Any:
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # ipykernel keeps the output's parent in context variables
    try:
        result = await loop.run_in_executor(_worker_pool(), context.run, work)
    except Exception as exc:
        done(None, exc)
        return None
    except BaseException:  # the task was cancelled (kernel shutting down): leave the panel usable
        done(None, None)
        raise
    done(result, None)
    return result


# -- stopping at once --------------------------------------------------------------------

_io_lock = threading.Lock()
_io_loop: asyncio.AbstractEventLoop | None = None
_io_http: httpx.AsyncClient | None = None


def _requests_loop() -> tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]:
    """The loop the playground's requests run on (started once, in a daemon thread), and its connection pool.

    An ``httpx.AsyncClient`` belongs to the loop it first ran on, so the pool
    lives and dies with this loop.
    """
    global _io_loop, _io_http
    with _io_lock:
        if _io_loop is None or _io_loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="compass-playground-io", daemon=True).start()
            _io_loop, _io_http = loop, httpx.AsyncClient(follow_redirects=False)
        assert _io_http is not None
        return _io_loop, _io_http


def _async_twin(base: Client, http: httpx.AsyncClient) -> Client | None:
    """``base`` (its settings, key, dialect and store) sending through ``http``; None if it must not.

    A copy, so ``base`` and its own connections stay as they were (``cj.map``
    copies a client the same way). A client given an ``http_client`` sends
    through that one only (its proxies, certificates, transport), one given an
    ``async_http_client`` may be tied to another loop, and a subclass that
    changes ``chat`` but not ``achat`` would lose its change: all of them keep
    their own way of sending.
    """
    if base._given_http or base._given_ahttp:
        return None
    if type(base).chat is not Client.chat and type(base).achat is Client.achat:
        return None
    twin = copy.copy(base)
    twin._ahttp, twin._given_ahttp = http, False  # the settings' timeout applies; the pool is never closed by it
    return twin


class StoppableClient:
    """The client of one playground turn: the session's own, except that :meth:`stop` closes its connections now.

    ``resolve`` gives the client the session would use (called once, on the
    worker thread, because it may start the local model). Each :meth:`chat`
    (called on a worker thread, as the session calls it) runs ``achat`` as a
    task on the requests' loop and waits for it. Anything else (``prepare``,
    settings) is the resolved client's.

    Where a client must keep its own way of sending (see :func:`_async_twin`),
    ``chat`` is its own, and Stop ends the reply at its next chunk (through the
    turn's observer) instead: :attr:`closes_at_once` says which.
    """

    def __init__(self, resolve: Callable[[], Any]) -> None:
        self._resolve = resolve
        # Held while resolving, which may start the local model: Stop never takes it, so the
        # kernel's thread is never kept waiting.
        self._lock = threading.Lock()
        self._resolved = False
        self._base: Any = None
        self._sender: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = threading.Event()
        self._tasks: set[asyncio.Task[Any]] = set()  # touched on the requests' loop only

    # -- the client the session sends through ----------------------------------------------
    def _client(self) -> Any:
        with self._lock:
            if not self._resolved:
                base = self._resolve()
                self._base = base
                if isinstance(base, Client):
                    loop, http = _requests_loop()
                    self._sender = _async_twin(base, http)
                    self._loop = loop if self._sender is not None else None
                self._resolved = True  # last: closes_at_once reads these without the lock
            return self._base

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._client(), name)

    @property
    def closes_at_once(self) -> bool:
        """True when Stop closes the connection at once (else at the reply's next chunk)."""
        # Unresolved: nothing was sent yet, and chat() refuses to send once stopped.
        return not self._resolved or self._sender is not None

    def chat(self, messages: list[dict[str, Any]], **kwargs: Any) -> Reply:
        """``Client.chat``'s contract, sent with ``achat`` on the requests' loop so that :meth:`stop` closes it."""
        if self._stopped.is_set():
            raise Cancelled()  # stopped between tool rounds, or before this model's request went out
        base = self._client()
        if self._stopped.is_set():
            raise Cancelled()  # stopped while the client was being resolved (the local model starting)
        sender, loop = self._sender, self._loop
        if sender is None or loop is None:
            return base.chat(messages, **kwargs)
        settled: concurrent.futures.Future[Reply] = concurrent.futures.Future()
        context = contextvars.copy_context()  # the worker's: ipykernel routes output by context variables

        def start() -> None:
            if self._stopped.is_set():
                settled.set_exception(Cancelled())
                return
            task = context.run(loop.create_task, self._achat(sender, messages, kwargs))
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._settle(t, settled))

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop is closed: the interpreter is going away
            raise Cancelled() from None
        return self._wait(settled, loop)

    @staticmethod
    async def _achat(sender: Client, messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> Reply:
        try:
            return await sender.achat(messages, **kwargs)
        except asyncio.CancelledError as exc:
            # The connection is closed by now. The partial reply (marked interrupted) goes on as
            # Cancelled, which the session keeps as it keeps an interrupt.
            raise Cancelled(getattr(exc, "reply", None)) from None

    def _settle(self, task: asyncio.Task[Reply], settled: concurrent.futures.Future[Reply]) -> None:
        self._tasks.discard(task)
        if task.cancelled():  # cancelled before it started running: nothing was sent
            settled.set_exception(Cancelled())
        elif task.exception() is not None:
            settled.set_exception(task.exception())
        else:
            settled.set_result(task.result())

    @staticmethod
    def _wait(settled: concurrent.futures.Future[Reply], loop: asyncio.AbstractEventLoop) -> Reply:
        while True:
            try:
                return settled.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if loop.is_closed():  # it will never settle
                    raise Cancelled() from None

    # -- Stop ------------------------------------------------------------------------------
    def stop(self) -> bool:
        """Close the turn's connections now (from any thread); True if they close at once, False at the next chunk.

        Requests not sent yet are refused with :class:`~compass_jupyter.turn.Cancelled`.
        """
        self._stopped.set()
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._cancel_all)
            except RuntimeError:
                pass  # the loop is closed: its tasks are gone already
        return self.closes_at_once

    def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
