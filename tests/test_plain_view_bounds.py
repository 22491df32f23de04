"""The plain live view's traffic to the front end grows linearly with the reply.

A display update re-sends its whole value. Re-sending the whole text at every
coalesced update made the bytes grow with the square of the reply's length
(about 100 MB of iopub messages for a 100,000-token reply); the live output
now shows a long reply's tail, and the cell still ends with one final output
of the whole reply. These tests drive the views through their public observer
API with a synthetic reply and a simulated clock, and size every display
message as a kernel would send it (JSON, UTF-8) at IPython's display publisher.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from compass_jupyter.reply import Choice, Reply, Usage
from compass_jupyter.stream import Delta
from compass_jupyter.views.plain import LIVE_TAIL, PlainCompareView, PlainLiveView

# What the synthetic reply cycles through: prose, a list and fenced code, ~5 characters a token.
SAMPLE = """## Circles

A circle is the set of points at a fixed distance from a centre. Its **area** grows with
the square of the radius, and its *circumference* with the radius itself.

- the radius `r` is half the diameter
- the area is pi r squared

```python
import math

def area(r: float) -> float:
    return math.pi * r * r
```

"""
WORDS = SAMPLE.replace("\n", "\n ").split(" ")  # tokens that keep their newlines: "".join(...) == SAMPLE-ish


def tokens(count: int) -> Iterator[str]:
    for i in range(count):
        word = WORDS[i % len(WORDS)]
        yield word if word.endswith("\n") else word + " "


@dataclass
class Message:
    update: bool
    data: dict[str, Any]
    size: int


@dataclass
class Wire:
    """Every display message the view would send, sized as the kernel serializes it."""

    messages: list[Message] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(m.size for m in self.messages)

    @property
    def updates(self) -> list[Message]:
        return [m for m in self.messages if m.update]

    @property
    def final(self) -> dict[str, Any]:
        """The last new output: what nbval compares and a saved notebook shows last."""
        return [m for m in self.messages if not m.update][-1].data


class _Publisher(DisplayPublisher):
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
        size = len(json.dumps(content, ensure_ascii=False).encode("utf-8"))
        self.wire.messages.append(Message(update=update, data=data, size=size))


@pytest.fixture
def wire() -> Iterator[Wire]:
    shell = InteractiveShell.instance()
    recorded = Wire()
    saved = shell.display_pub
    shell.display_pub = _Publisher(recorded, shell)
    try:
        yield recorded
    finally:
        shell.display_pub = saved


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stream(count: int, *, pace: float, fmt: str = "markdown", check: bool = False) -> tuple[Reply, PlainLiveView]:
    """``count`` tokens through ``on_delta`` at ``pace`` tokens a second of the view's clock, then ``finish``."""
    clock = Clock()
    view = PlainLiveView(fmt=fmt, clock=clock)
    reply = Reply(model="gpt-4o", choices=[Choice()])
    for token in tokens(count):
        reply.choices[0].text += token
        view.on_delta(Delta(reply=reply, choice=0, text=token))
        clock.now += 1.0 / pace
    reply.choices[0].finish_reason = "stop"
    reply.usage = Usage(prompt_tokens=10, completion_tokens=count, total_tokens=10 + count)
    view.finish(reply)
    return reply, view


@pytest.mark.parametrize("pace", [100.0, 1000.0], ids=["100 tok/s", "1000 tok/s"])
def test_bytes_grow_linearly_with_the_reply(wire: Wire, pace: float) -> None:
    sent = {}
    for count in (4_000, 20_000):
        wire.messages.clear()
        reply, view = stream(count, pace=pace)
        assert view.renders > 10
        sent[count] = wire.bytes
        # ... and the cell still ends with the whole reply, once.
        assert reply.text in wire.final["text/plain"] and reply.text in wire.final["text/markdown"]
        assert "finish: stop" in wire.final["text/plain"]
    # 5x the tokens: ~5x the bytes when linear, ~25x when every update re-sends everything.
    growth = sent[20_000] / sent[4_000]
    assert growth < 8, f"20k tokens sent {growth:.1f}x the bytes of 4k: {sent}"


def test_every_live_update_is_bounded_and_shows_the_end(wire: Wire) -> None:
    reply, view = stream(20_000, pace=100.0)
    text = reply.text
    assert len(text) > 20 * LIVE_TAIL
    *live, emptied = wire.updates
    assert emptied.data == {"text/plain": ""}  # the live output ends empty ...
    assert len(live) == view.renders
    largest = max(m.size for m in live)
    assert largest < 3 * LIVE_TAIL + 2_000, largest  # markdown + plain tails, JSON and a status line
    assert largest < len(text) / 10
    # The live output moves: each update shows the end of the text received so far,
    # under a note of what is above, and the status counts all of it.
    received = [int(m.data["text/markdown"].rsplit("· ", 1)[1].split()[0]) for m in live]
    assert received == sorted(received) and received[-1] > len(text) * 0.99
    last = live[-1].data
    shown = last["text/plain"]
    assert shown.startswith("… (") and "characters above)" in shown.split("\n", 1)[0]
    assert text[: received[-1]].endswith(shown.split("\n\n", 1)[1])
    assert "characters above)*" in last["text/markdown"]
    # A new output holds the whole reply: the one nbval compares.
    assert wire.final["text/plain"].startswith(text)


def test_short_replies_show_everything_live(wire: Wire) -> None:
    reply, _ = stream(300, pace=100.0)
    assert len(reply.text) < LIVE_TAIL
    live = wire.updates[:-1]
    assert live and all("characters above" not in m.data["text/markdown"] for m in live)
    assert live[-1].data["text/plain"] == reply.text[: len(live[-1].data["text/plain"])]


def test_a_code_block_cut_by_the_tail_is_opened_again(wire: Wire) -> None:
    clock = Clock()
    view = PlainLiveView(clock=clock)
    reply = Reply(model="m", choices=[Choice(text="Here:\n\n```python\n")])
    for i in range(2_000):
        reply.choices[0].text += f"x_{i} = {i}\n"
        view.on_delta(Delta(reply=reply, choice=0, text="."))
        clock.now += 0.01
    markdown = wire.updates[-1].data["text/markdown"]
    note, rest = markdown.split("\n\n", 1)
    assert note.startswith("*… (") and rest.startswith("```python\nx_")  # code, not prose, below the cut
    reply.choices[0].text += "```\n\nDone.\n"
    for _ in range(400):  # past the closing fence: the tail is prose again, no fence reopened
        reply.choices[0].text += "And more prose.\n"
        view.on_delta(Delta(reply=reply, choice=0, text="."))
        clock.now += 0.01
    assert wire.updates[-1].data["text/markdown"].split("\n\n", 1)[1].startswith("And more prose.")


def test_compare_view_bytes_grow_linearly(wire: Wire) -> None:
    sent = {}
    for count in (2_000, 10_000):
        wire.messages.clear()
        clock = Clock()
        view = PlainCompareView(["a", "b"], clock=clock)
        observers = {model: view.observer(model) for model in view.models}
        replies = {name: Reply(model=name, choices=[Choice()]) for name in observers}
        for token in tokens(count):
            for name, observer in observers.items():
                replies[name].choices[0].text += token
                observer.on_delta(Delta(reply=replies[name], choice=0, text=token))
            view.poll()
            clock.now += 0.01
        view.finish(list(replies.values()))
        sent[count] = wire.bytes
        assert all(r.text in wire.final["text/plain"] for r in replies.values())
    assert sent[10_000] / sent[2_000] < 8, sent
