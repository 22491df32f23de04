"""A stand-in server with a schedule of its own, and helpers, for the tests of cj.map.

:class:`TimedServer` is the stand-in with three additions a rate-limited gateway
has on its own: the arrival time of every request (to count them per window), a
latency per request (so rows overlap and finish out of order), and refusals
chosen by what a request says (so one given row fails). Budgets are checked on
those arrival times, never on the client's own account of what it sent.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import compass_jupyter as cj
from compass_jupyter.batch import memo
from compass_jupyter.testing import Scenario, StandInServer, max_in_window  # noqa: F401  (test_batch imports it from here)


class TimedServer(StandInServer):
    """The stand-in, plus arrival times, a latency per request and refusals by content.

    ``latency``: seconds (or a function of the request body giving seconds) slept
    before a chat request is answered. ``refuse``: a function of the body; when it
    returns a Scenario, that request gets it instead of the queue's next one.
    """

    def __init__(
        self,
        *,
        latency: float | Callable[[Any], float] = 0.0,
        refuse: Callable[[Any], Scenario | None] | None = None,
    ) -> None:
        super().__init__()
        self.latency, self.refuse = latency, refuse
        self.arrivals: list[tuple[float, Any]] = []  # (time.monotonic(), body)
        self._here = threading.local()  # each request is handled on its own thread

    def _record(self, request: Any) -> None:
        with self._lock:
            self.arrivals.append((time.monotonic(), request.body))
        self._here.body = request.body
        super()._record(request)
        wait = self.latency(request.body) if callable(self.latency) else self.latency
        if wait:
            time.sleep(wait)

    def _take_scenario(self) -> Scenario | None:
        body = getattr(self._here, "body", None)
        if self.refuse is not None and isinstance(body, dict):
            scenario = self.refuse(body)
            if scenario is not None:
                return scenario
        return super()._take_scenario()

    def prompts(self) -> list[str]:
        return [last_user(body) for _, body in self.arrivals]


def last_user(body: Any) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[0]["text"]


@pytest.fixture(autouse=True)
def fresh_memo() -> Iterator[None]:
    memo.forget()
    yield
    memo.forget()


def serve(monkeypatch: pytest.MonkeyPatch, server: StandInServer) -> StandInServer:
    server.start()
    monkeypatch.setenv("COMPASS_BASE_URL", server.base_url)
    monkeypatch.setenv("COMPASS_API_KEY", server.key)
    return server


@pytest.fixture
def timed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., TimedServer]]:
    """Start a TimedServer with the given options and point the environment at it."""
    servers: list[TimedServer] = []

    def start(**options: Any) -> TimedServer:
        server = TimedServer(**options)
        servers.append(server)
        serve(monkeypatch, server)
        return server

    yield start
    for server in servers:
        server.stop()


def quiet(template: str, rows: Any, **kwargs: Any) -> Any:
    return cj.map(template, rows, progress=False, **kwargs)


def interrupt_after(server: TimedServer, requests: int, extra: float) -> threading.Thread:
    def interrupt() -> None:
        deadline = time.monotonic() + 10
        while len(server.arrivals) < requests and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(extra)
        _thread.interrupt_main()

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread
