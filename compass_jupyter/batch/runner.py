"""Sending a map's rows: one async client, bounded and budgeted, on its own event loop in its own thread.

Why a thread: ``cj.map`` is called from a cell, and ipykernel already runs an
event loop on the main thread, so the rows cannot be awaited there. The engine
runs ``asyncio.run`` in a daemon thread while the calling thread waits in short
joins, feeding the view and staying interruptible: Ctrl-C (a kernel interrupt
arrives on the main thread) cancels the engine's task, which cancels every
request in flight (the client closes their connections) and keeps every row
that finished. Nothing is patched, nothing nests.

Why the requests go through event hooks: the budgets must see every request
that leaves, including the client's own retries, and a 429 must slow every
worker, not only the one that received it. So the engine sends through an
``httpx.AsyncClient`` whose request hook takes a place in the :class:`Budget`
before each send (a hook runs in the task that sends, so it knows the row from a
context variable) and whose response hook reads each answer's status: a 429
pauses every sender for its ``Retry-After`` and halves the :class:`Gate`. The
client's retry loop stays as it is (what is retried, never once data arrived,
Retry-After honoured): running it through the hooks keeps every attempt within
budget. A row whose 429s outlast the client's retries goes back in line a few
times, since a 429 says "later", not "never". Rows answered by the replay cache
send nothing, so they take no place in the budget.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .._exceptions import (
    AuthenticationError,
    CompassError,
    ConfigError,
    NotFoundError,
    RateLimitError,
)
from . import budget, memo
from .budget import Budget, Gate, Ticket, TokenEstimate
from .progress import BatchObserver, Progress
from .results import RowError

if TYPE_CHECKING:
    import httpx

    from ..client import Client
    from ..reply import Reply

__all__ = ["Engine", "Job", "Plan", "run"]

POLL = 0.1  # seconds between two looks of the calling thread at the run (view updates, Ctrl-C)
STOP_WAIT = 10.0  # seconds to wait for cancelled requests to close after an interrupt
REQUEUES = 3  # times a row rate-limited past the client's retries goes back in line
# Errors every row would meet: the run stops at the first instead of sending the rest in vain.
FATAL = (ConfigError, AuthenticationError, NotFoundError)


@dataclass(slots=True)
class Job:
    """One row to send: where its answer goes, its prompt, and its key among the memo's answers."""

    position: int
    prompt: str
    chars: int  # characters of the whole request's messages, for the token estimate
    key: bytes
    refresh: bool = False  # ask past the replay cache (its stored answer was unusable)
    requeued: int = 0


@dataclass
class Plan:
    """A checked call: everything the engine needs to send each row (built by :mod:`.plan`)."""

    client: Client
    messages: Callable[[str], list[dict[str, Any]]]  # a row's prompt -> the request's messages
    request: dict[str, Any]  # model, stream, extra_body and the request fields, as Client.achat takes them
    cache: str | None  # the replay cache's mode for the rows
    labels: list[Any]
    concurrency: int
    rpm: int = 0
    tpm: int = 0
    message_count: int = 1
    parse_json: bool = False
    keep_replies: bool = False
    estimate: TokenEstimate = field(default_factory=TokenEstimate)


@dataclass(slots=True)
class _Attempt:
    """A row being sent, as the hooks see it (through a context variable)."""

    tokens: int
    tickets: list[Ticket] = field(default_factory=list)
    sent: bool = False


_ATTEMPT: contextvars.ContextVar[_Attempt | None] = contextvars.ContextVar("compass_map_attempt", default=None)


def _client_for(base: Client, http: httpx.AsyncClient) -> Client:
    """``base`` (its settings, key, dialect, store) sending through ``http``, the engine's hooked client.

    A copy, because an ``httpx.AsyncClient`` belongs to the event loop it first ran on
    and the engine's loop lives only as long as the run; ``base`` is left as it was.
    """
    client = copy.copy(base)
    client._ahttp, client._given_ahttp = http, False  # closed by the engine, with its loop
    return client


class Engine:
    """One run: the rows to send, where answers go, and the counters views read."""

    def __init__(
        self, plan: Plan, jobs: list[Job], values: list[Any], answers: dict[bytes, Any], progress: Progress
    ) -> None:
        self.plan, self.jobs, self.values, self.answers, self.progress = plan, jobs, values, answers, progress
        self.fatal: CompassError | None = None  # the error that stopped the run early
        self.crash: BaseException | None = None  # a bug of the engine, raised in the calling thread
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.budget = Budget(plan.rpm, plan.tpm, window=budget.WINDOW_SECONDS)  # read per run: tests shrink it
        self.gate = Gate(plan.concurrency)

    # -- the calling thread --------------------------------------------------------------
    def thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except asyncio.CancelledError:
            pass  # stopped: by an interrupt, or by a fatal error
        except BaseException as exc:  # handed to the calling thread, which raises it
            self.crash = exc

    def stop(self) -> None:
        """Cancel the run from any thread: requests in flight are cancelled, finished rows stay."""
        self._stop.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:
                pass  # the loop has just ended on its own

    # -- the engine's loop -----------------------------------------------------------------
    async def _main(self) -> None:
        import httpx

        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        if self._stop.is_set():
            return
        width = min(self.plan.concurrency, len(self.jobs))
        http = httpx.AsyncClient(
            follow_redirects=False,
            limits=httpx.Limits(max_connections=width, max_keepalive_connections=width),
            event_hooks={"request": [self._sending], "response": [self._answered]},
        )
        client = _client_for(self.plan.client, http)
        queue: asyncio.Queue[Job] = asyncio.Queue()
        for job in self.jobs:
            queue.put_nowait(job)
        workers = [asyncio.create_task(self._worker(client, queue)) for _ in range(width)]
        try:
            await queue.join()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            await http.aclose()

    async def _worker(self, client: Client, queue: asyncio.Queue[Job]) -> None:
        while True:
            job = await queue.get()
            try:
                async with self.gate:
                    await self._send(client, job, queue)
            finally:
                queue.task_done()

    async def _send(self, client: Client, job: Job, queue: asyncio.Queue[Job]) -> None:
        plan = self.plan
        attempt = _Attempt(tokens=plan.estimate.request(job.chars, plan.message_count))
        token = _ATTEMPT.set(attempt)
        try:
            reply = await client.achat(
                plan.messages(job.prompt), cache="refresh" if job.refresh else plan.cache, **plan.request
            )
        except RateLimitError as exc:
            if job.requeued < REQUEUES:
                job.requeued += 1
                queue.put_nowait(job)  # the pause the 429s started applies before it goes again
            else:
                self._fail(job, exc)
        except FATAL as exc:
            self._fail(job, exc)
            if self.fatal is None:
                self.fatal = exc
                assert self._task is not None
                self._task.cancel()
        except CompassError as exc:
            self._fail(job, exc)
        except Exception as exc:  # a surprise from one row must not cost the others
            self._fail(job, exc)
        else:
            self._answer(job, reply, attempt)
        finally:
            _ATTEMPT.reset(token)
            if attempt.sent:
                self.progress.in_flight -= 1

    # -- the hooks (in the sending task) -----------------------------------------------------
    async def _sending(self, request: httpx.Request) -> None:
        attempt = _ATTEMPT.get()
        if attempt is None:
            return
        attempt.tickets.append(await self.budget.acquire(attempt.tokens))
        self.progress.requests += 1
        if not attempt.sent:
            attempt.sent = True
            self.progress.in_flight += 1

    async def _answered(self, response: httpx.Response) -> None:
        if response.status_code != 429:
            return
        from ..http_errors import retry_after_seconds

        self.progress.rate_limited += 1
        if self.budget.pause(retry_after_seconds(response.headers)):
            self.gate.slow_down()  # once per pause: a burst of 429s is one signal
        self.progress.paused_until = self.budget.paused_until

    # -- outcomes ------------------------------------------------------------------------------
    def _answer(self, job: Job, reply: Reply, attempt: _Attempt) -> None:
        plan, progress = self.plan, self.progress
        usage = reply.usage
        if reply.cached:
            progress.reused += 1  # the replay cache answered: nothing was sent or spent
        else:
            progress.answered += 1
            if not attempt.sent:  # a cassette being replayed answered in the server's stead
                progress.requests += 1
            if usage is not None:
                progress.tokens_in += usage.prompt_tokens or 0
                progress.tokens_out += usage.completion_tokens or 0
                if attempt.tickets and usage.total_tokens:
                    self.budget.settle(attempt.tickets[-1], usage.total_tokens)
                plan.estimate.learn(job.chars, usage.prompt_tokens, usage.completion_tokens)
        self.gate.succeeded()
        if reply.model:
            progress.models.setdefault(reply.model)
        if plan.keep_replies:
            value: Any = reply
        elif plan.parse_json:
            try:
                value = json.loads(reply.text)
            except json.JSONDecodeError as exc:
                self._undo_answer(reply)
                problem = ValueError(
                    f"The reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                    "its text is on the RowError's .text."
                )
                self.values[job.position] = RowError(problem, plan.labels[job.position], text=reply.text)
                self.progress.fail(plan.labels[job.position], problem)
                self.answers[job.key] = memo.ASK_AGAIN
                return
        else:
            value = reply.text
        self.values[job.position] = value
        self.answers[job.key] = reply if plan.keep_replies else reply.text

    def _undo_answer(self, reply: Reply) -> None:
        # Counted as answered a moment ago; an unusable answer is a failure (its tokens were spent).
        if reply.cached:
            self.progress.reused -= 1
        else:
            self.progress.answered -= 1

    def _fail(self, job: Job, error: BaseException) -> None:
        label = self.plan.labels[job.position]
        self.values[job.position] = RowError(error, label)
        self.progress.fail(label, error)


def _wait_for(thread: threading.Thread) -> None:
    """Wait (at most STOP_WAIT s) for a stopped engine to let go, even through another Ctrl-C.

    Cancelling takes milliseconds; a second interrupt in that window (an impatient
    click, or a front end that sends two) must not leave the engine answering rows
    behind the summary of what was kept.
    """
    deadline = time.monotonic() + STOP_WAIT
    while thread.is_alive() and time.monotonic() < deadline:
        try:
            thread.join(max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:
            continue


def run(engine: Engine, observer: BatchObserver) -> None:
    """Run ``engine`` in its thread; this thread feeds ``observer`` and takes Ctrl-C.

    An interrupt stops the engine (cancelling what is in flight, keeping what
    finished) and is raised again here once the engine has let go.
    """
    thread = threading.Thread(target=engine.thread_main, name="compass-map", daemon=True)
    watching = True
    thread.start()
    try:
        while thread.is_alive():
            thread.join(POLL)
            if watching:
                try:
                    observer.update(engine.progress.snapshot())
                except Exception:  # a view that breaks must not cost the run; it just stops updating
                    watching = False
    except KeyboardInterrupt:
        engine.stop()
        _wait_for(thread)
        raise
    finally:
        engine.progress.ended = time.monotonic()
    if engine.crash is not None:
        raise engine.crash
