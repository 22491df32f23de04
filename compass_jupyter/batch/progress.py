"""What a run of ``cj.map`` has done so far, what it did in the end, and who watches it.

:class:`Progress` is the run's counters, written by the engine's loop as rows
finish; :meth:`Progress.snapshot` gives an immutable :class:`ProgressState`
(done, failed, in flight, tokens, elapsed, ETA, the last error) for a view.
:class:`Summary` is the end: how many rows were answered, reused, failed (grouped
by error, with the rows' labels) or left unsent, and what it cost. A view is a
:class:`BatchObserver`; the engine never imports one (see :mod:`compass_jupyter.views.progress`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["BatchObserver", "ErrorGroup", "Progress", "ProgressState", "Summary", "SILENT"]

LABELS_KEPT = 5  # row labels kept per kind of error (the count is exact)
MESSAGE_CHARS = 240  # of an error's message, to group the same failure of different rows


@dataclass(frozen=True)
class ErrorGroup:
    """One kind of failure: ``kind`` (the error's class and message), how many rows, which (the first few)."""

    kind: str
    count: int
    labels: tuple[Any, ...]


@dataclass(frozen=True)
class ProgressState:
    """A run at one moment, as a view shows it."""

    total: int
    done: int  # answered, by the server or reused
    reused: int  # answered without a request: an earlier run's answer, or the replay cache
    failed: int
    in_flight: int
    requests: int  # HTTP requests sent, retries included
    rate_limited: int  # 429s received
    tokens_in: int
    tokens_out: int
    elapsed: float
    eta: float | None  # seconds left at the pace so far; None before the first answer
    last_error: str | None
    paused: float  # seconds left of a 429's pause (0: none)

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def pending(self) -> int:
        return self.total - self.finished


@dataclass(frozen=True)
class Summary:
    """The end of a run: counts, cost, and why rows failed."""

    total: int
    answered: int  # by the server in this run
    reused: int
    failed: int
    pending: int  # never answered: the run was interrupted or stopped
    requests: int
    rate_limited: int
    tokens_in: int
    tokens_out: int
    elapsed: float
    errors: tuple[ErrorGroup, ...] = ()
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early (an error that every row would meet)
    again: str = "the same call"  # what to run to resume ("the same call", "the cell")
    models: tuple[str, ...] = ()  # the models that answered in this run, as the replies name them

    @property
    def done(self) -> int:
        return self.answered + self.reused

    def __str__(self) -> str:
        from ..rendering.progress import summary_text

        return summary_text(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from ..rendering.progress import summary_bundle

        return summary_bundle(self)


@dataclass
class Progress:
    """The counters of a run (written by the engine's loop only; views read snapshots)."""

    total: int
    reused: int = 0
    answered: int = 0
    failed: int = 0
    in_flight: int = 0
    requests: int = 0
    rate_limited: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    last_error: str | None = None
    paused_until: float = 0.0
    models: dict[str, None] = field(default_factory=dict)  # who answered, in order of first answer
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    _counted_at_start: int = 0  # rows reused before sending began (they do not set the pace)
    _groups: dict[str, list[Any]] = field(default_factory=dict)  # kind -> [count, labels...]

    def begin(self) -> None:
        """Sending starts now: the clock, and the reused rows that do not count for the pace."""
        self.started = time.monotonic()
        self._counted_at_start = self.reused

    def fail(self, label: Any, error: BaseException) -> None:
        """Count a failed row and remember why (grouped with the same failure of other rows)."""
        self.failed += 1
        message = " ".join(str(error).split()) or type(error).__name__
        kind = f"{type(error).__name__}: {message[:MESSAGE_CHARS]}"
        group = self._groups.setdefault(kind, [0])
        group[0] += 1
        if len(group) <= LABELS_KEPT:
            group.append(label)
        self.last_error = f"row {label!r}: {kind}"

    def elapsed(self) -> float:
        return (self.ended if self.ended is not None else time.monotonic()) - self.started

    def snapshot(self) -> ProgressState:
        elapsed = self.elapsed()
        done = self.answered + self.reused
        paced = done + self.failed - self._counted_at_start
        left = self.total - done - self.failed
        eta = left * elapsed / paced if paced > 0 and elapsed > 0 else None
        return ProgressState(
            total=self.total,
            done=done,
            reused=self.reused,
            failed=self.failed,
            in_flight=self.in_flight,
            requests=self.requests,
            rate_limited=self.rate_limited,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            elapsed=elapsed,
            eta=0.0 if left == 0 else eta,
            last_error=self.last_error,
            paused=max(0.0, self.paused_until - time.monotonic()),
        )

    def summary(
        self, *, interrupted: bool = False, stopped: str | None = None, again: str = "the same call"
    ) -> Summary:
        groups = sorted(self._groups.items(), key=lambda item: -item[1][0])
        done = self.answered + self.reused
        return Summary(
            total=self.total,
            answered=self.answered,
            reused=self.reused,
            failed=self.failed,
            pending=self.total - done - self.failed,
            requests=self.requests,
            rate_limited=self.rate_limited,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            elapsed=self.elapsed(),
            errors=tuple(ErrorGroup(kind, group[0], tuple(group[1:])) for kind, group in groups),
            interrupted=interrupted,
            stopped=stopped,
            again=again,
            models=tuple(self.models),
        )


@runtime_checkable
class BatchObserver(Protocol):
    """Watches a run from the thread that called ``cj.map`` (never from the engine's loop)."""

    def start(self, state: ProgressState) -> None:
        """The rows are read and checked; sending begins (``state.reused`` were answered already)."""
        return None

    def update(self, state: ProgressState) -> None:
        """Called a few times a second while the run goes on."""
        return None

    def finish(self, summary: Summary) -> None:
        """The run ended: finished, interrupted (``summary.interrupted``) or stopped early."""
        return None


class _Silent(BatchObserver):
    """The observer of a run nobody watches."""


SILENT: BatchObserver = _Silent()
