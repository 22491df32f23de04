"""The widget playground, driven from Python against the stand-in server (no browser).

Each test sets the widgets as a person would (values, ticks, the model picker),
presses the buttons or calls the handlers, and checks what the server received
and what the panel shows. Requests run as tasks on an asyncio loop, as they do
on a kernel's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from typing import Any, Callable

import httpx
import pytest

import compass_jupyter as cj
from compass_jupyter.magics.interpolate import interpolate
from compass_jupyter.magics.options import parse
from compass_jupyter.playground import Playground, unsupported_reason
from compass_jupyter.testing import Scenario, StandInServer


def texts(widget: Any) -> str:
    """Every string value shown under ``widget`` (HTML, labels, text boxes), joined."""
    out: list[str] = []

    def walk(w: Any) -> None:
        value = getattr(w, "value", None)
        if isinstance(value, str):
            out.append(value)
        for child in getattr(w, "children", ()) or ():
            walk(child)

    walk(widget)
    return "\n".join(out)


def classes(widget: Any) -> set[str]:
    found: set[str] = set()

    def walk(w: Any) -> None:
        found.update(getattr(w, "_dom_classes", ()))
        for child in getattr(w, "children", ()) or ():
            walk(child)

    walk(widget)
    return found


async def finish(task: Any, timeout: float = 15) -> Any:
    assert isinstance(task, asyncio.Task), f"send() should schedule a task on the running loop, got {task!r}"
    return await asyncio.wait_for(task, timeout)


def press(pg: Playground, button: str = "send") -> Any:
    """Click a button inside a running loop and return the request it started."""
    before = pg.task
    getattr(pg, f"{button}_button").click()
    assert pg.task is not before, pg.notice.value
    return pg.task


def body(server: StandInServer) -> dict[str, Any]:
    assert server.last_request is not None, "the server received nothing"
    return server.last_request.body


def test_untouched_controls_send_only_the_message(compass_server: StandInServer) -> None:
    pg = Playground()
    pg.message.value = "Hello there"

    async def main() -> None:
        await finish(press(pg))

    asyncio.run(main())
    sent = body(compass_server)
    assert sent["messages"] == [{"role": "user", "content": "Hello there"}]
    assert set(sent) == {"model", "messages", "stream", "stream_options"}
    assert sent["model"] == "gpt-4o"
    assert "Stand-in gpt-4o here" in texts(pg.transcript)
    assert pg.message.value == ""  # the box is ready for the next message


def test_every_control_reaches_the_request(compass_server: StandInServer) -> None:
    pg = Playground()
    p = pg.params
    # Setting a value ticks its "send" box, as moving a slider does in the browser.
    p["temperature"].input.value = 0.35
    p["top_p"].input.value = 0.9
    p["max_tokens"].input.value = 123
    p["presence_penalty"].input.value = -0.5
    p["frequency_penalty"].input.value = 1.5
    p["stop"].input.value = "END, \\n\\n"
    p["n"].input.value = 2
    p["random_seed"].input.value = 42
    p["logprobs"].send.value = True
    p["top_logprobs"].input.value = 3
    pg.system.value = "You are terse."
    pg.message.value = "Count to three"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    sent = body(compass_server)
    assert sent["temperature"] == 0.35
    assert sent["top_p"] == 0.9
    assert sent["max_tokens"] == 123
    assert sent["presence_penalty"] == -0.5
    assert sent["frequency_penalty"] == 1.5
    assert sent["stop"] == ["END", "\n\n"]
    assert sent["n"] == 2
    assert sent["random_seed"] == 42 and "seed" not in sent
    assert sent["logprobs"] is True and sent["top_logprobs"] == 3
    assert sent["messages"][0] == {"role": "system", "content": "You are terse."}
    assert sent["messages"][-1] == {"role": "user", "content": "Count to three"}
    shown = texts(pg.transcript)
    assert "Choice 2" in repr(pg.transcript.children[-1].children) or "(choice 2)" in shown
    assert "Logprobs" in shown  # the live view's logprobs table


@pytest.mark.parametrize(
    ("model", "values", "expected"),
    [
        ("cohere-command-r-08-2024", {"response_format": "json_object"}, {"response_format": {"type": "json_object"}}),
        ("cohere-command-r-08-2024", {"response_format": "text"}, {"response_format": {"type": "text"}}),
        ("o3", {"reasoning_effort": "high"}, {"reasoning_effort": "high"}),
        ("gpt-5", {"reasoning_effort": "minimal"}, {"reasoning_effort": "minimal"}),
        (
            "gpt-4o-audio-preview",
            {"audio": ("coral", "pcm16")},
            {"modalities": ["text", "audio"], "audio": {"voice": "coral", "format": "pcm16"}},
        ),
    ],
)
def test_model_specific_controls_reach_the_models_documented_for_them(
    compass_server: StandInServer, model: str, values: dict[str, Any], expected: dict[str, Any]
) -> None:
    pg = Playground()
    pg.model.value = model
    pg.set(**values)
    pg.message.value = "Say hi"

    async def main() -> Any:
        return await finish(pg.send())

    reply = asyncio.run(main())
    sent = body(compass_server)
    assert sent["model"] == model
    assert {k: sent[k] for k in expected} == expected
    assert pg.notice.value == "", pg.notice.value
    if "audio" in expected:
        assert reply.audio is not None and reply.audio.wav
        assert "<audio" in texts(pg.transcript)


def test_controls_the_model_does_not_support_are_disabled_with_the_reason_and_not_sent(
    compass_server: StandInServer,
) -> None:
    pg = Playground()
    pg.model.value = "gpt-4o"
    pg.set(reasoning_effort="high", response_format="json_object", audio=("alloy", "pcm16"), temperature=0.5)
    effort, fmt, audio = pg.params["reasoning_effort"], pg.params["response_format"], pg.params["audio"]
    for param in (effort, fmt, audio):
        assert param.send.disabled and all(w.disabled for w in param.inputs)
    assert effort.send.tooltip.startswith("reasoning_effort is documented only for gpt-5, gpt-5-mini")
    assert "not send it to gpt-4o" in effort.input.tooltip
    assert "cohere-command-r-08-2024" in fmt.send.tooltip
    assert "gpt-4o-audio-preview" in audio.send.tooltip
    assert pg.fields() == {"temperature": 0.5}
    pg.message.value = "Hi"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    sent = body(compass_server)
    for field in ("reasoning_effort", "response_format", "modalities", "audio"):
        assert field not in sent
    assert sent["temperature"] == 0.5

    # The ticks are remembered: a model documented for the field sends it.
    pg.model.value = "o3"
    assert not effort.send.disabled and effort.send.tooltip.startswith("reasoning_effort:")
    assert pg.fields() == {"temperature": 0.5, "reasoning_effort": "high"}
    pg.model.value = "jais-30b"
    pg.set(presence_penalty=1.0)
    assert pg.params["presence_penalty"].send.disabled
    assert "not applying to jais-30b" in pg.params["presence_penalty"].send.tooltip
    assert "presence_penalty" not in pg.fields()


def test_the_generic_controls_follow_the_fields_table() -> None:
    from compass_jupyter.fields import FIELDS
    from compass_jupyter.playground.controls import SPECIAL, shown

    pg = Playground()
    rows = [row for row in FIELDS.values() if shown(row)]
    assert {"temperature", "top_p", "max_tokens", "random_seed", "reasoning_effort"} <= {r.name for r in rows}
    for row in rows:
        control = pg.params[row.name].input
        assert control.value == row.start, row.name
        if row.step is not None:
            assert (control.min, control.max, control.step) == (row.low, row.high, row.step), row.name
        if row.choices:
            assert tuple(control.options) == row.choices, row.name
    # The hand-written controls take their numbers from the table too.
    top = pg.params["top_logprobs"].input
    assert (top.min, top.max, top.value) == (
        FIELDS["top_logprobs"].low,
        FIELDS["top_logprobs"].high,
        FIELDS["top_logprobs"].start,
    )
    assert set(pg.params) - {r.name for r in rows} <= SPECIAL
    # A control is named after its %%compass option, and set() takes that name as well.
    assert pg.params["random_seed"].label == "seed"
    assert pg.set(seed=11).fields() == {"random_seed": 11}


def test_unsupported_reason_follows_the_catalog() -> None:
    assert unsupported_reason("reasoning_effort", "o3") is None
    assert "documented only for" in (unsupported_reason("reasoning_effort", "gpt-4o") or "")
    assert unsupported_reason("audio", "gpt-4o-audio-preview") is None
    assert "audio output" in (unsupported_reason("audio", "gpt-4.1") or "")
    assert unsupported_reason("temperature", "gpt-4o") is None
    # The catalog cannot judge a model it does not know: everything is offered.
    assert unsupported_reason("reasoning_effort", "my-own-deployment") is None


def test_top_logprobs_waits_for_logprobs() -> None:
    pg = Playground()
    top = pg.params["top_logprobs"]
    assert top.send.disabled and "tick logprobs first" in top.send.tooltip
    top.send.value = True
    assert "top_logprobs" not in pg.fields()
    pg.params["logprobs"].send.value = True
    assert not top.send.disabled
    assert pg.fields() == {"logprobs": True, "top_logprobs": 5}
    pg.params["logprobs"].send.value = False
    assert top.send.disabled and pg.fields() == {}


def test_unticking_a_parameter_leaves_it_out() -> None:
    pg = Playground()
    temperature = pg.params["temperature"]
    assert not temperature.send.value
    temperature.input.value = 1.25
    assert temperature.send.value and pg.fields() == {"temperature": 1.25}
    temperature.send.value = False
    assert pg.fields() == {}
    pg.params["stop"].input.value = " , "  # only separators: nothing to send
    assert pg.fields() == {}


def test_the_conversation_is_the_kernel_session_in_both_directions(compass_server: StandInServer) -> None:
    cj.chat("first from cj.chat")
    pg = Playground()
    assert "first from cj.chat" in texts(pg.transcript)  # a conversation started elsewhere continues here
    pg.message.value = "second from the playground"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    sent = [m["content"] for m in body(compass_server)["messages"]]
    assert sent[0] == "first from cj.chat" and sent[-1] == "second from the playground"
    assert "second from the playground" in cj.session().transcript()  # what %compass history prints

    cj.chat("third from cj.chat")
    sent = [m["content"] for m in body(compass_server)["messages"]]
    assert "second from the playground" in sent
    # The playground follows the session as it changes.
    assert "third from cj.chat" in texts(pg.transcript)
    cj.session().reset()
    assert "No messages yet" in texts(pg.transcript)


def test_send_does_not_block_the_loop_and_stop_keeps_the_partial_reply(compass_server: StandInServer) -> None:
    compass_server.enqueue(Scenario(tokens=300, delay=0.02))  # a 6-second reply
    pg = Playground()
    pg.message.value = "Tell me a long story"

    async def main() -> tuple[Any, int, str]:
        task = press(pg)
        assert pg.send_button.disabled and pg.compare_button.disabled and not pg.stop_button.disabled
        assert pg.send() is None  # one request at a time
        ticks = 0
        while texts(pg.transcript).count("steady") < 3:  # a few sentences of filler have streamed in
            await asyncio.sleep(0.01)  # the loop keeps running while the reply streams
            ticks += 1
            assert not task.done(), "the reply ended before Stop"
        pg.stop_button.click()
        reply = await finish(task)
        after_stop = texts(pg.transcript)
        await asyncio.sleep(0.3)
        assert texts(pg.transcript) == after_stop, "the reply kept growing after Stop"
        return reply, ticks, after_stop

    reply, ticks, shown = asyncio.run(main())
    assert ticks >= 10
    assert reply.interrupted and reply.incomplete
    assert 3 <= reply.text.count("steady") and len(reply.text.split()) < 300
    assert "Interrupted" in shown
    assert "Stopped: the partial reply is kept" in pg.notice.value
    assert not pg.send_button.disabled and pg.stop_button.disabled
    last = cj.session().messages[-1]
    assert last["role"] == "assistant" and last["incomplete"] and last["interrupted"]
    assert last["content"] == reply.text


def test_a_server_error_is_one_paragraph_in_the_panel_and_the_message_comes_back(
    compass_server: StandInServer,
) -> None:
    compass_server.enqueue(Scenario(status=401))
    pg = Playground()
    pg.message.value = "Hi"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    notice = pg.notice.value
    assert "compass-pg-error" in notice
    assert "401" in notice or "key" in notice.lower()
    assert "Traceback" not in notice and compass_server.key not in notice
    assert cj.session().messages == []
    assert pg.message.value == "Hi"  # given back, to fix and send again
    assert "No messages yet" in texts(pg.transcript)
    assert not pg.send_button.disabled


def test_a_refused_request_sends_nothing(compass_server: StandInServer) -> None:
    pg = Playground()
    pg.params["stop"].input.value = "a, b, c, d, e"
    pg.message.value = "Hi"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    assert compass_server.requests == []
    assert "at most 4" in pg.notice.value


def test_a_missing_key_says_how_to_set_it(compass_server: StandInServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPASS_API_KEY")
    pg = Playground()
    pg.message.value = "Hi"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    assert "COMPASS_API_KEY" in pg.notice.value
    assert compass_server.requests == []


def test_compare_sends_one_message_to_each_model_side_by_side(compass_server: StandInServer) -> None:
    pg = Playground()
    pg.compare_models.value = ("gpt-4o", "gpt-4.1")
    pg.set(temperature=0.2)
    pg.message.value = "Which is better?"

    async def main() -> Any:
        return await finish(press(pg, "compare"))

    replies = asyncio.run(main())
    assert sorted(r.body["model"] for r in compass_server.requests) == ["gpt-4.1", "gpt-4o"]
    assert all(r.body["temperature"] == 0.2 for r in compass_server.requests)
    assert [r.model for r in replies] == ["gpt-4o", "gpt-4.1"]
    shown = texts(pg.transcript)
    assert shown.count("You said: “Which is better?”") == 2  # one column per model
    assert "gpt-4o · kept in history" in shown
    assert "compass-compare-view" in classes(pg.transcript)
    # The history keeps the first model's reply.
    assert cj.session().messages[-1]["content"] == replies[0].text


def test_compare_leaves_out_what_a_picked_model_does_not_support(compass_server: StandInServer) -> None:
    pg = Playground()
    pg.model.value = "o3"
    pg.compare_models.value = ("o3", "gpt-4o")
    pg.set(reasoning_effort="low")
    pg.message.value = "Hi"

    async def main() -> None:
        await finish(pg.compare())

    asyncio.run(main())
    assert all("reasoning_effort" not in r.body for r in compass_server.requests)
    assert "Not sent in this comparison: reasoning_effort" in pg.notice.value


def test_compare_needs_two_models() -> None:
    pg = Playground()
    pg.compare_models.value = ("gpt-4o",)
    pg.message.value = "Hi"
    assert pg.compare() is None
    assert "two to 4 models" in pg.notice.value


def test_copy_as_cell_reproduces_the_settings_and_the_message(compass_server: StandInServer) -> None:
    pg = Playground()
    pg.model.value = "o3"
    pg.set(temperature=0.3, stop=["END", "a,b"], random_seed=7, reasoning_effort="low", logprobs=True, top_logprobs=2)
    pg.system.value = "Answer in {braces} if asked."
    pg.message.value = 'Give me {"json": 1}'

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    sent_by_playground = body(compass_server)

    pg.copy_button.click()
    cell = pg.cell_text.value
    assert pg.copy_box.layout.display != "none"
    first, _, message = cell.partition("\n")
    options = parse(first[len("%%compass") :], {})
    assert options.fields == pg.fields()
    assert options.kwargs["model"] == "o3"
    assert options.kwargs["system"] == "Answer in {braces} if asked."
    assert interpolate(message, {}) == 'Give me {"json": 1}'  # the last message sent

    # The Python snippet sends the very same request in a fresh conversation.
    cj.session().reset(keep_system=False)
    namespace: dict[str, Any] = {}
    exec(pg.python_text.value, namespace)
    assert body(compass_server) == sent_by_playground
    assert namespace["reply"].text

    # The copies are read-only: an edit is put back.
    pg.cell_text.value = "something else"
    assert pg.cell_text.value == cell


@pytest.fixture
def shell(compass_server: StandInServer) -> Any:
    """A real IPython shell with the magics loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    from compass_jupyter import magics

    sh = InteractiveShell.instance()
    magics.load(sh)
    yield sh
    magics.unload(sh)


def run_cell(sh: Any, code: str) -> None:
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        result = sh.run_cell(code)
    assert result.success, f"{result.error_in_exec or result.error_before_exec!r}\n{captured.stderr}"


def test_the_copied_cell_sends_what_the_playground_sent(compass_server: StandInServer, shell: Any) -> None:
    pg = Playground()
    pg.model.value = "gpt-4o-audio-preview"
    pg.set(temperature=0.9, presence_penalty=-1.0, stop="STOP, \\n\\n", n=2, audio=("ash", "pcm16"))
    pg.system.value = "You speak {briefly}."
    pg.message.value = "Say {hello}"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    sent_by_playground = body(compass_server)
    cell, _ = pg.copy_as_cell()
    cj.session().reset(keep_system=False)
    run_cell(shell, cell)
    assert body(compass_server) == sent_by_playground


def test_a_conversation_started_with_the_magic_continues_in_the_playground(
    compass_server: StandInServer, shell: Any
) -> None:
    run_cell(shell, "%%compass -s 'Be terse.'\nFirst, from a cell")
    pg = Playground()
    assert "First, from a cell" in texts(pg.transcript)
    assert pg.system.value == "Be terse."
    pg.message.value = "Second, from the playground"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    sent = body(compass_server)["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == "First, from a cell"
    run_cell(shell, "%%compass\nThird, from a cell")
    assert "Second, from the playground" in [m["content"] for m in body(compass_server)["messages"]]
    assert "Third, from a cell" in texts(pg.transcript)


def test_a_multi_line_system_prompt_is_copied_as_a_python_cell_first() -> None:
    pg = Playground()
    pg.system.value = "Rule one.\nRule two."
    pg.message.value = "Hi"
    cell, _ = pg.copy_as_cell()
    assert "-s" not in cell.partition("\n")[0]
    assert pg.before_text.layout.display != "none"
    assert "set_system('Rule one.\\nRule two.')" in pg.before_text.value


def test_the_system_prompt_follows_the_session_until_edited(compass_server: StandInServer) -> None:
    cj.session().set_system("From a cell.")
    pg = Playground()
    assert pg.system.value == "From a cell."
    cj.session().set_system("Changed by %%compass -s")
    assert pg.system.value == "Changed by %%compass -s"
    pg.system.value = "My own"
    cj.session().set_system("Another")
    assert pg.system.value == "My own"  # an edit in progress is not overwritten


def test_reset_starts_a_new_conversation(compass_server: StandInServer) -> None:
    pg = Playground()
    pg.system.value = "Keep me."
    pg.message.value = "Hi"

    async def main() -> None:
        await finish(pg.send())

    asyncio.run(main())
    assert len(cj.session().messages) == 2
    pg.reset_button.click()
    assert cj.session().messages == [] and cj.session().system == "Keep me."
    assert "No messages yet" in texts(pg.transcript)


def test_without_a_running_loop_the_request_runs_in_a_thread(compass_server: StandInServer) -> None:
    pg = Playground()
    pg.message.value = "Hi from a script"
    future = pg.send()
    assert isinstance(future, concurrent.futures.Future)
    reply = future.result(timeout=15)
    assert reply.text.startswith("Stand-in gpt-4o here")
    assert body(compass_server)["messages"][-1]["content"] == "Hi from a script"
    assert "Stand-in gpt-4o here" in texts(pg.transcript)
    assert not pg.send_button.disabled


def test_an_unknown_default_model_is_offered_with_every_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPASS_MODEL", "my-own-deployment")
    pg = Playground()
    assert pg.model.value == "my-own-deployment" and pg.model.options[0] == "my-own-deployment"
    assert "not in the Compass reference" in pg.model.tooltip
    assert not pg.params["reasoning_effort"].send.disabled
    assert "gpt-4o" in pg.model.options


def test_it_displays_as_its_root_widget() -> None:
    pg = Playground()
    bundle = pg._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == pg.widget.model_id
    assert bundle["text/plain"].startswith("Compass playground")
    assert "compass-playground" in pg.widget._dom_classes


# -- Stop closes the connection at once ----------------------------------------------------


def server_connections(server: StandInServer) -> int:
    """The server's open connections: its ESTABLISHED sockets (a closed peer leaves CLOSE_WAIT or nothing)."""
    port = f"{server.port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].rsplit(":", 1)[1] == port and fields[3] == "01":
                count += 1
    return count


needs_proc = pytest.mark.skipif(
    not os.path.exists("/proc/net/tcp"), reason="reads the server's connections from /proc/net/tcp"
)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait (letting the loop run) until ``condition()``; the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"{what} did not happen within {timeout} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def stored(n: int = 1) -> list[dict[str, Any]]:
    """The newest exchanges the store kept, with every column."""
    from compass_jupyter.store.search import records

    found = records(n=n, full=True)
    return found.reset_index().to_dict("records") if hasattr(found, "to_dict") else list(found)


@needs_proc
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "not-streamed"])
def test_stop_before_the_first_words_closes_the_connection_at_once(compass_server: StandInServer, stream: bool) -> None:
    # Streamed: the head and an opening chunk come at once, the first words 10 s later. Not
    # streamed: the server says nothing for 10 s (the request waits for the response head).
    compass_server.enqueue(Scenario(delay=5))
    pg = Playground()
    pg.stream.value = stream
    pg.message.value = "Are you there?"

    async def main() -> tuple[Any, float, float]:
        task = press(pg)
        await until(lambda: server_connections(compass_server) == 1, 5, "the request reaching the server")
        await asyncio.sleep(0.3)
        assert not task.done()
        assert pg.status.value and "Waiting for gpt-4o" in pg.status.value
        pg.stop_button.click()
        assert "Stopping…" in pg.status.value
        closed = await until(lambda: server_connections(compass_server) == 0, 1.0, "the connection closing")
        start = time.monotonic()
        reply = await finish(task, timeout=1.0)
        return reply, closed, time.monotonic() - start

    reply, closed, ended = asyncio.run(main())
    assert closed < 1.0 and ended < 1.0
    assert reply.interrupted and reply.incomplete and not reply.text
    # As after an interrupt before the first word: the conversation is unchanged, the message is back.
    assert cj.session().messages == []
    assert cj.session().turns[-1].interrupted
    assert pg.message.value == "Are you there?"
    assert "Stopped before the first words arrived" in pg.notice.value
    assert "No messages yet" in texts(pg.transcript)
    assert pg.status.value == "" and not pg.send_button.disabled and pg.stop_button.disabled
    if stream:
        # The response had begun, so the store keeps the exchange, marked interrupted.
        row = stored()[0]
        assert row["interrupted"] and row["incomplete"]


@needs_proc
def test_stop_while_streaming_closes_the_connection_and_the_history_keeps_the_partial_reply(
    compass_server: StandInServer,
) -> None:
    compass_server.enqueue(Scenario(tokens=300, delay=0.3))  # a token every 0.3 s
    pg = Playground()
    pg.message.value = "Tell me a long story"

    async def main() -> tuple[Any, float]:
        task = press(pg)
        await until(lambda: "streams" in texts(pg.transcript), 15, "a few words streaming in")
        pg.stop_button.click()
        closed = await until(lambda: server_connections(compass_server) == 0, 1.0, "the connection closing")
        reply = await finish(task, timeout=1.0)
        return reply, closed

    reply, closed = asyncio.run(main())
    assert closed < 1.0
    assert len(reply.text.split()) <= 4  # three words shown when Stop was pressed, at most one more on its way
    assert reply.interrupted and reply.text.lower().startswith("the stand-in streams")
    last = cj.session().messages[-1]
    assert last["interrupted"] and last["content"] == reply.text
    assert cj.session().messages[-2] == {"role": "user", "content": "Tell me a long story", "incomplete": True}
    row = stored()[0]
    assert row["interrupted"] and row["text"] == reply.text
    assert "Stopped: the partial reply is kept" in pg.notice.value


@needs_proc
def test_stop_closes_every_compared_models_connection_at_once(compass_server: StandInServer) -> None:
    compass_server.enqueue(Scenario(delay=5, times=2))
    pg = Playground()
    pg.compare_models.value = ("gpt-4o", "gpt-4.1")
    pg.message.value = "Which is better?"

    async def main() -> list[Any]:
        task = press(pg, "compare")
        await until(lambda: server_connections(compass_server) == 2, 5, "both requests reaching the server")
        pg.stop_button.click()
        await until(lambda: server_connections(compass_server) == 0, 1.0, "both connections closing")
        return await finish(task, timeout=1.0)  # type: ignore[no-any-return]

    replies = asyncio.run(main())
    assert [r.interrupted for r in replies] == [True, True]
    assert cj.session().messages == []
    assert pg.message.value == "Which is better?"


def test_stop_before_the_request_is_sent_sends_nothing(compass_server: StandInServer) -> None:
    pg = Playground()
    pg.message.value = "Never mind"

    async def main() -> Any:
        task = press(pg)
        pg.stop()  # before the worker thread has even started the request
        return await finish(task)

    reply = asyncio.run(main())
    assert reply.interrupted and compass_server.requests == []
    assert cj.session().messages == [] and pg.message.value == "Never mind"


def test_a_client_with_its_own_http_client_stops_at_the_next_chunk(compass_server: StandInServer) -> None:
    # Its requests can only go through the given httpx.Client (proxies, certificates): no async twin.
    own = httpx.Client()
    cj.session().client = cj.Client(http_client=own)
    compass_server.enqueue(Scenario(tokens=300, delay=0.05))
    pg = Playground()
    pg.message.value = "Tell me a long story"

    async def main() -> Any:
        task = press(pg)
        await until(lambda: "steady" in texts(pg.transcript), 15, "the reply streaming in")
        pg.stop_button.click()
        assert "Stopping at the next chunk…" in pg.status.value
        return await finish(task)

    try:
        reply = asyncio.run(main())
    finally:
        own.close()
    assert reply.interrupted and 0 < len(reply.text.split()) < 300
    assert cj.session().messages[-1]["interrupted"]


# -- the status line -----------------------------------------------------------------------


def test_the_status_line_names_the_model_that_answers_as_soon_as_it_writes(compass_server: StandInServer) -> None:
    compass_server.enqueue(Scenario(model="gpt-4o-2024-08-06", tokens=8, delay=0.25))
    pg = Playground()
    pg.message.value = "Hi"
    seen: list[str] = []
    pg.status.observe(lambda change: seen.append(change["new"]), names="value")

    async def main() -> Any:
        task = press(pg)
        await until(lambda: "stand-in" in texts(pg.transcript), 15, "the first words")
        assert "gpt-4o-2024-08-06 is writing…" in pg.status.value
        return await finish(task)

    reply = asyncio.run(main())
    assert reply.model == "gpt-4o-2024-08-06"
    words = [html for html in seen if html]
    assert "Waiting for gpt-4o…" in words[0]
    assert any("gpt-4o-2024-08-06 is writing…" in html for html in words)
    assert not any("Waiting" in html for html in words[words.index(next(h for h in words if "writing" in h)) :])
    assert pg.status.value == ""  # the reply's own status line takes over
    assert "gpt-4o-2024-08-06" in texts(pg.transcript)


def test_the_compare_status_line_follows_each_model() -> None:
    from compass_jupyter.playground.status import TurnStatus
    from compass_jupyter.reply import Reply
    from compass_jupyter.stream import Delta

    shown: list[str] = []
    status = TurnStatus(["gpt-4o", "gpt-4.1"], shown.append)
    status.show()
    status.saw("gpt-4o", Delta(reply=Reply(model="gpt-4o-2024-08-06"), choice=0, text="Hi"))
    status.saw("gpt-4.1", Delta(reply=Reply(model="gpt-4.1"), choice=0, reasoning="hmm"))
    status.freeze()
    status.saw("gpt-4.1", Delta(reply=Reply(model="gpt-4.1"), choice=0, text="late"))
    assert shown == [
        "gpt-4o: waiting · gpt-4.1: waiting…",
        "gpt-4o-2024-08-06: writing · gpt-4.1: waiting…",
        "gpt-4o-2024-08-06: writing · gpt-4.1: reasoning…",
    ]


# -- the static rendering ------------------------------------------------------------------


def test_the_saved_output_is_a_readable_snapshot_of_settings_and_conversation(compass_server: StandInServer) -> None:
    cj.chat("What is a list comprehension?", system="Be brief.")
    pg = Playground()
    pg.set(temperature=0.3, stop=["END"])
    pg.message.value = "And a generator?"
    bundle = pg._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == pg.widget.model_id
    html, plain = bundle["text/html"], bundle["text/plain"]
    for text in (html, plain):
        assert "Compass playground" in text and "snapshot" in text
        assert "gpt-4o" in text and "temperature" in text and "0.3" in text and "END" in text
        assert "Be brief." in text and "What is a list comprehension?" in text
        assert "Stand-in gpt-4o here" in text  # the reply so far
        assert "And a generator?" in text  # typed, not sent
        assert "ipywidgets" not in text and "front end" not in text
        assert compass_server.key not in text
    assert plain.startswith("Compass playground")
    assert "compass-pg-msg" in html  # the conversation as the live panel shows it


def test_an_empty_playground_snapshot_says_so() -> None:
    html = Playground().snapshot()["text/html"]
    assert "No messages yet" in html and "defaults apply" in html


def test_a_reply_keeps_streaming_while_a_cell_holds_the_kernel(compass_server: StandInServer) -> None:
    compass_server.enqueue(Scenario(tokens=10, delay=0.05))
    pg = Playground()
    pg.message.value = "Hi"

    async def main() -> Any:
        task = press(pg)
        await asyncio.sleep(0.05)  # the button's callback returns; the turn starts on a worker thread
        time.sleep(1.5)  # then a cell runs: the kernel's loop does nothing meanwhile
        # The request ran on the playground's own loop: the turn is already in the conversation.
        assert [m["role"] for m in cj.session().messages] == ["user", "assistant"]
        return await finish(task)

    reply = asyncio.run(main())
    assert len(reply.text.split()) == 10 and not reply.interrupted


@needs_proc
def test_without_a_running_loop_stop_closes_the_connection_at_once(compass_server: StandInServer) -> None:
    compass_server.enqueue(Scenario(delay=5))
    pg = Playground()
    pg.message.value = "Hi from a script"
    future = pg.send()
    assert isinstance(future, concurrent.futures.Future)
    deadline = time.monotonic() + 5
    while server_connections(compass_server) != 1:
        assert time.monotonic() < deadline, "the request did not reach the server"
        time.sleep(0.01)
    stopped = time.monotonic()
    pg.stop()
    reply = future.result(timeout=1.0)
    assert time.monotonic() - stopped < 1.0 and server_connections(compass_server) == 0
    assert reply.interrupted and cj.session().messages == []


def test_only_a_client_that_sends_the_same_way_asynchronously_gets_an_async_twin() -> None:
    from compass_jupyter.playground.running import _async_twin

    http = httpx.AsyncClient()
    plain = cj.Client(api_key="k")
    twin = _async_twin(plain, http)
    assert twin is not None and twin is not plain and twin._ahttp is http and plain._ahttp is None
    assert twin.dialect is plain.dialect  # what the server taught one, the other knows

    class OwnChat(cj.Client):
        def chat(self, *args: Any, **kwargs: Any) -> Any:
            return super().chat(*args, **kwargs)

    with httpx.Client() as given:
        assert _async_twin(cj.Client(http_client=given), http) is None
    assert _async_twin(cj.Client(async_http_client=httpx.AsyncClient()), http) is None
    assert _async_twin(OwnChat(), http) is None
