"""What the engine costs on top of reading a stream: ``python -m benchmarks.streaming``.

A 5,000-token reply streams from the stand-in server (no delay between chunks,
in its own process) over loopback. Measured, in turns within each repeat:

(a) the reference: ``httpx.Client.stream`` + ``iter_lines()`` + ``json.loads``
    of each ``data:`` line, nothing else;
(b) ``Client.chat(...)``: SSE parsing (httpx-sse), accumulation into a Reply,
    latency bookkeeping;
(c) the same with an ``on_delta`` observer that does nothing (publishing deltas);
(d) the same reply not streamed (one JSON document);
and, to tell where (b)'s extra time goes, httpx-sse's parser alone with the
same ``json.loads`` as (a).

Wall time is what a person waits; client CPU (this process only: the server
runs elsewhere) is what the code costs. Medians of the repeats.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any, Callable, Sequence

import httpx
from httpx_sse import EventSource

from compass_jupyter import Client
from compass_jupyter.stream import Delta

from . import TOKENS, Options, StandInProcess, environment, median, parse_options, ratio, table

__all__ = ["run"]

MESSAGES = [{"role": "user", "content": "Write a long story."}]


def _raw_lines(http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    events = 0
    with http.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:"):
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                json.loads(payload)
                events += 1
    return events


def _raw_sse(http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str]) -> int:
    events = 0
    with http.stream("POST", url, json=body, headers=headers) as response:
        response.raise_for_status()
        for event in EventSource(response).iter_sse():
            if event.data == "[DONE]":
                break
            json.loads(event.data)
            events += 1
    return events


def _ignore(delta: Delta) -> None:
    pass


def run(options: Options, out: Callable[[str], None] = print) -> str:
    """Measure, print the table through ``out`` and return it."""
    repeats = options.repeats(default=20, quick=3)
    with (
        StandInProcess() as server,
        Client(base_url=server.base_url, api_key=server.key) as client,
        httpx.Client() as http,
    ):
        url, body, _ = client.prepare(MESSAGES)  # the reference sends exactly what Client.chat sends
        headers = {"api-key": server.key}

        def chat(**kwargs: Any) -> int:
            reply = client.chat(MESSAGES, **kwargs)
            if reply.usage is None or reply.usage.completion_tokens != TOKENS:
                raise RuntimeError(f"expected a {TOKENS}-token reply, got usage {reply.usage}")
            return len(reply.text)

        variants: list[tuple[str, Callable[[], int]]] = [
            ("(a) httpx iter_lines + json.loads (reference)", lambda: _raw_lines(http, url, body, headers)),
            ("(b) Client.chat, streamed", lambda: chat()),
            ("(c) Client.chat, streamed, no-op on_delta", lambda: chat(on_delta=_ignore)),
            ("(d) Client.chat, stream=False", lambda: chat(stream=False)),
            ("    for scale: httpx-sse + json.loads", lambda: _raw_sse(http, url, body, headers)),
        ]
        walls: dict[str, list[float]] = {name: [] for name, _ in variants}
        cpus: dict[str, list[float]] = {name: [] for name, _ in variants}
        # One unmeasured round warms connections, imports and caches; then the variants
        # take turns, so a slow moment of the machine spreads over all of them.
        for round_ in range(repeats + 1):
            for name, measure in variants:
                server.enqueue(tokens=TOKENS)
                gc.collect()
                wall, cpu = time.perf_counter(), time.process_time()
                measure()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if round_:
                    walls[name].append(wall)
                    cpus[name].append(cpu)

    ref_wall = median(walls[variants[0][0]])
    ref_cpu = median(cpus[variants[0][0]])
    rows = []
    for name, _ in variants:
        wall, cpu = median(walls[name]), median(cpus[name])
        rows.append(
            [
                name,
                f"{wall * 1000:.1f}",
                f"{TOKENS / wall:,.0f}",
                ratio(wall, ref_wall),
                f"{cpu * 1000:.1f}",
                f"{cpu / TOKENS * 1e6:.1f}",
                ratio(cpu, ref_cpu),
            ]
        )
    text = table(
        f"Streaming a {TOKENS:,}-token reply over loopback (median of {repeats})",
        ["variant", "wall ms", "tokens/s", "wall ×(a)", "CPU ms", "CPU µs/token", "CPU ×(a)"],
        rows,
        [
            "The stand-in server runs in its own process with no delay between chunks; CPU is this process only.",
            "(d) tokens/s is the reply's length over the time to receive it whole.",
        ],
    )
    out(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    options, _ = parse_options(argv, "python -m benchmarks.streaming")
    print(environment(), end="\n\n")
    run(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
