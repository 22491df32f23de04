"""The live widget views, driven by real replies from the stand-in server.

The widgets' messages are recorded through the ``comm`` package's documented
extension point (``comm.create_comm``), which is what a front end would
receive; displays are captured from a real IPython shell. A last test runs a
5,000-token stream in a real kernel and counts the iopub traffic it caused.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from html import unescape
from typing import Any, Iterator

import comm
import pytest
from comm.base_comm import BaseComm
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from compass_jupyter.client import Client
from compass_jupyter.conversation import Session
from compass_jupyter.rendering import markup as h
from compass_jupyter.rendering.compare import compare_note
from compass_jupyter.reply import Choice, Reply
from compass_jupyter.stream import Delta
from compass_jupyter.testing import Scenario, StandInServer
from compass_jupyter.views.text_panel import wrap as _wrap
from compass_jupyter.views.widget import CompareView, LiveReplyView, widgets_available

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
ASK = [{"role": "user", "content": "Plan a trip"}]


@dataclass
class Wire:
    """Every comm message the widgets sent: (kind, bytes of its JSON data)."""

    messages: list[tuple[str, int]] = field(default_factory=list)

    def updates(self) -> list[int]:
        return [size for kind, size in self.messages if kind == "comm_msg"]

    def clear(self) -> None:
        self.messages.clear()


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    record = Wire()

    class RecordingComm(BaseComm):
        def publish_msg(
            self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None, **keys: Any
        ) -> None:
            record.messages.append((msg_type, len(json.dumps(data, default=str))))

    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(*a, **k))
    return record


@pytest.fixture
def shell() -> InteractiveShell:
    return InteractiveShell.instance()


@pytest.fixture(autouse=True)
def quiet_displays(shell: InteractiveShell) -> Iterator[None]:
    """Displays go to a capturing shell, not to the terminal (tests capture again where they look)."""
    with capture_output(stdout=False, stderr=False):
        yield


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer() as running:
        yield running


@pytest.fixture
def client(server: StandInServer) -> Client:
    return Client(base_url=server.base_url, api_key=server.key)


class Clock:
    """A clock that moves only when told: throttling becomes deterministic."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def stepping(view: LiveReplyView, clock: Clock, seconds: float) -> Any:
    """``view.on_delta`` on a stream whose deltas arrive ``seconds`` apart."""

    def observe(delta: Delta) -> None:
        clock.now += seconds
        view.on_delta(delta)

    return observe


def plain(html_value: str) -> str:
    """What a reader sees of some HTML: the text without tags."""
    return unescape(re.sub(r"<[^>]+>", "", html_value))


def shown_text(view: LiveReplyView, index: int = 0) -> str:
    """The HTML the front end holds for a choice's text (settled blocks and tail)."""
    panel = view._choices[index].text
    return "".join(w.value for w in panel.box.children)


def outputs(messages: list[Any]) -> list[dict[str, Any]]:
    """Captured display messages with updates applied, as a front end (or nbclient) keeps them."""
    kept: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    for message in messages:
        display_id = (message.transient or {}).get("display_id")
        if message.update:
            by_id[display_id]["data"] = message.data
            continue
        out = {"data": message.data}
        kept.append(out)
        if display_id:
            by_id[display_id] = out
    return [o["data"] for o in kept]


# --------------------------------------------------------------------------- streaming


def test_renders_are_coalesced_to_the_interval(client: Client, server: StandInServer, wire: Wire) -> None:
    server.enqueue(Scenario(tokens=400))
    clock = Clock()
    view = LiveReplyView(clock=clock, interval=0.045)
    reply = client.chat(ASK, on_delta=stepping(view, clock, 0.005))  # 200 tokens a second
    # 400 tokens over 2 s of (pretend) time: about 2 / 0.045 renders, not 400.
    assert 35 <= view.renders <= 50, view.renders
    view.finish(reply)
    assert h.markdown_html(reply.text) in shown_text(view)


def test_first_delta_renders_at_once(client: Client, server: StandInServer, wire: Wire) -> None:
    server.enqueue(Scenario(text="Hello there"))
    clock = Clock()
    view = LiveReplyView(clock=clock)
    seen: list[str] = []

    def observe(delta: Delta) -> None:
        view.on_delta(delta)
        seen.append(shown_text(view) if view._choices else "")

    client.chat(ASK, on_delta=observe)
    assert "Hello" in next(s for s in seen if s), "the first token must not wait for the interval"


def test_a_long_stream_resends_only_its_tail(client: Client, server: StandInServer, wire: Wire) -> None:
    server.enqueue(Scenario(tokens=5000))
    clock = Clock()
    view = LiveReplyView(clock=clock)
    reply = client.chat(ASK, on_delta=stepping(view, clock, 0.005))
    streamed = wire.updates()
    wire.clear()
    view.finish(reply)
    text_bytes = len(reply.text)
    assert text_bytes > 25_000
    # Every update while streaming stays small although the text grows to 27 kB ...
    assert max(streamed) < 5_000, max(streamed)
    # ... so the ~500 renders cost a small part of re-sending the text each time (~7 MB).
    assert len(streamed) < 3 * view.renders
    resend_everything = view.renders * text_bytes / 2
    assert sum(streamed) < resend_everything / 4, (sum(streamed), resend_everything)
    # The end re-renders the text once, as a whole, to fix the seams of the cuts.
    assert sum(wire.updates()) < 3 * text_bytes
    assert shown_text(view) == _wrap(h.markdown_html(reply.text))


def test_markdown_document_settles_into_blocks_that_match_the_whole(
    client: Client, server: StandInServer, wire: Wire
) -> None:
    text = "\n\n".join(f"## Part {i}\n\nSome **bold** words about part {i}, " + "and more " * 30 for i in range(20))
    server.enqueue(Scenario(text=text))
    clock = Clock()
    view = LiveReplyView(clock=clock)
    reply = client.chat(ASK, on_delta=stepping(view, clock, 0.005))
    blocks = len(view._choices[0].text.box.children)
    assert blocks > 3, "a long document should have settled into blocks while streaming"
    view.finish(reply)
    # The blocks rendered separately equal the whole, so nothing was re-sent at the end.
    assert len(view._choices[0].text.box.children) == blocks


def test_status_line_while_streaming_and_at_the_end(client: Client, server: StandInServer, wire: Wire) -> None:
    server.enqueue(Scenario(tokens=50))
    clock = Clock()
    view = LiveReplyView(clock=clock)
    states: list[str] = []

    def observe(delta: Delta) -> None:
        clock.now += 0.05
        view.on_delta(delta)
        states.append(view._status.value)

    reply = client.chat(ASK, on_delta=observe)
    live = plain(states[len(states) // 2])
    assert "streaming" in live and "tokens" in live and "tok/s" in live and "first token" in live
    view.finish(reply)
    final = plain(view._status.value)
    assert "finish: stop" in final and f"total {reply.usage.total_tokens}" in final and "streaming" not in final


# --------------------------------------------------------------------------- what the notebook keeps


def test_saved_outputs_end_with_the_widget_and_its_plain_renderings(
    client: Client, shell: InteractiveShell, wire: Wire
) -> None:
    with capture_output() as captured:
        view = LiveReplyView()
        reply = client.chat(ASK, logprobs=True, top_logprobs=2, on_delta=view.on_delta)
        view.finish(reply)
    first = captured.outputs[0]
    assert WIDGET_VIEW in first.data and first.data["text/plain"] == ""  # what nbval sees first
    kept = outputs(captured.outputs)
    assert kept[0] == {"text/plain": ""}  # the live output ends empty
    final = kept[-1]
    assert final[WIDGET_VIEW]["model_id"] == view.widget.model_id
    assert reply.text in final["text/plain"]
    assert reply.text in final["text/html"] and "compass-logprobs" in final["text/html"]
    assert "text/markdown" not in final


def test_live_false_shows_only_the_end(client: Client, shell: InteractiveShell, wire: Wire) -> None:
    with capture_output() as captured:
        view = LiveReplyView(live=False)
        reply = client.chat(ASK, on_delta=view.on_delta)
        view.finish(reply)
    assert len(captured.outputs) == 1 and reply.text in captured.outputs[0].data["text/html"]


def test_json_format_keeps_application_json(
    client: Client, server: StandInServer, shell: InteractiveShell, wire: Wire
) -> None:
    server.enqueue(Scenario(text='{"city": "Paris", "days": [1, 2]}'))
    with capture_output() as captured:
        view = LiveReplyView(fmt="json")
        reply = client.chat(ASK, on_delta=view.on_delta)
        view.finish(reply)
    final = outputs(captured.outputs)[-1]
    assert final["application/json"] == {"city": "Paris", "days": [1, 2]}
    assert '"days": [\n    1,' in plain(shown_text(view))  # pretty-printed at the end


# --------------------------------------------------------------------------- broken replies


def test_a_stream_that_breaks_off_stays_visible_and_marked(
    client: Client, server: StandInServer, shell: InteractiveShell, wire: Wire
) -> None:
    server.enqueue(Scenario(drop_after=4))
    with capture_output() as captured:
        view = LiveReplyView()
        with pytest.raises(Exception) as caught:
            client.chat(ASK, on_delta=view.on_delta)
        view.fail(caught.value.reply, caught.value)
    partial = caught.value.reply
    assert partial.text and h.markdown_html(partial.text) in shown_text(view)
    assert "Incomplete" in view._banner.value
    assert "incomplete" in view._status.value
    final = outputs(captured.outputs)[-1]
    assert "Incomplete" in final["text/html"] and partial.text in final["text/plain"]


def test_an_interrupt_is_marked_interrupted(shell: InteractiveShell, wire: Wire) -> None:
    reply = Reply(model="gpt-4o", choices=[Choice(text="Half an ans")])
    view = LiveReplyView()
    with capture_output():
        view.on_delta(Delta(reply=reply, choice=0, text="Half an ans"))
        view.fail(None, KeyboardInterrupt())
    assert "Interrupted" in view._banner.value and reply.interrupted and reply.incomplete


def test_a_failure_before_anything_arrived_leaves_no_output(
    server: StandInServer, shell: InteractiveShell, wire: Wire
) -> None:
    bad = Client(base_url=server.base_url, api_key="wrong-key")
    with capture_output() as captured:
        view = LiveReplyView()
        view.show()
        with pytest.raises(Exception) as caught:
            bad.chat(ASK, on_delta=view.on_delta)
        view.fail(getattr(caught.value, "reply", None), caught.value)
    assert [o for o in outputs(captured.outputs) if any(o.values())] == []


# --------------------------------------------------------------------------- choices, tools, warnings


def test_n_choices_become_tabs(client: Client, wire: Wire) -> None:
    view = LiveReplyView()
    reply = client.chat(ASK, n=3, temperature=1, on_delta=view.on_delta)
    view.finish(reply)
    tab = view._tab
    assert tab is not None and len(tab.children) == 3
    assert list(tab.titles) == [f"Choice {i} · stop" for i in (1, 2, 3)]
    for i, choice in enumerate(reply.choices):
        assert h.markdown_html(choice.text) in shown_text(view, i)


def test_tool_calls_listed_with_their_results(client: Client, wire: Wire) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    tools_seen: list[str] = []

    class Watched(LiveReplyView):
        def on_tool(self, call: Any) -> None:
            super().on_tool(call)
            tools_seen.append(self._tools.value)

    view = Watched()
    reply = Session(client).chat("Use get_weather for Paris", tools=[get_weather], observer=view)
    assert "Sunny in Paris" in tools_seen[0], "the result shows as soon as the tool ran"
    view.finish(reply)
    assert view._tools.value.count('class="compass-tool-call"') == 1
    assert "Sunny in Paris" in view._tools.value and "running" not in view._tools.value
    assert "Based on get_weather" in shown_text(view)


def test_warnings_are_shown_once(client: Client, wire: Wire) -> None:
    said: list[str] = []
    view = LiveReplyView(warn=said.append)
    for _ in range(3):
        view.warning("min_p applies to other models")
    assert said == ["min_p applies to other models"]
    inline = LiveReplyView()
    inline.warning("careful")
    inline.warning("careful")
    assert inline._warnings.value.count("careful") == 1


def test_reasoning_streams_into_a_collapsed_section(client: Client, wire: Wire) -> None:
    clock = Clock()
    view = LiveReplyView(clock=clock)
    titles: list[str] = []

    def observe(delta: Delta) -> None:
        clock.now += 0.05
        view.on_delta(delta)
        if view._choices and view._choices[0].accordion is not None:
            titles.append(view._choices[0].accordion.get_title(0))

    reply = client.chat(
        ASK, model="claude-sonnet-4", thinking={"type": "enabled", "budget_tokens": 2048}, on_delta=observe
    )
    view.finish(reply)
    assert reply.reasoning, "the stand-in thinks aloud when thinking is enabled"
    choice = view._choices[0]
    assert choice.accordion.selected_index is None  # collapsed: the answer comes first
    assert titles and titles[0] != titles[-1], "the reasoning's length grew in its title while streaming"
    assert choice.accordion.get_title(0) == f"Reasoning ({len(reply.reasoning):,} characters)"
    assert h.markdown_html(reply.reasoning) in "".join(w.value for w in choice.reasoning.box.children)


# --------------------------------------------------------------------------- compare


def test_compare_view_renders_on_poll_from_worker_threads(
    client: Client, server: StandInServer, shell: InteractiveShell, wire: Wire
) -> None:
    server.enqueue(Scenario(tokens=60, delay=0.005, times=2))
    models = ["gpt-4o", "gpt-4.1"]
    polled_on: set[str] = set()
    with capture_output() as captured:

        class Polled(CompareView):
            def poll(self) -> None:
                polled_on.add(threading.current_thread().name)
                super().poll()

        view = Polled(models, pick=1)
        replies = Session(client).compare("Plan a trip", models=models, observer=view)
        renders_while_streaming = [c.renders for c in view.columns]
        view.finish(replies)
    assert polled_on == {threading.main_thread().name}
    assert all(r > 1 for r in renders_while_streaming), renders_while_streaming
    for column, reply in zip(view.columns, replies):
        assert h.markdown_html(reply.text) in shown_text(column)
        assert "first token" in column._status.value
    assert "kept in history" in view.columns[1]._title.value
    final = outputs(captured.outputs)[-1]
    assert WIDGET_VIEW in final and "compass-compare" in final["text/html"]


def test_widgets_available_only_in_a_kernel(shell: InteractiveShell) -> None:
    assert widgets_available() is False  # a plain IPython shell has no front end for widgets


# --------------------------------------------------------------------------- a real kernel


LONG_STREAM = """
from compass_jupyter import Client
from compass_jupyter.testing import Scenario, StandInServer
from compass_jupyter.views.widget import LiveReplyView, widgets_available
assert widgets_available()
with StandInServer() as server:
    server.enqueue(Scenario(tokens=5000, delay={delay}))
    client = Client(base_url=server.base_url, api_key=server.key)
    view = LiveReplyView()
    reply = client.chat([{{"role": "user", "content": "hi"}}], on_delta=view.on_delta)
    view.finish(reply)
print("RENDERS", view.renders, len(reply.text))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("delay", [0.0, 0.002])
def test_iopub_traffic_of_a_5000_token_stream_in_a_kernel(delay: float) -> None:
    from jupyter_client.manager import start_new_kernel

    manager, kc = start_new_kernel(kernel_name="python3")
    try:
        kc.execute("1")
        kc.get_shell_msg(timeout=60)
        _drain(kc)
        started = time.perf_counter()
        msg_id = kc.execute(LONG_STREAM.format(delay=delay))
        counts: dict[str, int] = {}
        sizes: dict[str, int] = {}
        largest = 0
        printed = ""
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            size = len(json.dumps(msg["content"], default=str))
            counts[kind] = counts.get(kind, 0) + 1
            sizes[kind] = sizes.get(kind, 0) + size
            if kind == "comm_msg":
                largest = max(largest, size)
            if kind == "stream":
                printed += msg["content"]["text"]
            if kind == "error":
                pytest.fail("\n".join(msg["content"]["traceback"]))
            if kind == "status" and msg["content"]["execution_state"] == "idle":
                break
        took = time.perf_counter() - started
    finally:
        kc.stop_channels()
        manager.shutdown_kernel(now=True)
    renders, chars = (int(x) for x in printed.split()[1:3])
    total = sum(sizes.values())
    print(
        f"\n5,000 tokens (delay {delay}s): {took:.1f} s, {renders} renders, "
        + ", ".join(f"{counts[k]} {k} {sizes[k] / 1024:.0f} KiB" for k in sorted(counts))
        + f"; total {total / 1024:.0f} KiB, largest update {largest / 1024:.1f} KiB, text {chars / 1024:.0f} KiB"
    )
    # Far below the server's 1000 messages/s limit, and no update re-sends the whole text.
    assert counts.get("comm_msg", 0) <= 3 * renders + 30
    assert counts.get("comm_msg", 0) / max(took, 0.1) < 500
    streaming_budget = 8_000 * 2 * renders  # a tail and a status line per render
    assert sizes.get("comm_msg", 0) < streaming_budget + 4 * chars
    assert largest < 2 * chars


def _drain(kc: Any) -> None:
    while True:
        try:
            kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            return


SAVED = """
from compass_jupyter import Client
from compass_jupyter.testing import Scenario, StandInServer
from compass_jupyter.views.widget import LiveReplyView
server = StandInServer().start()
client = Client(base_url=server.base_url, api_key=server.key)
ask = [{"role": "user", "content": "Plan a trip"}]
"""


@pytest.mark.timeout(120)
def test_a_saved_notebook_reads_well_without_widget_state() -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(SAVED),
        nbformat.v4.new_code_cell(
            "server.enqueue(Scenario(text='## Plan\\n\\nLeave **early**.'))\n"
            "view = LiveReplyView()\nview.finish(client.chat(ask, logprobs=True, top_logprobs=2, on_delta=view.on_delta))"
        ),
        nbformat.v4.new_code_cell(
            "view = LiveReplyView()\nview.finish(client.chat(ask, model='gpt-4o-audio-preview', modalities=['text', 'audio'],"
            " audio={'voice': 'alloy', 'format': 'pcm16'}, on_delta=view.on_delta))"
        ),
        nbformat.v4.new_code_cell("server.stop()"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=60, kernel_name="python3").execute()
    nb.metadata.pop("widgets", None)  # as saved by a front end that does not keep widget state
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page = re.sub(r"\s+", " ", body)
    assert "<h2" in page and "Plan</h2>" in page and "<strong>early</strong>" in page
    assert "finish: stop" in plain(page) and "compass-logprobs" in page
    assert re.search(r'<audio controls[^>]*src="data:audio/wav;base64,', page)
    assert "Stand-in gpt-4o-audio-preview here." in plain(page)
    assert "Error displaying widget" not in page and "Loading widget" not in page


def test_compare_marks_only_the_model_whose_stream_broke(
    client: Client, server: StandInServer, shell: InteractiveShell, wire: Wire
) -> None:
    server.enqueue(Scenario(drop_after=3))  # whichever request comes first breaks off
    models = ["gpt-4o", "gpt-4.1"]
    with capture_output() as captured:
        view = CompareView(models)
        replies = Session(client).compare("Plan a trip", models=models, observer=view)
        view.finish(replies)
    broken = [i for i, r in enumerate(replies) if r.incomplete]
    assert len(broken) == 1
    for i, column in enumerate(view.columns):
        if i in broken:
            assert "Incomplete" in column._banner.value and "incomplete" in column._status.value
        else:
            assert column._banner.value == "" and "finish: stop" in column._status.value
    final = outputs(captured.outputs)[-1]
    # The saved comparison notes the broken column in the words of its markdown and text.
    assert final["text/html"].count("compass-compare-note") == 1
    note = compare_note(replies[broken[0]])
    assert note in unescape(final["text/html"]) and f"[{note}]" in final["text/plain"]


def test_compare_interrupted_keeps_what_arrived(shell: InteractiveShell, wire: Wire) -> None:
    view = CompareView(["a", "b"])
    partial = Reply(model="a", choices=[Choice(text="Half")])
    with capture_output() as captured:
        view.observer("a").on_delta(Delta(reply=partial, choice=0, text="Half"))
        view.poll()
        view.fail(KeyboardInterrupt(), interrupted=True)
    assert partial.interrupted and "Interrupted" in view.columns[0]._banner.value
    assert "Half" in shown_text(view.columns[0])
    kept = [o for o in outputs(captured.outputs) if any(o.values())]
    assert len(kept) == 1 and "interrupted: the reply is partial" in kept[0]["text/html"]


def test_stop_ends_the_turn_at_the_next_chunk_and_keeps_the_partial(
    client: Client, server: StandInServer, shell: InteractiveShell, wire: Wire
) -> None:
    # What a Stop button does once the view is the turn's observer: view.stop() from any thread.
    server.enqueue(Scenario(tokens=400, delay=0.005))

    class StopEarly(LiveReplyView):
        def on_delta(self, delta: Delta) -> None:
            super().on_delta(delta)
            if len(delta.reply.text) > 40:
                self.stop()

    conversation = Session(client)
    with capture_output():
        view = StopEarly()
        reply = conversation.chat("Plan a trip", observer=view)
        view.fail(reply, "stopped")
    assert view.cancelled() and reply.interrupted and reply.incomplete
    assert 40 < len(reply.text) and len(reply.text.split()) < 400
    assert h.markdown_html(reply.text) in shown_text(view)
    assert conversation.messages[-1]["interrupted"] is True


def test_compare_stop_ends_every_column_and_keeps_what_arrived(
    client: Client, server: StandInServer, shell: InteractiveShell, wire: Wire
) -> None:
    server.enqueue(Scenario(tokens=400, delay=0.005, times=2))
    models = ["gpt-4o", "gpt-4.1"]

    class StopWhenBothStarted(CompareView):
        def poll(self) -> None:
            super().poll()
            if all(c._pieces > 3 for c in self.columns):
                self.stop()

    with capture_output():
        view = StopWhenBothStarted(models)
        replies = Session(client).compare("Plan a trip", models=models, observer=view)
        view.finish(replies)
    assert view.cancelled()
    assert all(r.interrupted and r.incomplete and r.text for r in replies)
    assert all("Interrupted" in c._banner.value for c in view.columns)


def test_compare_warnings_from_worker_threads_wait_for_poll(shell: InteractiveShell, wire: Wire) -> None:
    said: list[tuple[str, str]] = []
    view = CompareView(["a", "b"], warn=lambda m: said.append((m, threading.current_thread().name)))
    worker = threading.Thread(target=view.warning, args=("b is not in the catalog",), name="compass-compare-1")
    worker.start()
    worker.join()
    assert said == []
    view.poll()
    view.poll()
    assert said == [("b is not in the catalog", threading.main_thread().name)]


def test_show_after_the_end_shows_the_finished_view(client: Client, shell: InteractiveShell, wire: Wire) -> None:
    view = LiveReplyView()
    reply = client.chat(ASK, on_delta=view.on_delta)
    view.finish(reply)
    with capture_output() as captured:
        view.show()
    (shown,) = captured.outputs
    assert WIDGET_VIEW in shown.data and reply.text in shown.data["text/html"]
