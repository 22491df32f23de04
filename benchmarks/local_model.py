"""How fast the local model answers, alone and beside busy processes: ``python -m benchmarks.local_model``.

The local model (SmolLM2-135M on llama.cpp, :mod:`compass_jupyter.local_model`)
shares the machine with the kernel, the browser and whatever else runs. Its
threads meet at a barrier after every step of every token, so a token takes as
long as the slowest thread: one thread that another process keeps off its core
holds up all of them. Each row starts the real server with a number of threads
and a way of waiting at that barrier, then streams the same reply (a story,
temperature 0.8, a fixed seed) with the machine otherwise idle and beside busy
processes (``while True: pass`` each, one core's worth of work, at the same
priority), i.e. what rendering a reply or a test run does to it:

- *threads*: 1, 2, the default (:func:`~compass_jupyter.local_model.server.default_threads`:
  one core left free) and one per core (what the server used before);
- *waiting*: ``spinning`` is OpenMP's default, the threads spin a while at the
  barrier before sleeping (the server before); ``passive`` is
  ``OMP_WAIT_POLICY=PASSIVE``, which the server now sets, they sleep at once.

Every row's server runs for the whole benchmark and the rows take turns
request by request (after one unmeasured warm-up each), so a slow moment of the
machine spreads over all of them. Each request's story has a number of its own,
so its prompt is evaluated afresh (after the chat template's opening, which
llama.cpp keeps cached, as it does for a new cell).

Columns: tokens per second while generating (content events after the first
over the time since the first, medians), the first token's wait (the prompt,
evaluated one token at a time for deterministic replies, so it suffers the same
way), each busy speed as a multiple of the same row's idle speed, and the speed
beside one busy process as a multiple of row (a), the server as it was. "Idle"
means no busy process of the benchmark's own: the load average when it began is
printed under the table. Needs the ``[local]`` extra; without it the table says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import httpx

from compass_jupyter.local_model import server as server_module
from compass_jupyter.local_model.server import LOCAL_MODEL_ID, LocalModelServer, default_threads, local_available

from . import Options, environment, parse_options, ratio, table

PROMPT = "Story number {number}: write a long story about a dragon who learns to bake bread."
TOKENS, QUICK_TOKENS = 32, 16
TOO_SLOW = 180.0  # seconds for one reply: past it the row is marked, not waited for again
BURNER = "while True: pass"


@dataclass(frozen=True)
class Config:
    threads: int
    passive: bool

    @property
    def waiting(self) -> str:
        return "passive" if self.passive else "spinning"


@dataclass
class Result:
    rates: dict[int, list[float]] = field(default_factory=dict)  # busy processes -> tokens/s of each reply
    firsts: dict[int, list[float]] = field(default_factory=dict)  # busy processes -> first-token seconds
    gave_up: set[int] = field(default_factory=set)

    def rate(self, busy: int) -> float | None:
        values = self.rates.get(busy)
        return statistics.median(values) if values else None

    def first(self, busy: int) -> float | None:
        values = self.firsts.get(busy)
        return statistics.median(values) if values else None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def _waiting(passive: bool) -> Iterator[None]:
    """Start servers that wait passively (as the package does) or with OpenMP's default spinning."""
    original = server_module.server_environment

    def spinning() -> dict[str, str]:
        return {name: value for name, value in os.environ.items() if name != "OMP_WAIT_POLICY"}

    if not passive:
        server_module.server_environment = spinning
    try:
        yield
    finally:
        server_module.server_environment = original


@contextlib.contextmanager
def _busy(count: int) -> Iterator[None]:
    """``count`` processes that each keep one core busy for as long as the block runs."""
    burners = [subprocess.Popen([sys.executable, "-c", BURNER]) for _ in range(count)]
    try:
        time.sleep(0.3 if count else 0)  # let the scheduler spread them
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def _reply(http: httpx.Client, tokens: int, number: int) -> tuple[float, float, int]:
    """(tokens/s while generating, seconds to the first token, content events) of one streamed reply."""
    body = {
        "model": LOCAL_MODEL_ID,
        "messages": [{"role": "user", "content": PROMPT.format(number=number)}],
        "max_tokens": tokens,
        "temperature": 0.8,
        "seed": 7,
        "stream": True,
    }
    started = time.perf_counter()
    first = last = None
    events = 0
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[len("data: ") :]).get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                last = time.perf_counter()
                first = first or last
                events += 1
    if first is None or last is None or events < 2:
        return 0.0, (first or time.perf_counter()) - started, events
    return (events - 1) / (last - first), first - started, events


def _measure(configs: Sequence[Config], loads: Sequence[int], repeats: int, tokens: int) -> dict[Config, Result]:
    """Every config's server started at once; then, per repeat and load, one reply from each in turn."""
    results = {config: Result() for config in configs}
    with contextlib.ExitStack() as stack:
        clients: dict[Config, httpx.Client] = {}
        for config in configs:
            with _waiting(config.passive):  # the environment is read when the process starts
                server = stack.enter_context(LocalModelServer(threads=config.threads))
            http = stack.enter_context(httpx.Client(base_url=server.base_url, timeout=TOO_SLOW, trust_env=False))
            _reply(http, 4, 0)  # warm-up: the model paged in, the template's opening cached
            clients[config] = http
        number = 0
        for _ in range(repeats):
            for busy in loads:
                with _busy(busy):
                    for config, http in clients.items():
                        result = results[config]
                        if busy in result.gave_up:
                            continue
                        number += 1
                        try:
                            rate, first, _events = _reply(http, tokens, number)
                        except httpx.TimeoutException:
                            result.gave_up.add(busy)
                            continue
                        result.rates.setdefault(busy, []).append(rate)
                        result.firsts.setdefault(busy, []).append(first)
    return results


def _configs(cores: int) -> list[Config]:
    """(a) the server as it was (a thread per core, spinning) first, the default last."""
    before = Config(cores, passive=False)
    chosen = Config(default_threads(cores), passive=True)
    configs = [before]
    for threads in sorted({1, 2, cores, chosen.threads}):
        for passive in (False, True):
            config = Config(threads, passive)
            if config not in configs and config != chosen:
                configs.append(config)
    return configs + [chosen]


def _number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def run(options: Options, out: Callable[[str], None] = print) -> str:
    """Measure, print the table through ``out`` and return it."""
    title = "The local model's speed by threads and waiting, idle and beside busy processes"
    if not local_available():
        text = f"{title}\n  skipped: needs the [local] extra (pip install 'compass-jupyter[local]')."
        out(text)
        return text
    cores = _cores()
    loads = [0, 1] + ([cores] if cores > 1 else [])
    repeats = options.repeats(3, 1)
    tokens = QUICK_TOKENS if options.quick else TOKENS
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    configs = _configs(cores)
    results = _measure(configs, loads, repeats, tokens)

    reference = results[configs[0]].rate(1)
    columns = ["", "threads", "waiting", "idle tok/s", "first token s"]
    for busy in loads[1:]:
        columns += [f"{busy} busy tok/s", "×idle", f"{busy} busy first s"]
    columns.append("1 busy ×(a)")
    rows = []
    for i, config in enumerate(configs):
        result = results[config]
        idle = result.rate(0)
        name = f"({chr(ord('a') + i)})"
        if i == 0:
            name += " before"
        elif i == len(configs) - 1:
            name += " default"
        row = [name, str(config.threads), config.waiting, _number(idle), _number(result.first(0), 2)]
        for busy in loads[1:]:
            rate = result.rate(busy)
            shown = "timed out" if busy in result.gave_up and rate is None else _number(rate)
            row += [shown, ratio(rate, idle) if rate and idle else "–", _number(result.first(busy), 2)]
        busy_rate = result.rate(1)
        row.append(ratio(busy_rate, reference) if busy_rate and reference else "–")
        rows.append(row)
    load = "" if load_before is None else f" The load average was {load_before:.2f} when the run began."
    text = table(
        f"{title} ({tokens} tokens, median of {repeats})",
        columns,
        rows,
        [
            "tok/s: content events after the first over the time since the first; first token: from the request",
            "(a prompt of about 20 new tokens, evaluated one at a time). ×idle: against the same row idle.",
            f"busy: processes running `{BURNER}`, one core each, at the same priority; {cores} cores here.{load}",
            "spinning: OpenMP's default wait at the threads' barrier (the server before); passive: OMP_WAIT_POLICY=PASSIVE.",
            f"(a) is the server as it was (a thread per core, spinning); the default is {default_threads(cores)} "
            "thread(s), one core left free, passive.",
        ],
    )
    out(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    options, _ = parse_options(argv, "python -m benchmarks.local_model")
    print(environment(), end="\n\n")
    run(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
