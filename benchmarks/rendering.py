"""What showing a streamed reply sends to the front end: ``python -m benchmarks.rendering``.

No browser is involved: what a kernel would send is recorded where it leaves
the kernel. Displays go to an IPython ``InteractiveShell`` whose display
publisher counts each message; widget messages go to a comm made through the
``comm`` package's extension point (``comm.create_comm``), as ipykernel's are.
Each message is sized as the kernel would serialize its content (JSON, UTF-8;
the header frames, about 0.5 KB a message, are not counted).

The reply streams from the stand-in server (its own process) over loopback
into ``Client.chat(on_delta=view.on_delta)``; its text cycles through a
markdown sample (headings, lists, code), 5,000 tokens, 25 KB. Views:

(a) the reference: a naive view that re-displays the whole markdown on every
    token (``DisplayHandle.update(Markdown(text))``), as a first
    implementation does;
(b) ``PlainLiveView``: markdown outputs, updates coalesced to at most one per
    50 ms;
(c) ``LiveReplyView`` (widgets): settled blocks sent once, a short tail
    re-sent, updates coalesced to one per 45 ms.

The coalescing is by time, so the numbers depend on how fast tokens arrive:
one table at loopback speed (real clock), and tables at model-like paces where
the views' clock advances by 1/rate per delta (the stream itself still comes
over loopback). Peak rates are over the 3-second window Jupyter Server uses
for its iopub rate limit. CPU is the thread time spent inside the view
(creating it, ``on_delta``, ``finish``), including serializing the messages
as a kernel would.

A last table streams replies of 5,000, 20,000 and 100,000 tokens into
``PlainLiveView`` at 100 tokens/s (simulated clock): its bytes and messages
must grow linearly with the length (×4, then ×5), not with its square
(×16, then ×25), as they did when every update re-sent the whole text.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import comm
from comm.base_comm import BaseComm
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import DisplayHandle, Markdown, display
from traitlets.config import Config

from compass_jupyter import Client
from compass_jupyter.reply import Reply
from compass_jupyter.stream import Delta
from compass_jupyter.views.plain import PlainLiveView
from compass_jupyter.views.widget import LiveReplyView

from . import TOKENS, Options, StandInProcess, environment, median, parse_options, ratio, table

__all__ = ["run"]

MESSAGES = [{"role": "user", "content": "Explain circles, with code."}]

# What the streamed reply cycles through: the markdown a chat model typically writes.
SAMPLE = """## Circles

A circle is the set of points at a fixed distance from a centre. Its **area** grows with the
square of the radius, and its *circumference* with the radius itself; see `math.pi`.

- the radius `r` is half the diameter
- the area is π r², the circumference 2 π r
- every chord through the centre is a diameter

```python
import math

def area(r: float) -> float:
    return math.pi * r * r
```

| radius | area |
|---:|---:|
| 1 | 3.14 |
| 2 | 12.57 |

"""

WINDOW = 3.0  # seconds: Jupyter Server's rate_limit_window
MSG_LIMIT = 1000  # messages/s: Jupyter Server's iopub_msg_rate_limit (bytes are limited for stream output only)
UNCOUNTED = {"comm_open"}  # messages Jupyter Server leaves out of the rate limit

# PlainLiveView by reply length: tokens per reply, at this pace (a typical hosted model).
# At a simulated clock its messages and bytes depend on the stream alone, so one run each.
LENGTHS = (5_000, 20_000, 100_000)
LENGTHS_QUICK = (5_000, 20_000)
LENGTH_PACE = 100.0

# (label, tokens per second of the views' clock; None: the real clock at loopback speed)
PACES: list[tuple[str, float | None]] = [
    ("at loopback speed (real clock)", None),
    ("at 1,000 tokens/s (a fast model; simulated clock)", 1000.0),
    ("at 100 tokens/s (a typical hosted model; simulated clock)", 100.0),
]


COLUMNS = [
    "view",
    "renders",
    "msgs",
    "msgs ×(a)",
    "peak msg/s",
    "MB",
    "MB ×(a)",
    "peak MB/s",
    "max KB",
    "CPU ms",
    "start+end",
    "µs/token",
    "CPU ×(a)",
]
NOTES = [
    "(a) re-displays the whole markdown on every token; (b) PlainLiveView; (c) LiveReplyView (widgets).",
    "msgs: display and comm messages; MB: their content as a kernel serializes it; max KB: the largest one.",
    f"peak: the most in any {WINDOW:.0f} s window, per second; '!' marks more than Jupyter Server's "
    f"{MSG_LIMIT:,} msg/s iopub limit, past which it drops output (its byte limit counts only stdout/stderr).",
    "CPU: thread time inside the view; start+end: the part spent creating it and in finish().",
]


class SimClock:
    """A clock that moves only when a delta arrives: a pace without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Wire:
    """Every message that would leave the kernel: (time, kind, bytes)."""

    clock: Callable[[], float]
    messages: list[tuple[float, str, int]] = field(default_factory=list)
    recording: bool = True

    def record(self, kind: str, content: dict[str, Any], buffers: Sequence[Any] | None = None) -> None:
        if not self.recording:
            return
        size = len(json.dumps(content, ensure_ascii=False, default=str).encode("utf-8"))
        size += sum(len(memoryview(b).cast("B")) for b in buffers or ())
        self.messages.append((self.clock(), kind, size))

    def peak_per_second(self, weight: Callable[[str, int], float]) -> float:
        """The highest sum of ``weight`` over any window of WINDOW seconds, per second."""
        best = total = 0.0
        start = 0
        for when, kind, size in self.messages:
            total += weight(kind, size)
            while self.messages[start][0] <= when - WINDOW:
                _, old_kind, old_size = self.messages[start]
                total -= weight(old_kind, old_size)
                start += 1
            best = max(best, total)
        return best / WINDOW


class _Publisher(DisplayPublisher):
    """Displays sized as ipykernel would send them, instead of printed."""

    def __init__(self, wire: Wire, shell: InteractiveShell) -> None:
        super().__init__(shell=shell)
        self.wire = wire

    def publish(
        self,
        data: Any,
        metadata: Any = None,
        source: Any = None,
        *,
        transient: Any = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        self.wire.record("update_display_data" if update else "display_data", content)

    def clear_output(self, wait: bool = False) -> None:
        self.wire.record("clear_output", {"wait": wait})


@contextlib.contextmanager
def front_end(wire: Wire) -> Iterator[None]:
    """Route displays and new widgets' comms to ``wire`` for the duration."""
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)

    class RecordingComm(BaseComm):
        def publish_msg(
            self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
        ) -> None:
            wire.record(msg_type, {"data": data, "comm_id": self.comm_id, **keys}, buffers)

    saved_pub, saved_create = shell.display_pub, comm.create_comm
    shell.display_pub = _Publisher(wire, shell)
    comm.create_comm = lambda *args, **kwargs: RecordingComm(*args, **kwargs)
    try:
        yield
    finally:
        wire.recording = False  # widgets made here may still send (closing on exit): not this run's
        shell.display_pub = saved_pub
        comm.create_comm = saved_create


class NaiveView:
    """The reference: what a simple implementation does, one full update per token."""

    def __init__(self) -> None:
        self.handle: DisplayHandle | None = None
        self.renders = 0

    def on_delta(self, delta: Delta) -> None:
        if not delta.text:
            return
        if self.handle is None:
            self.handle = display(Markdown(delta.reply.text), display_id=True)
        else:
            self.handle.update(Markdown(delta.reply.text))
        self.renders += 1

    def finish(self, reply: Reply) -> None:
        if self.handle is not None:
            self.handle.update(Markdown(reply.text))


@dataclass
class Result:
    renders: int
    messages: int
    total_bytes: int
    largest: int
    peak_msgs: float
    peak_bytes: float
    cpu: float  # all of it: creating the view, every on_delta, finish
    cpu_edges: float  # creating the view and finish only
    reply_bytes: int = 0  # the reply's text, UTF-8


MakeView = Callable[[Callable[[], float] | None], Any]  # the views' clock (None: their own) -> a view


def _measure(
    make_view: MakeView, pace: float | None, server: StandInProcess, client: Client, tokens: int = TOKENS
) -> Result:
    clock = SimClock() if pace else None
    wire = Wire(clock=clock or time.perf_counter)
    step = 1.0 / pace if pace else 0.0
    cpu = edges = 0.0
    server.enqueue(tokens=tokens, text=SAMPLE)
    gc.collect()
    with front_end(wire):
        started = time.thread_time()
        view = make_view(clock)
        edges += time.thread_time() - started

        def observe(delta: Delta) -> None:
            nonlocal cpu
            if clock is not None:
                clock.now += step
            started = time.thread_time()
            view.on_delta(delta)
            cpu += time.thread_time() - started

        reply = client.chat(MESSAGES, on_delta=observe)
        started = time.thread_time()
        view.finish(reply)
        edges += time.thread_time() - started
    if reply.usage is None or reply.usage.completion_tokens != tokens:
        raise RuntimeError(f"expected a {tokens}-token reply, got usage {reply.usage}")
    sizes = [size for _, _, size in wire.messages]
    return Result(
        renders=view.renders,
        messages=len(wire.messages),
        total_bytes=sum(sizes),
        largest=max(sizes, default=0),
        peak_msgs=wire.peak_per_second(lambda kind, size: 0 if kind in UNCOUNTED else 1),
        peak_bytes=wire.peak_per_second(lambda kind, size: size),
        cpu=cpu + edges,
        cpu_edges=edges,
        reply_bytes=len(reply.text.encode("utf-8")),
    )


def _plain(clock: Callable[[], float] | None) -> PlainLiveView:
    return PlainLiveView() if clock is None else PlainLiveView(clock=clock)


def _widget(clock: Callable[[], float] | None) -> LiveReplyView:
    return LiveReplyView() if clock is None else LiveReplyView(clock=clock)


VIEWS: list[tuple[str, MakeView]] = [
    ("(a) naive (reference)", lambda clock: NaiveView()),
    ("(b) PlainLiveView", _plain),
    ("(c) LiveReplyView", _widget),
]


def _median_result(results: list[Result]) -> Result:
    return Result(
        renders=round(median([r.renders for r in results])),
        messages=round(median([r.messages for r in results])),
        total_bytes=round(median([r.total_bytes for r in results])),
        largest=round(median([r.largest for r in results])),
        peak_msgs=median([r.peak_msgs for r in results]),
        peak_bytes=median([r.peak_bytes for r in results]),
        cpu=median([r.cpu for r in results]),
        cpu_edges=median([r.cpu_edges for r in results]),
        reply_bytes=results[0].reply_bytes,
    )


def run(options: Options, out: Callable[[str], None] = print) -> str:
    """Measure, print one table per pace through ``out`` and return them."""
    repeats = options.repeats(default=3, quick=1)
    lengths = LENGTHS_QUICK if options.quick else LENGTHS
    results: dict[tuple[int, int], list[Result]] = {}
    with StandInProcess() as server, Client(base_url=server.base_url, api_key=server.key) as client:
        # An unmeasured round warms imports, the markdown renderer and the connection.
        _measure(_widget, None, server, client)
        for _ in range(repeats):
            for p, (_, pace) in enumerate(PACES):
                for v, (_, make_view) in enumerate(VIEWS):
                    results.setdefault((p, v), []).append(_measure(make_view, pace, server, client))
        by_length = [_measure(_plain, LENGTH_PACE, server, client, tokens) for tokens in lengths]

    tables = []
    for p, (label, _pace) in enumerate(PACES):
        medians = [_median_result(results[(p, v)]) for v in range(len(VIEWS))]
        ref = medians[0]
        rows = []
        for (name, _), r in zip(VIEWS, medians):
            rows.append(
                [
                    name,
                    f"{r.renders:,}",
                    f"{r.messages:,}",
                    ratio(r.messages, ref.messages),
                    f"{r.peak_msgs:,.0f}" + (" !" if r.peak_msgs > MSG_LIMIT else ""),
                    f"{r.total_bytes / 1e6:,.2f}",
                    ratio(r.total_bytes, ref.total_bytes),
                    f"{r.peak_bytes / 1e6:,.2f}",
                    f"{r.largest / 1e3:,.1f}",
                    f"{r.cpu * 1000:,.0f}",
                    f"{r.cpu_edges * 1000:,.0f}",
                    f"{r.cpu / TOKENS * 1e6:,.1f}",
                    ratio(r.cpu, ref.cpu),
                ]
            )
        tables.append(
            table(
                f"Showing a {TOKENS:,}-token stream {label}, median of {repeats}",
                COLUMNS,
                rows,
                NOTES if p == len(PACES) - 1 else [],
            )
        )
        out(tables[-1])
        out("")
    tables.append(_length_table(lengths, by_length))
    out(tables[-1])
    out("")
    return "\n\n".join(tables)


def _length_table(lengths: Sequence[int], results: Sequence[Result]) -> str:
    """PlainLiveView's traffic by reply length: linear growth shows as ×4 then ×5."""
    rows = []
    previous: Result | None = None
    for tokens, r in zip(lengths, results):
        rows.append(
            [
                f"{tokens:,}",
                f"{r.reply_bytes / 1e3:,.0f}",
                f"{r.renders:,}",
                f"{r.messages:,}",
                "–" if previous is None else ratio(r.messages, previous.messages),
                f"{r.total_bytes / 1e6:,.2f}",
                "–" if previous is None else ratio(r.total_bytes, previous.total_bytes),
                f"{r.total_bytes / r.reply_bytes:,.0f}",
                f"{r.largest / 1e3:,.1f}",
                f"{r.peak_bytes / 1e6:,.2f}",
                f"{r.cpu * 1000:,.0f}",
                f"{r.cpu / tokens * 1e6:,.1f}",
            ]
        )
        previous = r
    return table(
        f"PlainLiveView by reply length at {LENGTH_PACE:,.0f} tokens/s (simulated clock; one run each: counts, not timings)",
        [
            "tokens",
            "reply KB",
            "renders",
            "msgs",
            "msgs ×prev",
            "MB",
            "MB ×prev",
            "MB/reply MB",
            "max KB",
            "peak MB/s",
            "CPU ms",
            "µs/token",
        ],
        rows,
        [
            "×prev: against the row above. Linear growth is ×4 (5k -> 20k) then ×5 (20k -> 100k); re-sending the",
            "whole text at every update, as PlainLiveView did before its live output showed only a tail, is ×16 then ×25.",
            "max KB: the final output, which has the whole reply; live updates stay under ~7 KB.",
        ],
    )


def main(argv: Sequence[str] | None = None) -> int:
    options, _ = parse_options(argv, "python -m benchmarks.rendering")
    print(environment(), end="\n\n")
    run(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
