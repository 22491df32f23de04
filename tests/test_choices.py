"""Several choices from a server that gives one per request (llama.cpp's), and what the local dialect says.

Through the stand-in server and real sockets, with the local model's dialect in
front of it (the stand-in knows ``gpt-4o``, so that is the id the dialect names):
``n`` becomes n requests with successive seeds, merged into one reply that
streams each choice as it arrives; the store and cassettes see the request as
asked. The dialect's rewrites and one-line notices are checked on bodies alone.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

import pytest

import compass_jupyter as cj
from compass_jupyter.dialect import Dialect, choice_seeds
from compass_jupyter.local_model.dialect import LlamaCppDialect
from compass_jupyter.request import build_body
from compass_jupyter.settings import config
from compass_jupyter.store.exchanges import forget_cassettes
from compass_jupyter.store.search import search
from compass_jupyter.stream import Delta
from compass_jupyter.testing import Scenario, StandInServer

HI = [{"role": "user", "content": "Write a slogan for a bakery."}]


@pytest.fixture
def local_like(compass_server):
    """A client in the local model's dialect, talking to the stand-in (which knows gpt-4o)."""
    with cj.Client(dialect=LlamaCppDialect(model_id="gpt-4o"), backoff=0.01) as client:
        yield client


def test_n_choices_are_n_requests_with_successive_seeds_streamed_into_one_reply(compass_server, local_like):
    compass_server.enqueue(Scenario(text="Fresh every morning."), Scenario(text="Bread you can trust."))
    deltas: list[Delta] = []
    with pytest.warns(cj.CompassWarning, match=r"2 choices are 2 requests with seeds 7, 8"):
        reply = local_like.chat(HI, n=2, random_seed=7, temperature=0.8, on_delta=deltas.append)
    sent = [r.body for r in compass_server.requests]
    assert [b["seed"] for b in sent] == [7, 8] and all("n" not in b for b in sent)
    assert [c.index for c in reply.choices] == [0, 1]
    assert [c.text for c in reply.choices] == ["Fresh every morning.", "Bread you can trust."]
    assert all(c.finish_reason == "stop" for c in reply.choices)
    # Both choices streamed, one after the other, into the same reply object the views watch.
    streamed = [d.choice for d in deltas if d.text]
    assert streamed.count(0) > 1 and streamed.count(1) > 1 and streamed == sorted(streamed)
    assert {id(d.reply) for d in deltas} == {id(reply)}
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.request["n"] == 2  # the reply answers the request that was asked
    assert (
        reply.notices.count(
            "This server gives one choice per request, so the 2 choices are 2 requests with seeds 7, 8."
        )
        == 1
    )
    assert reply.latency.ttft is not None and reply.latency.total >= reply.latency.ttft


def test_without_a_seed_the_choices_use_fixed_seeds_so_they_repeat(compass_server, local_like):
    with pytest.warns(cj.CompassWarning, match="seeds 0, 1, 2"):
        reply = local_like.chat(HI, n=3, stream=False)
    assert [r.body["seed"] for r in compass_server.requests] == [0, 1, 2]
    assert [c.index for c in reply.choices] == [0, 1, 2] and all(c.text for c in reply.choices)
    assert choice_seeds({"seed": 41}, 2) == [41, 42] and choice_seeds({}, 2) == [0, 1]


def test_not_streamed_each_choice_arrives_whole_once(compass_server, local_like):
    compass_server.enqueue(Scenario(text="One."), Scenario(text="Two."))
    deltas: list[Delta] = []
    with pytest.warns(cj.CompassWarning):
        reply = local_like.chat(HI, n=2, random_seed=3, stream=False, on_delta=deltas.append)
    assert [(d.choice, d.text) for d in deltas] == [(0, "One."), (1, "Two.")]
    assert [c.text for c in reply.choices] == ["One.", "Two."]
    assert len(compass_server.requests) == 2 and reply.usage.total_tokens > 0


def test_achat_splits_the_same_way(compass_server, local_like):
    compass_server.enqueue(Scenario(text="A."), Scenario(text="B."))

    async def main() -> cj.Reply:
        with pytest.warns(cj.CompassWarning):
            return await local_like.achat(HI, n=2, random_seed=5)

    reply = asyncio.run(main())
    assert [c.text for c in reply.choices] == ["A.", "B."]
    assert [r.body["seed"] for r in compass_server.requests] == [5, 6]


def test_a_server_that_gives_n_gets_one_request(compass_server):
    reply = cj.Client().chat(HI, n=2, random_seed=5)
    assert len(compass_server.requests) == 1 and compass_server.requests[0].body["n"] == 2
    assert len(reply.choices) == 2


def test_an_error_in_a_later_choice_carries_the_choices_before_it(compass_server, local_like):
    compass_server.enqueue(Scenario(text="Kept."), Scenario(status=400, error_message="no more"))
    with pytest.warns(cj.CompassWarning), pytest.raises(cj.BadRequestError, match="no more") as caught:
        local_like.chat(HI, n=2)
    partial = caught.value.reply
    assert partial is not None and partial.incomplete and partial.choices[0].text == "Kept."


def test_a_stream_that_breaks_off_in_a_choice_keeps_what_arrived(compass_server, local_like):
    compass_server.enqueue(Scenario(text="Whole one."), Scenario(text="one two three four five", drop_after=3))
    with pytest.warns(cj.CompassWarning), pytest.raises(cj.StreamError) as caught:
        local_like.chat(HI, n=2)
    partial = caught.value.reply
    assert caught.value.broke_off and partial.incomplete
    assert partial.choices[0].text == "Whole one." and partial.choices[1].text


def test_an_interrupt_in_a_later_choice_carries_the_merged_reply(compass_server, local_like):
    def interrupt(delta: Delta) -> None:
        if delta.choice == 1 and delta.text:
            raise KeyboardInterrupt  # Ctrl-C while the second choice streams

    with pytest.warns(cj.CompassWarning), pytest.raises(KeyboardInterrupt) as caught:
        local_like.chat(HI, n=2, on_delta=interrupt)
    partial = caught.value.reply  # type: ignore[attr-defined]
    assert partial.interrupted and partial.incomplete
    assert partial.choices[0].finish_reason == "stop" and partial.choices[1].text
    assert partial.usage is not None and partial.usage.completion_tokens > 0


def test_a_view_that_stops_the_turn_gets_the_merged_reply_so_far(compass_server):
    from compass_jupyter.turn import Cancelled, TurnObserver

    class StopInTheSecond(TurnObserver):
        """A Stop button pressed once the second choice has begun to arrive."""

        second = False

        def cancelled(self) -> bool:
            return self.second

        def on_delta(self, delta: Delta) -> None:
            self.second = delta.choice == 1

    session = cj.Session(cj.Client(dialect=LlamaCppDialect(model_id="gpt-4o")))
    with pytest.warns(cj.CompassWarning):
        reply = session.chat("Hi", n=2, observer=StopInTheSecond())
    assert reply.interrupted and reply.incomplete
    assert reply.choices[0].finish_reason == "stop" and reply.choices[1].text and not reply.choices[1].finish_reason
    assert session.messages[-1]["interrupted"] and Cancelled is not None


def test_the_store_keeps_one_exchange_for_the_request_that_was_asked(compass_server, local_like):
    with pytest.warns(cj.CompassWarning):
        reply = local_like.chat(HI, n=2, random_seed=7)
    rows = search(n=5)
    assert len(rows) == 1 and len(compass_server.requests) == 2
    assert json.loads(rows[0]["request"])["n"] == 2
    assert rows[0]["completion_tokens"] == reply.usage.completion_tokens


def test_a_cassette_recorded_by_choices_replays_for_a_server_that_gives_n(tmp_path, monkeypatch):
    """Recorded against a one-choice server, replayed by a client of any other: the request as asked."""
    path = tmp_path / "choices.json"
    forget_cassettes()
    config.set("cassette", str(path))
    config.set("cassette_mode", "record")
    with StandInServer() as server:
        server.enqueue(Scenario(text="Left."), Scenario(text="Right."))
        client = cj.Client(base_url=server.base_url, api_key=server.key, dialect=LlamaCppDialect(model_id="gpt-4o"))
        with pytest.warns(cj.CompassWarning):
            recorded = client.chat(HI, n=2, random_seed=7, model="gpt-4o")
    forget_cassettes()
    interactions = json.loads(path.read_text())["interactions"]
    assert len(interactions) == 1 and interactions[0]["request"]["body"]["n"] == 2
    config.set("cassette_mode", "replay")
    monkeypatch.delenv("COMPASS_API_KEY", raising=False)
    for replaying in (cj.Client(), cj.Client(dialect=LlamaCppDialect(model_id="gpt-4o"))):
        seen: list[Delta] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cj.CompassWarning)  # the one-choice server's line, with no server
            replayed = replaying.chat(HI, n=2, random_seed=7, model="gpt-4o", on_delta=seen.append)
        assert [c.text for c in replayed.choices] == [c.text for c in recorded.choices] == ["Left.", "Right."]
        assert replayed.source == "cassette" and {0, 1} <= {d.choice for d in seen}
    forget_cassettes()


# -- the local dialect: what it does instead, and the line that says so -----------------------------

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
CLIP = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


def weather_tool(name: str = "get_weather") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}


def adapted(**fields: Any) -> tuple[dict[str, Any], list[str]]:
    messages = fields.pop("messages", [{"role": "user", "content": "Hi"}])
    model = fields.pop("model", "smollm2-135m-instruct")
    body, _ = build_body(model=model, messages=messages, stream=True, fields=fields)
    dialect = LlamaCppDialect()
    return dialect.adapt(body), dialect.notices(body)


def test_images_and_audio_are_left_out_and_the_text_sent_alone():
    body, notices = adapted(
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is it?"}, IMAGE, CLIP]}]
    )
    assert body["messages"][0]["content"] == "What is it?"
    assert [n.split(":")[0] for n in notices] == [
        "The local model cannot see images",
        "The local model cannot hear audio",
    ]
    alone, _ = adapted(messages=[{"role": "user", "content": [IMAGE]}])
    assert alone["messages"][0]["content"] == "[image]"  # something to answer, that says what was there


def test_a_spoken_reply_and_documents_are_dropped_with_a_line_each():
    body, notices = adapted(
        model="gpt-4o-audio-preview",
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "pcm16"},
    )
    assert "modalities" not in body and "audio" not in body
    assert any("cannot speak" in n for n in notices)
    assert any("whichever model is named" in n for n in notices)
    body, notices = adapted(documents=["The bakery opens at seven."])
    assert "documents" not in body and any("does not read documents" in n for n in notices)


def test_one_tool_is_named_until_its_result_is_back():
    body, notices = adapted(tools=[weather_tool()])
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert any("told to call get_weather" in n for n in notices)
    required, quiet = adapted(tools=[weather_tool()], tool_choice="required")
    assert required["tool_choice"]["function"]["name"] == "get_weather" and quiet == []  # the same thing
    turn = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "{}"},
    ]
    answering, said = adapted(messages=turn, tools=[weather_tool()], tool_choice="auto")
    assert answering["tool_choice"] == "auto" and said == []  # now it answers in text: no endless loop


def test_several_tools_without_a_name_answer_in_text_and_say_why():
    body, notices = adapted(tools=[weather_tool(), weather_tool("get_time")])
    assert "tool_choice" not in body
    assert notices == [
        "The local model calls a tool only when it is named (--tool-choice NAME) or is the only one offered, "
        "so it answers in text; Compass models choose among get_weather, get_time themselves."
    ]
    named, said = adapted(
        tools=[weather_tool(), weather_tool("get_time")],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert named["tool_choice"]["function"]["name"] == "get_time" and said == []


def test_the_local_model_says_nothing_when_it_does_what_was_asked():
    body, notices = adapted(temperature=0, random_seed=7)
    assert notices == [] and body["seed"] == 7 and body["model"] == "smollm2-135m-instruct"


def test_the_default_dialect_splits_nothing_and_says_nothing():
    body, _ = build_body(model="gpt-4o", messages=HI, stream=True, fields={"n": 4})
    assert Dialect().notices(body) == [] and Dialect.max_choices is None and Dialect.sole_model is None
