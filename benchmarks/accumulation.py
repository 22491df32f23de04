"""How reading a reply grows with its length: ``python -m benchmarks.accumulation``.

The SSE payloads of a reply of N tokens are made in memory first, then fed to
the parser (``EventReader`` + ``Accumulator``, no socket), so only the package's
own work is timed. Two references are measured in the same run at each size:

- ``json.loads`` of every payload, the least any reader must do;
- the old way of growing a text, ``text += piece`` on an attribute, which copies
  the whole text at each token (quadratic).

Memory is what a finished Reply retains (tracemalloc, after a collection), as a
multiple of its text's length; ``keep_raw=True`` (every chunk kept) is shown for
scale. CPU is this process's time; medians of the repeats.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc
from typing import Callable, Sequence

from compass_jupyter.reply import Reply
from compass_jupyter.stream import Accumulator, EventReader

from . import Options, environment, median, parse_options, ratio, table

__all__ = ["run"]

SIZES = (5_000, 20_000, 100_000, 200_000)
QUICK_SIZES = (5_000, 20_000, 100_000)


def payloads(tokens: int) -> list[str]:
    """A streamed reply as a server sends it: one chunk per token, then usage and the end."""
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", "choices": []}
    out = []
    for i in range(tokens):
        chunk["choices"] = [{"index": 0, "delta": {"content": f"w{i % 97} "}, "finish_reason": None}]
        out.append(json.dumps(chunk))
    chunk["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    out.append(json.dumps(chunk))
    usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5}
    out.append(json.dumps({**chunk, "choices": [], "usage": usage}))
    return out


def read(events: list[str], *, keep_raw: bool = False) -> Reply:
    reply = Reply(model="gpt-4o", request={"model": "gpt-4o", "stream": True})
    reader = EventReader(Accumulator(reply, keep_raw=keep_raw))
    for payload in events:
        reader.data(payload)
    reader.data("[DONE]")
    reader.end()
    return reader.accumulator.finish()


def json_only(events: list[str]) -> None:
    for payload in events:
        json.loads(payload)


class _OldChoice:
    text = ""


def old_concatenation(events: list[str]) -> None:
    """json.loads plus ``choice.text += piece``: how the text grew before it was a list of pieces."""
    choice = _OldChoice()
    for payload in events:
        chunk = json.loads(payload)
        for item in chunk["choices"]:
            piece = item["delta"].get("content")
            if piece:
                choice.text += piece


def _cpu(measure: Callable[[], object]) -> float:
    gc.collect()
    started = time.process_time()
    measure()
    return time.process_time() - started


def _retained(events: list[str], *, keep_raw: bool) -> tuple[int, int]:
    gc.collect()
    tracemalloc.start()
    reply = read(events, keep_raw=keep_raw)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size, len(reply.text)


def run(options: Options, out: Callable[[str], None] = print) -> str:
    sizes = QUICK_SIZES if options.quick else SIZES
    repeats = options.repeats(default=5, quick=2)
    rows = []
    previous: float | None = None
    for tokens in sizes:
        events = payloads(tokens)
        parser = median([_cpu(lambda e=events: read(e)) for _ in range(repeats)])
        floor = median([_cpu(lambda e=events: json_only(e)) for _ in range(repeats)])
        # The quadratic reference gets one run at the big sizes: it is the slow row by design.
        old = median([_cpu(lambda e=events: old_concatenation(e)) for _ in range(1 if tokens > 20_000 else repeats)])
        kept, text_length = _retained(events, keep_raw=False)
        raw, _ = _retained(events, keep_raw=True)
        rows.append(
            [
                f"{tokens:,}",
                f"{parser * 1000:,.0f}",
                "–" if previous is None else ratio(parser, previous),
                f"{parser / tokens * 1e6:.1f}",
                ratio(parser, floor),
                f"{old * 1000:,.0f}",
                f"{text_length / 1000:,.0f}",
                f"{kept / text_length:.1f}",
                f"{raw / text_length:.0f}",
            ]
        )
        previous = parser
    text = table(
        f"Reading a streamed reply, by length (parser only, no socket; CPU, median of {repeats})",
        [
            "tokens",
            "parser ms",
            "×prev size",
            "µs/token",
            "×json.loads",
            "old text += ms",
            "text KB",
            "Reply ×text",
            "keep_raw ×text",
        ],
        rows,
        [
            "×prev size: the parser's time against the size before; linear growth reads ×4 then ×5 (then ×2).",
            "old text += : json.loads plus growing the text by concatenation on an attribute, as before.",
            "Reply ×text: memory a finished Reply retains over its text's length; keep_raw keeps every chunk.",
        ],
    )
    out(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    options, _ = parse_options(argv, "python -m benchmarks.accumulation")
    print(environment(), end="\n\n")
    run(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
