"""What the engine costs on top of reading a stream: ``python -m benchmarks.streaming``.

Replies of 5,000, 20,000 and 100,000 tokens stream from the stand-in server
(no delay between chunks, in its own process) over loopback. Read, in turns
within each repeat:

(a) the floor: ``httpx.Client.stream`` + ``iter_lines()`` + ``json.loads``
    of each ``data:`` line, nothing else;
(b) the official ``openai`` SDK (``OpenAI(base_url=<server>/v1)``,
    ``chat.completions.create(stream=True)``), joining ``delta.content`` as a
    caller does: a second reference, what people would use instead (skipped,
    with a note, when ``openai`` is not installed: ``pip install -e '.[bench]'``);
(c) ``Client.chat(...)``: SSE parsing (``compass_jupyter.sse`` over
    ``iter_lines``), accumulation into a Reply, latency bookkeeping.

All three send the request body ``Client.prepare`` builds. The first table
compares them per length: throughput against the floor (floor time / time,
so ×1.00 is as fast as the floor) and CPU per token. The second splits (c) at
5,000 tokens: with an ``on_delta`` observer that does nothing, not streamed,
and the client's SSE reader (``compass_jupyter.sse.iter_data``) alone with the
same ``json.loads`` as (a).

Wall time is what a person waits; client CPU (``time.process_time`` of this
process only: the server runs in another one) is what the code costs. Medians
of the repeats.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any, Callable, Sequence

import httpx

from compass_jupyter import Client
from compass_jupyter.sse import iter_data
from compass_jupyter.stream import Delta

from . import Options, StandInProcess, environment, median, parse_options, ratio, table

__all__ = ["run"]

MESSAGES = [{"role": "user", "content": "Write a long story."}]
SIZES = (5_000, 20_000, 100_000)  # tokens per reply
# Repeats per size (default, --quick): fewer for the long replies, whose runs take
# seconds each (the openai SDK reads 100,000 tokens in ~10 s), so that everything
# stays within about a minute and a half. --quick leaves out 100,000.
REPEATS = {5_000: (9, 3), 20_000: (5, 1), 100_000: (3, 0)}

FLOOR = "(a) floor: httpx iter_lines + json.loads"
SDK = "(b) openai SDK"
CHAT = "(c) Client.chat"
DETAIL_SIZE = SIZES[0]
DETAILS = [
    "    Client.chat, no-op on_delta",
    "    Client.chat, stream=False",
    "    the client's SSE reader + json.loads",
]


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
        for data in iter_data(response.iter_lines()):
            if data == "[DONE]":
                break
            json.loads(data)
            events += 1
    return events


def _ignore(delta: Delta) -> None:
    pass


def _openai_sdk(base_url: str, key: str) -> tuple[Any, str]:
    """An ``openai.OpenAI`` client for the stand-in's OpenAI-style route, or None and why not."""
    try:
        import openai
    except ImportError:
        return None, "(b) skipped: the openai package is not installed (pip install -e '.[bench]'; ./dev bench does)."
    sdk = openai.OpenAI(
        base_url=f"{base_url}/v1",
        api_key=key,
        # The SDK sends the key as "Authorization: Bearer ..."; Compass (and its
        # stand-in) read the api-key header.
        default_headers={"api-key": key},
        max_retries=0,
    )
    return sdk, f"(b) is openai {openai.__version__}, reading POST <server>/v1/chat/completions."


def _sdk_read(sdk: Any, body: dict[str, Any], tokens: int) -> int:
    """Read a streamed reply as an SDK user does: the text joined from each chunk's delta."""
    parts: list[str] = []
    usage = None
    for chunk in sdk.chat.completions.create(**body):
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage = chunk.usage
    if usage is None or usage.completion_tokens != tokens:
        raise RuntimeError(f"expected a {tokens}-token reply, the openai SDK got usage {usage}")
    return len("".join(parts))


def _repeats(options: Options, size: int) -> int:
    default, quick = REPEATS[size]
    if options.repeat is not None:
        return options.repeat
    return quick if options.quick else default


def run(options: Options, out: Callable[[str], None] = print) -> str:
    """Measure, print the tables through ``out`` and return them."""
    sizes = [size for size in SIZES if _repeats(options, size) > 0]
    walls: dict[tuple[int, str], list[float]] = {}
    cpus: dict[tuple[int, str], list[float]] = {}
    with (
        StandInProcess() as server,
        Client(base_url=server.base_url, api_key=server.key) as client,
        httpx.Client() as http,
    ):
        url, body, _ = client.prepare(MESSAGES)  # every reader sends exactly what Client.chat sends
        headers = {"api-key": server.key}
        sdk, sdk_note = _openai_sdk(server.base_url, server.key)

        def chat(tokens: int, **kwargs: Any) -> int:
            reply = client.chat(MESSAGES, **kwargs)
            if reply.usage is None or reply.usage.completion_tokens != tokens:
                raise RuntimeError(f"expected a {tokens}-token reply, got usage {reply.usage}")
            return len(reply.text)

        def variants(tokens: int) -> list[tuple[str, Callable[[], Any]]]:
            chosen: list[tuple[str, Callable[[], Any]]] = [(FLOOR, lambda: _raw_lines(http, url, body, headers))]
            if sdk is not None:
                chosen.append((SDK, lambda: _sdk_read(sdk, body, tokens)))
            chosen.append((CHAT, lambda: chat(tokens)))
            if tokens == DETAIL_SIZE:
                chosen += [
                    (DETAILS[0], lambda: chat(tokens, on_delta=_ignore)),
                    (DETAILS[1], lambda: chat(tokens, stream=False)),
                    (DETAILS[2], lambda: _raw_sse(http, url, body, headers)),
                ]
            return chosen

        try:
            for size in sizes:
                # One unmeasured round (at the first size) warms connections, imports and
                # caches; then the readers take turns, so a slow moment of the machine
                # spreads over all of them.
                rounds = _repeats(options, size) + (size == sizes[0])
                for round_ in range(rounds):
                    for name, measure in variants(size):
                        server.enqueue(tokens=size)
                        gc.collect()
                        wall, cpu = time.perf_counter(), time.process_time()
                        measure()
                        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                        if round_ or size != sizes[0]:
                            walls.setdefault((size, name), []).append(wall)
                            cpus.setdefault((size, name), []).append(cpu)
        finally:
            if sdk is not None:
                sdk.close()

    def wall_of(size: int, name: str) -> float | None:
        return median(walls[(size, name)]) if (size, name) in walls else None

    def cpu_of(size: int, name: str) -> float | None:
        return median(cpus[(size, name)]) if (size, name) in cpus else None

    def ms(value: float | None) -> str:
        return "–" if value is None else f"{value * 1000:,.0f}"

    def per_token(value: float | None, size: int) -> str:
        return "–" if value is None else f"{value / size * 1e6:.1f}"

    def faster(reference: float | None, value: float | None) -> str:
        return "–" if reference is None or value is None else ratio(reference, value)

    rows = []
    for size in sizes:
        floor, sdk_wall, chat_wall = (wall_of(size, name) for name in (FLOOR, SDK, CHAT))
        rows.append(
            [
                f"{size:,}",
                str(len(walls[(size, FLOOR)])),
                ms(floor),
                ms(sdk_wall),
                ms(chat_wall),
                faster(floor, sdk_wall),
                faster(floor, chat_wall),
                per_token(cpu_of(size, FLOOR), size),
                per_token(cpu_of(size, SDK), size),
                per_token(cpu_of(size, CHAT), size),
            ]
        )
    main_table = table(
        "Reading a streamed reply over loopback: the openai SDK and Client.chat against a floor (medians)",
        [
            "tokens",
            "runs",
            "(a) floor ms",
            "(b) openai ms",
            "(c) chat ms",
            "(b) thr ×(a)",
            "(c) thr ×(a)",
            "(a) CPU µs/tok",
            "(b) CPU µs/tok",
            "(c) CPU µs/tok",
        ],
        rows,
        [
            "(a) httpx iter_lines + json.loads of each data: line; (b) the openai SDK, joining delta.content;",
            "(c) Client.chat. thr ×(a): throughput against the floor, (a) time / time (×1.00 = as fast as the floor).",
            "CPU: time.process_time of this process only; the stand-in server runs in its own process, with no",
            "delay between chunks, and (a)'s wall time is mostly waiting for it to send (wall minus CPU).",
            sdk_note,
        ],
    )
    out(main_table)
    tables = [main_table]

    if DETAIL_SIZE in sizes:
        names = [FLOOR, CHAT, *DETAILS]
        ref_wall, ref_cpu = wall_of(DETAIL_SIZE, FLOOR), cpu_of(DETAIL_SIZE, FLOOR)
        detail_rows = []
        for name in names:
            wall, cpu = wall_of(DETAIL_SIZE, name), cpu_of(DETAIL_SIZE, name)
            assert wall is not None and cpu is not None and ref_wall is not None and ref_cpu is not None
            detail_rows.append(
                [
                    name,
                    f"{wall * 1000:.1f}",
                    f"{DETAIL_SIZE / wall:,.0f}",
                    ratio(wall, ref_wall),
                    f"{cpu * 1000:.1f}",
                    f"{cpu / DETAIL_SIZE * 1e6:.1f}",
                    ratio(cpu, ref_cpu),
                ]
            )
        out("")
        tables.append(
            table(
                f"Where Client.chat's time goes: a {DETAIL_SIZE:,}-token reply "
                f"(median of {len(walls[(DETAIL_SIZE, FLOOR)])})",
                ["variant", "wall ms", "tokens/s", "wall ×(a)", "CPU ms", "CPU µs/token", "CPU ×(a)"],
                detail_rows,
                ["stream=False: tokens/s is the reply's length over the time to receive it whole."],
            )
        )
        out(tables[-1])
    return "\n\n".join(tables)


def main(argv: Sequence[str] | None = None) -> int:
    options, _ = parse_options(argv, "python -m benchmarks.streaming")
    print(environment(), end="\n\n")
    run(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
