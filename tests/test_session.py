"""Session: history, system message, usage, export/import, the tool loop, compare mode."""

from __future__ import annotations

import json
import struct
import threading
import zlib

import pytest

import compass_jupyter as cj
from compass_jupyter.settings import config
from compass_jupyter.testing import Scenario
from compass_jupyter.turn import TurnObserver


def sent_messages(server) -> list[dict]:
    return server.requests[-1].body["messages"]


def test_chat_extends_the_kernel_session_and_sends_history(compass_server):
    first = cj.chat("Hi, I am Ada")
    second = cj.chat("What is my name?")
    messages = sent_messages(compass_server)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == first.text
    assert cj.session().messages[-1]["content"] == second.text
    assert len(cj.session().turns) == 2


def test_one_system_message_replaced_not_stacked(compass_server):
    cj.chat("Hi", system="Be brief.")
    cj.chat("Again", system="Be verbose.")
    messages = sent_messages(compass_server)
    assert [m for m in messages if m["role"] == "system"] == [{"role": "system", "content": "Be verbose."}]
    assert messages[0]["role"] == "system"
    assert cj.session().system == "Be verbose."


def test_no_history_neither_reads_nor_writes(compass_server):
    cj.chat("Remember this")
    before = list(cj.session().messages)
    cj.chat("Standalone question", history=False)
    assert sent_messages(compass_server) == [{"role": "user", "content": "Standalone question"}]
    assert cj.session().messages == before
    assert len(cj.session().turns) == 2  # its usage still counts


def test_new_conversation_keeps_the_system_message(compass_server):
    cj.chat("Hi", system="You are terse.")
    cj.chat("Fresh start", new=True)
    assert sent_messages(compass_server) == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Fresh start"},
    ]


def test_failed_turn_leaves_history_unchanged(compass_server):
    cj.chat("Hi")
    before = json.dumps(cj.session().to_dict())
    compass_server.enqueue(Scenario(status=400, error_message="nope"))
    with pytest.raises(cj.BadRequestError):
        cj.chat("This fails")
    with pytest.raises(cj.ValidationError):
        cj.chat("This is refused", temperature=-1)
    assert json.dumps(cj.session().to_dict()) == before


def test_broken_stream_is_recorded_incomplete_and_never_resent(compass_server):
    compass_server.enqueue(Scenario(text="alpha beta gamma delta epsilon", drop_after=2))
    with pytest.raises(cj.StreamError) as info:
        cj.chat("Tell me a story")
    partial = info.value.reply.text
    user, assistant = cj.session().messages
    assert user == {"role": "user", "content": "Tell me a story", "incomplete": True}
    assert assistant["incomplete"] is True and assistant["content"] == partial
    cj.chat("Try again")
    assert sent_messages(compass_server) == [{"role": "user", "content": "Try again"}]
    assert "(incomplete)" in cj.session().transcript()


def test_an_observer_stop_event_stops_a_stream_and_keeps_the_partial(compass_server):
    compass_server.delay = 0.02
    cancel = threading.Event()  # what a Stop button sets, from another thread
    pieces = []

    class Observer(TurnObserver):
        def on_delta(self, delta):
            if delta.text:
                pieces.append(delta.text)
                if len(pieces) == 3:
                    cancel.set()

        def cancelled(self):
            return cancel.is_set()

    reply = cj.chat("Write a long answer about many things", observer=Observer())
    assert reply.interrupted and reply.incomplete
    # the piece that arrived with the cancel check is kept too: nothing received is dropped
    assert reply.text.startswith("".join(pieces)) and len(reply.text) > len("".join(pieces))
    assert len(compass_server.requests) == 1
    full = cj.Client().chat([{"role": "user", "content": "Write a long answer about many things"}]).text
    assert len(reply.text) < len(full)
    assert cj.session().messages[-1]["interrupted"] is True


def test_usage_totals_add_up(compass_server):
    a = cj.chat("One")
    b = cj.chat("Two")
    assert cj.session().usage.total_tokens == a.usage.total_tokens + b.usage.total_tokens


def test_export_import_round_trip_without_the_key(compass_server, tmp_path):
    cj.chat("Hi", system="Be kind.")
    cj.chat("More")
    path = cj.session().export(tmp_path / "conv.json")
    text = path.read_text()
    assert compass_server.key not in text
    saved = cj.session().to_dict()
    cj.session().reset(keep_system=False)
    assert cj.session().messages == []
    cj.session().load(path)
    assert cj.session().to_dict() == saved
    cj.chat("Continue")
    assert sent_messages(compass_server)[0] == {"role": "system", "content": "Be kind."}
    assert len(sent_messages(compass_server)) == 6


def test_import_of_a_wrong_file_changes_nothing(compass_server, tmp_path):
    cj.chat("Hi")
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    before = cj.session().to_dict()
    with pytest.raises(cj.ConfigError, match="not a compass-jupyter conversation"):
        cj.session().load(bad)
    assert cj.session().to_dict() == before


# -- tools -----------------------------------------------------------------------------------


def get_weather(city: str) -> dict:
    """Current weather for a city.

    Args:
        city: The city name, e.g. Paris.
    """
    return {"city": city, "temp_c": 21}


def get_time(city: str) -> str:
    """Local time in a city."""
    return "12:00"


def explode(city: str) -> str:
    """A tool that fails."""
    raise ValueError(f"no data for {city}")


@pytest.mark.parametrize("stream", [True, False])
def test_tool_loop_runs_parallel_calls_and_records_in_api_order(compass_server, stream):
    reply = cj.chat("Use get_weather and get_time for Paris", tools=[get_weather, get_time], stream=stream)
    assert reply.finish_reason == "stop"
    assert [c.name for c in reply.tool_calls] == ["get_weather", "get_time"]
    assert reply.tool_calls[0].result == {"city": "Paris", "temp_c": 21}
    roles = [m["role"] for m in cj.session().messages]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]
    assistant_calls = cj.session().messages[1]["tool_calls"]
    tool_ids = [m["tool_call_id"] for m in cj.session().messages[2:4]]
    assert tool_ids == [c["id"] for c in assistant_calls]
    # the second request carried the tool results back
    second = compass_server.requests[-1].body
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool", "tool"]
    assert json.loads(second["messages"][2]["content"]) == {"city": "Paris", "temp_c": 21}
    assert second["tools"][0]["function"]["name"] == "get_weather"


def test_a_tool_that_raises_goes_back_as_an_error_result(compass_server):
    reply = cj.chat("Call explode for Paris", tools=[explode])
    call = reply.tool_calls[0]
    assert call.error and "no data for Paris" in call.error
    sent = compass_server.requests[-1].body["messages"][-1]
    assert sent["role"] == "tool" and "no data for Paris" in sent["content"]


def test_tool_rounds_are_bounded_and_leave_history_unchanged(compass_server):
    config.set("max_tool_rounds", 2)
    compass_server.enqueue(Scenario(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}], times=10))
    with pytest.raises(cj.ToolError, match="max_tool_rounds"):
        cj.chat("Loop forever", tools=[get_weather])
    assert cj.session().messages == []
    assert len(compass_server.requests) == 3


def test_named_tool_choice_is_sent_then_relaxed(compass_server):
    cj.chat(
        "Weather in Rome please",
        tools=[get_weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    first, second = compass_server.requests[-2:]
    assert first.body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert second.body["tool_choice"] == "auto"


# -- media -------------------------------------------------------------------------------------


def _png(path, size=(2, 2)):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * size[0] for _ in range(size[1]))
    ihdr = struct.pack(">IIBBBBB", size[0], size[1], 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )
    return path


def test_local_image_goes_as_a_data_url(compass_server, tmp_path):
    image = _png(tmp_path / "red.png")
    reply = cj.chat("What is this?", images=[str(image)])
    parts = sent_messages(compass_server)[-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "1 image" in reply.text


def test_too_large_image_is_refused_before_sending(compass_server, tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (8 * 1024 * 1024))
    with pytest.raises(cj.ValidationError, match="8 MiB"):
        cj.chat("Look", images=[str(big)])
    assert compass_server.requests == []
    assert cj.session().messages == []


# -- compare -------------------------------------------------------------------------------------


def test_compare_sends_to_every_model_and_keeps_the_first(compass_server):
    replies = cj.session().compare("Same question", models=["gpt-4o", "gpt-4.1", "o3"])
    assert sorted(r.body["model"] for r in compass_server.requests) == ["gpt-4.1", "gpt-4o", "o3"]
    assert [r.model for r in replies] == ["gpt-4o", "gpt-4.1", "o3"]
    assert cj.session().messages[-1]["content"] == replies[0].text
    assert len(cj.session().turns) == 3


def test_compare_pick_keeps_another_reply(compass_server):
    replies = cj.session().compare("Same question", models=["gpt-4o", "gpt-4.1"], pick=1)
    assert cj.session().messages[-1]["content"] == replies[1].text


# -- an imported file is input too: it must not poison the session --------------------------------


@pytest.mark.parametrize(
    "messages, named",
    [
        ([{"role": "user", "content": {"a": 1}}], "neither text nor a list of parts"),
        ([{"role": "assistant", "content": 5}], "neither text nor a list of parts"),
        ([{"role": "user"}], "has no content"),
        ([{"role": "assistant", "content": [{"type": "text", "text": "x"}]}], "content parts"),
        ([{"role": "assistant", "content": None, "tool_calls": [{"function": {"name": 3}}]}], "tool call"),
        ([{"role": "wizard", "content": "x"}], "no valid role"),
    ],
)
def test_an_import_with_messages_that_could_not_be_sent_again_is_refused_whole(tmp_path, messages, named):
    session = cj.Session()
    session.messages = [{"role": "user", "content": "kept"}]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps({"format": "compass-jupyter/conversation", "messages": messages}))
    with pytest.raises(cj.ConfigError, match=named):
        session.load(path)
    assert session.messages == [{"role": "user", "content": "kept"}]


def test_an_import_that_is_not_text_or_too_deep_is_a_clear_error(tmp_path):
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xd6\xff\x00" * 10)
    with pytest.raises(cj.ConfigError, match="not UTF-8"):
        cj.Session().load(binary)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(cj.ConfigError, match="nested too deeply|not JSON"):
        cj.Session().load(deep)


def test_turns_of_the_wrong_shape_are_read_as_not_reported(tmp_path):
    path = tmp_path / "turns.json"
    turns = [{"usage": {"prompt_tokens": "x", "completion_tokens": 4, "bogus": 1}, "ttft": "fast"}, {"model": 5}]
    path.write_text(json.dumps({"format": "compass-jupyter/conversation", "messages": [], "turns": turns}))
    session = cj.Session().load(path)
    assert [t.model for t in session.turns] == [None, None]
    assert session.turns[0].usage.prompt_tokens is None and session.turns[0].usage.completion_tokens == 4
    assert session.usage.completion_tokens == 4
