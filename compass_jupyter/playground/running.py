"""Running a playground request without blocking the kernel.

A widget callback only runs while the kernel is idle, and the Stop button must
still work while a reply streams. So inside a kernel the blocking request runs
in a worker thread, awaited by a task on the kernel's running asyncio loop, and
the task reports the result back on the loop's thread. Without a running loop
(plain Python, a script) the request runs and finishes in a thread of its own,
and the caller gets a ``concurrent.futures.Future``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from typing import Any, Callable, TypeAlias, Union

__all__ = ["Running", "run"]

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
