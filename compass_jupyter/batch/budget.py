"""How fast ``cj.map`` may send: request and token budgets per minute, and how many at once.

- :class:`Budget` holds the ``rpm`` and ``tpm`` settings over a sliding window
  (60 s): a request leaves only when the requests and the (estimated) tokens of
  the last window leave room for it, and requests are spaced ``window / rpm``
  apart, so that a gateway that counts over shorter periods (Azure counts rpm
  per 10 s) sees an even pace rather than a burst at the start of each minute.
  A 429 :meth:`~Budget.pause`\\ s every sender for the server's ``Retry-After``.
- :class:`Gate` bounds the requests in flight. A 429 halves the bound (once per
  pause, so a burst of 429s counts once); each run of successes as long as the
  bound raises it by one, back to ``concurrency``: the speed comes back.
- :class:`TokenEstimate` guesses a request's tokens before it is sent (the
  prompt's characters and ``max_tokens``) and learns from the usage replies
  report, so the token budget is held on numbers close to the real ones.

Everything runs on one event loop (the map's own, in its thread): no locks
beyond asyncio's. ``clock`` and ``sleep`` are injectable for tests.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

__all__ = ["Budget", "Gate", "MARGIN", "SAFETY", "Ticket", "TokenEstimate", "WINDOW_SECONDS"]

# The budgets' window. The settings are per minute; tests and benchmarks shrink the
# window (a budget of N per 2 s) to prove in seconds what a minute would prove.
WINDOW_SECONDS = 60.0
# A request reaches the server a little after it leaves here, and not always equally late: the
# first request on a new connection waits for the connection (tens of milliseconds, more with
# TLS). A request is counted in the window for MARGIN seconds (and 0.2%) longer than the window,
# so a later one that arrives sooner than its predecessor cannot make the server count one too many.
SAFETY = 0.002
MARGIN = 0.25
DEFAULT_PAUSE = 1.0  # seconds every sender waits after a 429 that names no Retry-After
MAX_PAUSE = 60.0  # the client's own cap on Retry-After, for the same reason: a server's typo is not an hour


@dataclass(slots=True)
class Ticket:
    """One request's place in the window: when it left and the tokens counted for it."""

    at: float
    tokens: int
    live: bool = True  # still inside the window (its tokens count)


class Budget:
    """Requests and tokens per window, never exceeded; a pause that every sender honours.

    ``rpm`` / ``tpm``: 0 means no budget of that kind. :meth:`acquire` waits for
    room and counts the request; :meth:`settle` replaces its token estimate by
    what the server reported.
    """

    def __init__(
        self,
        rpm: int = 0,
        tpm: int = 0,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rpm < 0 or tpm < 0 or window <= 0:
            raise ValueError("budgets are counts >= 0 over a window > 0 seconds")
        self.rpm, self.tpm = rpm, tpm
        self.window = window * (1 + SAFETY) + MARGIN
        self.spacing = window / rpm * (1 + SAFETY) if rpm else 0.0
        self._clock, self._sleep = clock, sleep
        self._sent: deque[Ticket] = deque()
        self._tokens = 0  # tokens of the live tickets
        self._next_at = -math.inf  # the earliest next departure (even spacing)
        self.paused_until = -math.inf
        self._turn: asyncio.Lock | None = None  # first come, first served; made on the loop that uses it

    # -- reading -------------------------------------------------------------------------
    @property
    def tokens_in_window(self) -> int:
        self._expire(self._clock())
        return self._tokens

    def requests_in_window(self) -> int:
        self._expire(self._clock())
        return len(self._sent)

    def wait(self, tokens: int, now: float | None = None) -> float:
        """Seconds until a request of ``tokens`` may leave (0: now)."""
        now = self._clock() if now is None else now
        self._expire(now)
        wait = max(0.0, self.paused_until - now, self._next_at - now)
        if self.rpm and len(self._sent) >= self.rpm:
            # The request rpm places back has to leave the window first.
            wait = max(wait, self._sent[len(self._sent) - self.rpm].at + self.window - now)
        if self.tpm and self._tokens + tokens > self.tpm:
            excess = self._tokens + tokens - self.tpm
            for ticket in self._sent:  # the oldest leave first
                excess -= ticket.tokens
                if excess <= 0:
                    wait = max(wait, ticket.at + self.window - now)
                    break
        return wait

    # -- changing ------------------------------------------------------------------------
    async def acquire(self, tokens: int) -> Ticket:
        """Wait until a request of ``tokens`` fits, then count it; returns its ticket."""
        if self.tpm:
            # One request larger than the whole budget could never leave; it waits for an empty window.
            tokens = min(tokens, self.tpm)
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:  # waiting in line keeps the order rows were taken in
            while True:
                delay = self.wait(tokens)
                if delay <= 0:
                    break
                await self._sleep(delay)
            now = self._clock()
            ticket = Ticket(at=now, tokens=tokens)
            self._sent.append(ticket)
            self._tokens += tokens
            self._next_at = now + self.spacing
            return ticket

    def settle(self, ticket: Ticket, tokens: int) -> None:
        """The server's count of a request's tokens replaces the estimate it left with."""
        if ticket.live:
            self._tokens += tokens - ticket.tokens
        ticket.tokens = tokens

    def pause(self, seconds: float | None) -> bool:
        """Every sender waits ``seconds`` (a 429's Retry-After); True when no pause was running."""
        now = self._clock()
        fresh = self.paused_until <= now
        seconds = DEFAULT_PAUSE if seconds is None else min(max(seconds, 0.0), MAX_PAUSE)
        self.paused_until = max(self.paused_until, now + seconds)
        return fresh

    def _expire(self, now: float) -> None:
        sent = self._sent
        while sent and sent[0].at + self.window <= now:
            ticket = sent.popleft()
            ticket.live = False
            self._tokens -= ticket.tokens


class Gate:
    """At most ``limit`` holders at once; 429s lower the limit, successes raise it back (AIMD)."""

    def __init__(self, limit: int) -> None:
        self.most = self.limit = limit
        self.active = 0
        self._streak = 0
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def __aenter__(self) -> Gate:
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self.active < self.limit)
            self.active += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        changed = self._condition()
        async with changed:
            self.active -= 1
            changed.notify_all()

    def slow_down(self) -> None:
        """Halve the bound (at least 1): the server said too many."""
        self.limit = max(1, self.limit // 2)
        self._streak = 0

    def succeeded(self) -> None:
        """One more answer: after as many in a row as the bound, the bound grows by one."""
        if self.limit >= self.most:
            return
        self._streak += 1
        if self._streak >= self.limit:
            self.limit += 1
            self._streak = 0


class TokenEstimate:
    """A request's tokens before it is sent, from its characters and the reply it may get.

    The prompt: one token per ``chars_per_token`` characters (3 to start: more tokens
    than English text has, so the budget errs on the safe side), then the lowest
    ratio seen in the usage replies report (the most tokens per character).
    The reply: ``max_tokens`` (times ``n``) when asked for, else the longest reply
    seen so far (256 to start).
    """

    PER_MESSAGE = 8  # role and framing tokens of each message

    def __init__(self, *, completion: int | None = None, choices: int = 1) -> None:
        self.chars_per_token = 3.0
        self.fixed_completion = completion * choices if completion else None
        self.longest = 256 * choices
        self.choices = choices

    def prompt(self, chars: int, messages: int = 1) -> int:
        return math.ceil(chars / self.chars_per_token) + self.PER_MESSAGE * messages

    def request(self, chars: int, messages: int = 1) -> int:
        completion = self.fixed_completion if self.fixed_completion is not None else self.longest
        return self.prompt(chars, messages) + completion

    def learn(self, chars: int, prompt_tokens: int | None, completion_tokens: int | None) -> None:
        if prompt_tokens and prompt_tokens > 0 and chars > 0:
            self.chars_per_token = max(1.0, min(self.chars_per_token, chars / prompt_tokens))
        if completion_tokens is not None and completion_tokens > self.longest:
            self.longest = completion_tokens
