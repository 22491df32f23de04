"""Benchmarks of compass_jupyter: ``python -m benchmarks`` (or ``./dev bench``).

Speed is measured here and nowhere else; tests never assert timings. Every
table compares against a reference measured in the same run, so the ratios
mean something on any machine. What is shared: the command line, a stand-in
server in its own process, medians and plain-text tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import httpx

__all__ = ["Options", "StandInProcess", "environment", "median", "parse_options", "ratio", "table"]

# Benchmark turns never go into the person's own store of exchanges (store.py measures the store itself,
# with settings of its own that take precedence over this).
os.environ["COMPASS_STORE"] = "off"

TOKENS = 5000  # the length of the streamed reply in the rendering tables (streaming.py has its own sizes)


@dataclass(frozen=True)
class Options:
    """How long to run: ``repeat`` None means each benchmark's own default."""

    quick: bool = False
    repeat: int | None = None

    def repeats(self, default: int, quick: int) -> int:
        if self.repeat is not None:
            return self.repeat
        return quick if self.quick else default


def parse_options(argv: Sequence[str] | None, prog: str, *, only: bool = False) -> tuple[Options, list[str]]:
    """The shared command line; with ``only``, also which benchmarks to run."""
    parser = argparse.ArgumentParser(prog=prog, description="Print benchmark tables for compass_jupyter.")
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a rough picture in a few seconds")
    parser.add_argument(
        "--repeat", type=int, default=None, metavar="N", help="repeats per measurement (the median is shown)"
    )
    if only:
        parser.add_argument(
            "--only",
            action="append",
            choices=["streaming", "accumulation", "rendering", "store", "local_model", "batch"],
            help="run only this benchmark (repeatable)",
        )
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    chosen = list(
        getattr(args, "only", None) or ["streaming", "accumulation", "rendering", "store", "local_model", "batch"]
    )
    return Options(quick=args.quick, repeat=args.repeat), chosen


def environment() -> str:
    """One line saying where the numbers come from."""
    import compass_jupyter

    version = getattr(compass_jupyter, "__version__", "?")
    return (
        f"compass_jupyter {version} · Python {platform.python_version()} · {platform.system()} "
        f"{platform.machine()} · {os.cpu_count()} CPU cores"
    )


class StandInProcess:
    """The stand-in server in a child process, so it does not share the GIL with the code measured.

    Started with ``python -m compass_jupyter.testing``; scenarios are queued
    through its admin route. The key it generated is kept here and never printed.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._admin: httpx.Client | None = None
        self.base_url = ""
        self.key = ""

    def __enter__(self) -> StandInProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "compass_jupyter.testing"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        for _ in range(2):
            name, _, value = process.stdout.readline().strip().partition("=")
            if name == "COMPASS_BASE_URL":
                self.base_url = value
            elif name == "COMPASS_API_KEY":
                self.key = value
        if not self.base_url:
            self.__exit__()
            raise RuntimeError("The stand-in server did not start (python -m compass_jupyter.testing printed no URL).")
        # Control routes need the key, as the chat route does.
        self._admin = httpx.Client(base_url=self.base_url, headers={"api-key": self.key})
        return self

    def enqueue(self, **scenario: Any) -> None:
        """Queue a Scenario (given as its fields) for the next chat request."""
        assert self._admin is not None
        self._admin.post("/_standin/enqueue", json=scenario).raise_for_status()

    def __exit__(self, *exc: object) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio(value: float, reference: float) -> str:
    """``value`` as a multiple of ``reference`` (``×1.00`` for the reference itself)."""
    if reference == 0:
        return "–"
    r = value / reference
    return f"×{r:.2f}" if r >= 0.1 else f"×{r:.3f}"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], notes: Sequence[str] = ()) -> str:
    """An aligned plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(col)] + [len(row[i]) for row in cells]) for i, col in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        parts = [v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))]
        return "  ".join(parts).rstrip()

    out = [title, "=" * len(title), line(list(columns)), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in cells]
    out += [f"  {note}" for note in notes]
    return "\n".join(out)
