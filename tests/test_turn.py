"""A turn's controls apart from its request fields, and the observer protocol, through real sockets."""

from __future__ import annotations

import dataclasses
import threading

import pytest

import compass_jupyter as cj
from compass_jupyter.magics.options import _NOT_PARAMS, parse
from compass_jupyter.reply import Reply, ToolCall
from compass_jupyter.stream import Delta
from compass_jupyter.turn import CompareControls, CompareObserver, TurnControls, TurnObserver, not_request_fields

LONG_ASK = "Write a long answer about many things"


# -- the split -------------------------------------------------------------------------------------


def test_split_sends_controls_and_fields_apart():
    controls, fields = TurnControls.split(
        {"model": "gpt-4o", "history": False, "temperature": 0.2, "logprobs": True, "extra_body": {"x": 1}}
    )
    assert isinstance(controls, TurnControls)
    assert (controls.model, controls.history, controls.extra_body) == ("gpt-4o", False, {"x": 1})
    assert controls.stream is True and controls.tools is None  # the defaults of an unnamed control
    assert fields == {"temperature": 0.2, "logprobs": True}


def test_compare_controls_add_models_and_pick_to_the_turn_controls():
    controls, fields = CompareControls.split({"models": ["a", "b"], "pick": 1, "system": "Be brief.", "top_p": 0.5})
    assert (controls.models, controls.pick, controls.system) == (["a", "b"], 1, "Be brief.")
    assert fields == {"top_p": 0.5}
    # Compare mode's own names are not controls of one turn: Session.chat hands them to the request.
    assert TurnControls.split({"models": ["a", "b"]})[1] == {"models": ["a", "b"]}


def test_control_names_never_reach_the_request_body(compass_server):
    cj.chat("Hi", model="gpt-4.1", system="Be brief.", name="ada", stream=False, temperature=0, random_seed=7)
    body = compass_server.requests[-1].body
    assert body["model"] == "gpt-4.1" and body["stream"] is False
    assert body["temperature"] == 0 and body["random_seed"] == 7
    assert not {"system", "name", "history", "new", "client", "images", "audio_in", "extra_body"} & set(body)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi", "name": "ada"},
    ]


def test_an_unknown_name_is_refused_by_the_request_with_its_suggestion(compass_server):
    with pytest.raises(cj.ValidationError, match=r"Unknown request field 'seed'.*random_seed"):
        cj.chat("Hi", seed=7)
    assert compass_server.requests == [] and cj.session().messages == []


def test_param_refuses_every_control_from_the_same_place():
    controls = {f.name for f in dataclasses.fields(CompareControls)}
    # tools is a control (callables are run) and a request field (tool dicts): --param may set it.
    assert controls - {"tools"} <= set(_NOT_PARAMS)
    assert _NOT_PARAMS == not_request_fields()
    with pytest.raises(cj.ValidationError, match="--param cannot set 'history': use --no-history"):
        parse("--param history=false")
    with pytest.raises(cj.ValidationError, match="--param cannot set 'observer'"):
        parse("--param observer=1")
    tool = '[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]'
    assert parse(f"--param tools='{tool}'").kwargs["tools"][0]["function"]["name"] == "f"


# -- one observer ----------------------------------------------------------------------------------


class StopAfter(TurnObserver):
    """Asks the engine to stop once ``pieces`` pieces of text arrived."""

    def __init__(self, pieces: int) -> None:
        self.pieces: list[str] = []
        self.limit = pieces
        self.asked = 0

    def on_delta(self, delta: Delta) -> None:
        assert not self.cancelled(), "no delta after the observer asked to stop"
        if delta.text:
            self.pieces.append(delta.text)

    def cancelled(self) -> bool:
        self.asked += 1
        return len(self.pieces) >= self.limit


def test_cancelled_stops_the_stream_and_keeps_the_partial_reply(compass_server):
    cj.chat("Hi")
    compass_server.delay = 0.02
    observer = StopAfter(3)
    reply = cj.chat(LONG_ASK, observer=observer)
    assert reply.interrupted and reply.incomplete
    assert observer.asked > 3, "asked between chunks"
    # The chunk that came with the stop is kept too: nothing received is dropped.
    assert reply.text.startswith("".join(observer.pieces)) and len(reply.text) > len("".join(observer.pieces))
    assert len(compass_server.requests) == 2
    compass_server.delay = 0.0
    full = cj.Client().chat([{"role": "user", "content": LONG_ASK}]).text
    assert len(reply.text) < len(full)
    # The history records the turn as interrupted; it is never sent again.
    user, partial = cj.session().messages[-2:]
    assert user == {"role": "user", "content": LONG_ASK, "incomplete": True}
    assert partial["content"] == reply.text and partial["incomplete"] is True and partial["interrupted"] is True
    assert cj.session().turns[-1].interrupted
    cj.chat("Next")
    assert [m["content"] for m in compass_server.requests[-1].body["messages"]][-1] == "Next"
    assert LONG_ASK not in str(compass_server.requests[-1].body["messages"])


def test_an_observer_that_overrides_only_on_delta_sees_every_piece(compass_server):
    seen: list[str] = []

    class Printer(TurnObserver):
        def on_delta(self, delta: Delta) -> None:
            seen.append(delta.text)

    reply = cj.chat("Hi", observer=Printer())
    assert "".join(seen) == reply.text and not reply.incomplete


def get_weather(city: str) -> dict:
    """Current weather for a city."""
    return {"city": city, "temp_c": 21}


def test_the_tool_loop_reports_rounds_and_tool_results(compass_server):
    events: list[tuple[str, object]] = []

    class Watcher(TurnObserver):
        def on_round(self, reply: Reply) -> None:
            events.append(("round", [c.name for c in reply.tool_calls]))

        def on_tool(self, call: ToolCall) -> None:
            events.append(("tool", call.result))

    reply = cj.chat("Use get_weather for Paris", tools=[get_weather], observer=Watcher())
    assert events == [("round", ["get_weather"]), ("tool", {"city": "Paris", "temp_c": 21})]
    assert reply.finish_reason == "stop" and len(reply.steps) == 1


def test_a_stop_during_the_tool_loop_keeps_what_arrived(compass_server):
    class StopAfterTheTool(TurnObserver):
        ran = False

        def on_tool(self, call: ToolCall) -> None:
            self.ran = True

        def cancelled(self) -> bool:
            return self.ran

    reply = cj.chat("Use get_weather for Paris", tools=[get_weather], observer=StopAfterTheTool())
    assert reply.interrupted and reply.incomplete
    assert len(compass_server.requests) == 2


# -- compare mode --------------------------------------------------------------------------------


class Columns(CompareObserver):
    def __init__(self, stop_after: int | None = None) -> None:
        self.texts: dict[str, list[str]] = {}
        self.polled_on: set[str] = set()
        self.stop_after = stop_after
        self.lock = threading.Lock()

    def observer(self, model: str) -> TurnObserver:
        texts = self.texts.setdefault(model, [])
        lock = self.lock

        class Column(TurnObserver):
            def on_delta(self, delta: Delta) -> None:
                with lock:
                    texts.append(delta.text)

        return Column()

    def poll(self) -> None:
        self.polled_on.add(threading.current_thread().name)

    def cancelled(self) -> bool:
        with self.lock:
            return self.stop_after is not None and all(len(t) >= self.stop_after for t in self.texts.values())


def test_compare_gives_each_model_its_observer_and_polls_on_the_caller_thread(compass_server):
    columns = Columns()
    compass_server.delay = 0.01
    replies = cj.session().compare("Same question", models=["gpt-4o", "gpt-4.1"], observer=columns)
    assert {m: "".join(t) for m, t in columns.texts.items()} == {"gpt-4o": replies[0].text, "gpt-4.1": replies[1].text}
    assert columns.polled_on == {threading.current_thread().name}


def test_compare_cancelled_keeps_every_partial_reply(compass_server):
    compass_server.delay = 0.02
    columns = Columns(stop_after=3)
    replies = cj.session().compare(LONG_ASK, models=["gpt-4o", "gpt-4.1"], observer=columns)
    assert all(r.interrupted and r.incomplete and r.text for r in replies)
    user, kept = cj.session().messages
    assert user["incomplete"] is True and kept["interrupted"] is True and kept["content"] == replies[0].text


# -- one way to watch a turn ----------------------------------------------------------------------


def test_callbacks_are_not_a_second_way_to_watch_a_turn(compass_server):
    # on_delta=/cancel= are neither controls nor documented fields: refused before sending.
    with pytest.raises(cj.ValidationError, match="on_delta is not a request field: .*observer="):
        cj.chat("Hi", on_delta=print)
    with pytest.raises(cj.ValidationError, match="Unknown request field 'cancel'"):
        cj.chat("Hi", cancel=True)
    with pytest.raises(cj.ValidationError, match="messages is not a request field here"):
        cj.chat("Hi", messages=[{"role": "user", "content": "Hi"}])
    assert compass_server.requests == [] and cj.session().messages == []


# -- the live views are observers ------------------------------------------------------------------


def test_the_plain_views_are_observers_that_stop(compass_server):
    from compass_jupyter.views.plain import PlainCompareView, PlainLiveView

    class StopEarly(PlainLiveView):
        def on_delta(self, delta: Delta) -> None:
            super().on_delta(delta)
            if len(delta.reply.text) > 20:
                self.stop()

    compass_server.delay = 0.02
    view = StopEarly(live=False)
    reply = cj.chat(LONG_ASK, observer=view)
    assert view.cancelled() and reply.interrupted and view.reply is reply
    compare = PlainCompareView(["a", "b"], live=False)
    assert isinstance(compare.observer("a"), TurnObserver) and not compare.cancelled()
    compare.stop()
    assert compare.cancelled()
