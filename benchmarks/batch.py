"""Prompts over data: ``python -m benchmarks.batch`` (``--quick``: smaller sizes, about a minute).

The stand-in server runs in a child process (so it shares neither the GIL nor the
CPU time measured here) with a fixed latency per request and the arrival time of
every request. Four tables:

1. Throughput: ``cj.map`` over 100, 300 and 1,000 rows with 200 ms per request,
   against a sequential loop of ``cj.chat`` measured in the same run (100 rows;
   its time per row is what the larger sizes would take, extrapolated and marked
   so). The ideal is ``concurrency`` times the loop's rate.
2. A request budget held exactly: the server's arrivals counted over every
   window. The window is shrunk from 60 s to 6 s (``budget.WINDOW_SECONDS``; the
   budget is then per 6 s), so that the run proves in seconds what a minute
   would: the most arrivals in any window must equal the budget, never exceed it.
3. CPU per row in this process and memory, at 100,000 rows against the stand-in
   with no latency (the engine's own cost, not waiting).
4. What a finished row keeps: texts by default, whole replies with ``replies=True``.

Rows are answered with ``stream=False`` (map's default) and written to a store
in a temporary folder, as a kernel's are (not the person's own store).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import tempfile
import time
import tracemalloc
from multiprocessing.connection import Connection
from typing import Any, Callable, Sequence

from compass_jupyter.testing import StandInServer, max_in_window

from . import Options, environment, parse_options, ratio, table

__all__ = ["run"]

LATENCY = 0.2
SIZES, QUICK_SIZES = (100, 300, 1000), (50, 100, 200)
SEQUENTIAL, QUICK_SEQUENTIAL = 100, 25
BUDGET = {"window": 6.0, "rpm": 60, "rows": 150}  # 60 per 6 s, 150 rows: 2.5 windows
QUICK_BUDGET = {"window": 3.0, "rpm": 30, "rows": 75}
MEMORY_ROWS, QUICK_MEMORY_ROWS = 100_000, 10_000
KEPT_ROWS = 2_000


# -- the server, in its own process ----------------------------------------------------------


class PacedServer(StandInServer):
    """The stand-in with a latency before each chat answer and the arrival time of each request."""

    latency = 0.0

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[float] = []

    def _record(self, request: Any) -> None:
        with self._lock:
            self.arrivals.append(time.monotonic())
        super()._record(request)
        del self.requests[:]  # 100,000 recorded bodies would be this process's memory, not the client's
        if self.latency:
            time.sleep(self.latency)


def _serve(conn: Connection) -> None:
    server = PacedServer().start()
    conn.send((server.base_url, server.key))
    while True:
        command, value = conn.recv()
        if command == "latency":
            server.latency = value
        elif command == "arrivals":
            with server._lock:
                conn.send(list(server.arrivals))
                server.arrivals.clear()
            continue
        elif command == "stop":
            server.stop()
            conn.send(None)
            return
        conn.send(None)


class ServerProcess:
    """The PacedServer in a child process, with the environment of this one pointing at it."""

    def __enter__(self) -> ServerProcess:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        base_url, key = self._answer()
        self._store = tempfile.TemporaryDirectory()
        self._saved = {k: v for k, v in os.environ.items() if k.startswith("COMPASS_")}
        for name in self._saved:
            del os.environ[name]
        os.environ.update(
            COMPASS_BASE_URL=base_url,
            COMPASS_API_KEY=key,
            COMPASS_STORE=os.path.join(self._store.name, "exchanges.db"),
        )
        return self

    def ask(self, command: str, value: Any = None) -> Any:
        self._conn.send((command, value))
        return self._answer()

    def _answer(self) -> Any:
        if not self._conn.poll(60):  # a child that died never answers: say so rather than hang
            raise RuntimeError(f"The stand-in's process did not answer (exit code {self._process.exitcode}).")
        return self._conn.recv()

    def __exit__(self, *exc: object) -> None:
        try:
            self.ask("stop")
        finally:
            self._process.join(10)
            for name in [k for k in os.environ if k.startswith("COMPASS_")]:
                del os.environ[name]
            os.environ.update(self._saved)
            self._store.cleanup()


# -- measuring -------------------------------------------------------------------------------


def _timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _map(rows: list[str], **options: Any) -> Any:
    import compass_jupyter as cj
    from compass_jupyter.batch import memo

    memo.forget()  # every run starts cold (its prompts are new to the store as well)
    result = cj.map("Answer briefly: {row}", rows, progress=False, **options)
    assert result.summary.answered == len(rows), str(result.summary)
    return result


def _sequential(rows: list[str]) -> None:
    import compass_jupyter as cj

    for row in rows:
        cj.chat(f"Answer briefly: {row}", history=False, stream=False)


def _peak_rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:  # resets VmHWM, the peak resident set (Linux)
            refs.write("5")
        return True
    except OSError:
        return False


def _rss(field: str) -> float:
    """VmRSS or VmHWM of this process in MB (Linux); 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# -- the tables --------------------------------------------------------------------------------


def throughput(server: ServerProcess, options: Options) -> str:
    from compass_jupyter.settings import config

    sizes = QUICK_SIZES if options.quick else SIZES
    count = QUICK_SEQUENTIAL if options.quick else SEQUENTIAL
    concurrency = int(config.get("concurrency"))
    server.ask("latency", LATENCY)
    _map([f"warm-{i}" for i in range(concurrency)])  # connections, imports
    _, seq_wall, seq_cpu = _timed(lambda: _sequential([f"seq-{i}" for i in range(count)]))
    per_row = seq_wall / count
    loop = ["sequential cj.chat", f"{seq_wall:,.1f}", f"{count / seq_wall:,.1f}", "×1.00", "–"]
    rows = [[f"{count:,}", *loop, f"{seq_cpu / count * 1000:.2f}", f"{seq_wall:,.0f} (run)"]]
    for n, width in [(n, concurrency) for n in sizes] + [(sizes[-1], 32)]:
        _, wall, cpu = _timed(lambda n=n, width=width: _map([f"r{n}-{width}-{i}" for i in range(n)], concurrency=width))
        faster = (n / wall) * per_row  # rows/s over the loop's rows/s
        rows.append(
            [
                f"{n:,}",
                f"cj.map, concurrency {width}",
                f"{wall:,.1f}",
                f"{n / wall:,.1f}",
                ratio(faster, 1.0),
                f"{faster / width:.0%}",
                f"{cpu / n * 1000:.2f}",
                f"{per_row * n:,.0f}",
            ]
        )
    server.ask("arrivals")
    return table(
        f"Rows answered with {LATENCY * 1000:.0f} ms per request: cj.map against a loop of cj.chat",
        ["rows", "how", "wall s", "rows/s", "×loop", "of ideal", "CPU ms/row", "loop s (est.)"],
        rows,
        [
            f"×loop: rows/s against the sequential loop's ({count} rows, measured in this run); 'of ideal' is ×loop",
            "over the concurrency (100% = concurrency times the loop). loop s (est.): what the loop would take",
            f"for that many rows at its measured {per_row * 1000:.0f} ms per row (extrapolated, not run).",
            "CPU: time.process_time of this process (the kernel's side) per row; the server runs in another.",
        ],
    )


def budget_held(server: ServerProcess, options: Options) -> str:
    from compass_jupyter.batch import budget

    setup = QUICK_BUDGET if options.quick else BUDGET
    window, rpm, count = setup["window"], int(setup["rpm"]), int(setup["rows"])
    server.ask("latency", LATENCY)
    saved = budget.WINDOW_SECONDS
    budget.WINDOW_SECONDS = window
    try:
        _, wall, _ = _timed(lambda: _map([f"b-{i}" for i in range(count)], rpm=rpm))
    finally:
        budget.WINDOW_SECONDS = saved
    times = server.ask("arrivals")
    most = max_in_window(times, window)
    first = times[0]
    fixed = [
        sum(1 for t in times if k * window <= t - first < (k + 1) * window) for k in range(int(wall // window) + 1)
    ]
    rate = (len(times) - 1) / (times[-1] - first) * window
    rows = [
        [
            f"{window:g} s",
            f"{rpm}",
            f"{count}",
            f"{len(times)}",
            f"{most}",
            " ".join(str(c) for c in fixed if c),
            f"{rate:.1f}",
            ratio(rate, rpm),
            f"{wall:.1f}",
        ]
    ]
    return table(
        "A request budget held exactly: the server's arrivals per window",
        [
            "window",
            "budget",
            "rows",
            "arrivals",
            "max in any window",
            "per window from the first",
            "paced rate",
            "×budget",
            "wall s",
        ],
        rows,
        [
            f"The budget is {rpm} requests per {window:g} s (budget.WINDOW_SECONDS shrunk from 60 s, so that the",
            "run proves in seconds what a minute would), at 200 ms per request and concurrency 8, which alone would",
            f"send {8 / LATENCY * window:.0f} per window. max in any window: the most arrivals in any [t, t + window)",
            "at the server, which must equal the budget; paced rate: arrivals per window between the first and last.",
        ],
    )


def scale(server: ServerProcess, options: Options) -> str:
    count = QUICK_MEMORY_ROWS if options.quick else MEMORY_ROWS
    server.ask("latency", 0.0)
    rows_in = [f"m-{i}" for i in range(count)]
    gc.collect()
    before = _rss("VmRSS")
    reset = _peak_rss_reset()
    result, wall, cpu = _timed(lambda: _map(rows_in))
    peak = _rss("VmHWM") if reset else 0.0
    gc.collect()
    after = _rss("VmRSS")
    texts = sum(sys.getsizeof(text) for text in result) + sys.getsizeof(result)
    server.ask("arrivals")
    rows = [
        [
            f"{count:,}",
            f"{wall:,.1f}",
            f"{count / wall:,.0f}",
            f"{cpu / count * 1000:.2f}",
            f"{texts / 2**20:,.1f}",
            f"{after - before:,.0f}",
            f"{peak - before:,.0f}" if reset else "–",
        ]
    ]
    del result
    return table(
        "At scale: CPU per row and memory (no latency, the default concurrency)",
        ["rows", "wall s", "rows/s", "CPU ms/row", "result MB", "RSS kept MB", "RSS peak MB"],
        rows,
        [
            "CPU: this process per row (reading rows, filling the template, the request, the reply, the store).",
            "result MB: the answers' texts and the list holding them; RSS kept / peak: this process's resident",
            "memory after the run (answers and the memo of them) and at its peak, over what it was before.",
        ],
    )


def kept_per_row(server: ServerProcess, options: Options) -> str:
    server.ask("latency", 0.0)
    rows = []
    base = None
    for replies in (False, True):
        rows_in = [f"k-{replies}-{i}" for i in range(KEPT_ROWS)]
        gc.collect()
        tracemalloc.start()
        result = _map(rows_in, replies=replies)
        gc.collect()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        base = base or size
        rows.append(
            [
                "replies=True (whole Reply)" if replies else "default (text)",
                f"{KEPT_ROWS:,}",
                f"{size / KEPT_ROWS / 1024:.2f}",
                ratio(size, base),
            ]
        )
        del result
    server.ask("arrivals")
    return table(
        "What a finished row keeps (tracemalloc after the run: the result and the memo of this call)",
        ["result holds", "rows", "KB per row", "×text"],
        rows,
    )


def run(options: Options, out: Callable[[str], None] = print) -> str:
    texts = []
    with ServerProcess() as server:
        for part in (throughput, budget_held, scale, kept_per_row):
            text = part(server, options)
            out(text)
            out("")
            texts.append(text)
    return "\n\n".join(texts)


def main(argv: Sequence[str] | None = None) -> int:
    options, _ = parse_options(argv, "python -m benchmarks.batch")
    print(environment(), end="\n\n", flush=True)
    run(options, out=lambda text: print(text, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
