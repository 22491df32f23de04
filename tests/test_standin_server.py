"""The stand-in Compass server, checked on the wire with plain httpx.

Everything here goes through real loopback sockets; the assertions are about
what a client (ours or a user's) would see.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import warnings
import wave
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compass_jupyter.testing import DEFAULT_MODELS, ExposedServerWarning, RecordedRequest, Scenario, StandInServer
from compass_jupyter.testing.guard import is_loopback_host

pytest_plugins = ["pytester"]

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello, how is the weather in Paris today?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["location"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "exact": {"type": "boolean"}},
            "required": ["city", "exact"],
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer() as running:
        yield running


@pytest.fixture
def client(server: StandInServer) -> Iterator[httpx.Client]:
    server.reset()
    server.delay = 0.0
    with httpx.Client(base_url=server.base_url, headers={"api-key": server.key}, timeout=10) as c:
        yield c


def chat(client: httpx.Client, **body: Any) -> httpx.Response:
    body.setdefault("model", "gpt-4o")
    body.setdefault("messages", HELLO)
    return client.post(CHAT, json=body)


def sse_data(raw: bytes) -> list[str]:
    """The data fields of an SSE body, parsed by the spec (CRLF, no space, comments)."""
    text = raw.decode("utf-8").replace("\r\n", "\n")
    events = []
    for block in text.split("\n\n"):
        lines = [line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")]
        if lines:
            events.append("\n".join(lines))
    return events


def stream(client: httpx.Client, **body: Any) -> list[Any]:
    """The events of a streamed reply: parsed chunks, and the string "[DONE]"."""
    response = chat(client, stream=True, **body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    return [d if d == "[DONE]" else json.loads(d) for d in sse_data(response.content)]


def deltas(events: list[Any], index: int = 0) -> list[dict[str, Any]]:
    return [
        choice["delta"]
        for event in events
        if isinstance(event, dict)
        for choice in event["choices"]
        if choice["index"] == index
    ]


def streamed_text(events: list[Any], index: int = 0) -> str:
    return "".join(d.get("content") or "" for d in deltas(events, index))


def assemble_tool_calls(events: list[Any]) -> dict[int, dict[str, Any]]:
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas(events):
        for fragment in delta.get("tool_calls", []):
            call = calls.setdefault(fragment["index"], {"fragments": [], "arguments": ""})
            call["fragments"].append(fragment)
            call["arguments"] += fragment.get("function", {}).get("arguments", "")
    return calls


# --------------------------------------------------------------------------- routes and auth


def test_openai_route_answers_in_the_documented_shape(client: httpx.Client) -> None:
    response = chat(client)
    assert response.status_code == 200
    data = response.json()
    assert set(data) == {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
    assert data["id"].startswith("chatcmpl-") and data["object"] == "chat.completion"
    assert data["model"] == "gpt-4o"
    (choice,) = data["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop" and choice["logprobs"] is None
    message = choice["message"]
    assert message["role"] == "assistant" and message["refusal"] is None
    assert message["content"] == "Stand-in gpt-4o here. You said: “Hello, how is the weather in Paris today?”"
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == len(message["content"].split())
    assert set(usage["completion_tokens_details"]) == {
        "reasoning_tokens",
        "audio_tokens",
        "accepted_prediction_tokens",
        "rejected_prediction_tokens",
    }
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}


def test_azure_route_takes_the_model_from_the_deployment(client: httpx.Client) -> None:
    path = "/openai/deployments/gpt-4.1/chat/completions"
    body = {"model": "ignored-here", "messages": HELLO}
    response = client.post(path, params={"api-version": "2024-11-01-preview"}, json=body)
    assert response.status_code == 200
    assert response.json()["model"] == "gpt-4.1"
    assert "Stand-in gpt-4.1 here." in response.json()["choices"][0]["message"]["content"]

    missing = client.post(path, json=body)
    assert missing.status_code == 400
    assert "api-version" in missing.json()["error"]["message"]


def test_unknown_path_is_a_json_404_that_names_the_routes(client: httpx.Client) -> None:
    response = client.post("/v1/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 404
    assert "/v1/chat/completions" in response.json()["error"]["message"]


def test_wrong_or_missing_key_is_401_without_echoing_it(server: StandInServer) -> None:
    body = {"model": "gpt-4o", "messages": HELLO}
    wrong = httpx.post(server.base_url + CHAT, json=body, headers={"api-key": "sk-wrong-secret-9876"})
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": {
            "code": "401",
            "message": "Access denied due to invalid subscription key. Make sure to provide a valid "
            "key for an active subscription.",
        }
    }
    assert b"9876" not in wrong.content and not any("9876" in v for v in wrong.headers.values())
    assert httpx.post(server.base_url + CHAT, json=body).status_code == 401


def test_an_empty_key_turns_the_check_off() -> None:
    with StandInServer(key="") as open_server:
        response = httpx.post(open_server.base_url + CHAT, json={"model": "gpt-4o", "messages": HELLO})
    assert response.status_code == 200


def test_unknown_model_is_a_deployment_not_found_naming_it(client: httpx.Client) -> None:
    response = chat(client, model="gpt-9-turbo")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "DeploymentNotFound"
    assert "gpt-9-turbo" in response.json()["error"]["message"]
    azure = client.post(
        "/openai/deployments/nope/chat/completions", params={"api-version": "x"}, json={"messages": HELLO}
    )
    assert azure.status_code == 404 and "'nope'" in azure.json()["error"]["message"]


def test_the_model_list_can_be_narrowed_and_covers_the_reference() -> None:
    assert len(DEFAULT_MODELS) == 27 and "cohere-command-r-08-2024" in DEFAULT_MODELS
    with StandInServer(key="", models=["only-this"]) as narrow:
        url = narrow.base_url + CHAT
        assert httpx.post(url, json={"model": "only-this", "messages": HELLO}).status_code == 200
        assert httpx.post(url, json={"model": "gpt-4o", "messages": HELLO}).status_code == 404


# --------------------------------------------------------------------------- body checks


B64 = base64.b64encode(b"\x89PNG\r\n" + bytes(200)).decode()
AUDIO_WAV = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}
AUDIO_MP3 = {**AUDIO_WAV, "audio": {"voice": "alloy", "format": "mp3"}}


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    """A body field ``messages`` with one user message made of these content parts."""
    return {"messages": [{"role": "user", "content": list(parts)}]}


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize(
    ("body", "param", "says"),
    [
        ({"messages": []}, "messages", "messages"),
        ({"messages": None}, "messages", "messages"),
        ({"temperature": 2.5}, "temperature", "2.5"),
        ({"top_p": 1.5}, "top_p", "1.5"),
        ({"top_logprobs": 3}, "top_logprobs", "logprobs"),
        ({"n": 0}, "n", "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"stream": True, **AUDIO_WAV}, "audio.format", "pcm16"),
        (AUDIO_MP3, "audio.format", "only produces 'wav' and 'pcm16'"),
        ({"tool_choice": "auto"}, "tool_choice", "tools"),
        (user(image("data:image/png;base64,@@")), "messages[0].content[0].image_url.url", "base64"),
        (user(image("file:///x.png")), "messages[0].content[0].image_url.url", "data:image"),
        (
            user({"type": "input_audio", "input_audio": {"data": "###", "format": "wav"}}),
            "messages[0].content[0].input_audio.data",
            "base64",
        ),
        (
            {"messages": [*HELLO, {"role": "tool", "tool_call_id": "call_1", "content": "21"}]},
            "messages[1].role",
            "tool_calls",
        ),
    ],
)
def test_bad_bodies_are_refused_like_a_real_server(
    client: httpx.Client, body: dict[str, Any], param: str, says: str
) -> None:
    response = chat(client, **body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in error["message"]


def test_unanswered_tool_calls_are_refused(client: httpx.Client) -> None:
    call = {"id": "call_a", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "well?"},
    ]
    response = chat(client, messages=messages, tools=[TIME_TOOL])
    assert response.status_code == 400 and "call_a" in response.json()["error"]["message"]


def test_invalid_json_is_a_400(client: httpx.Client) -> None:
    response = client.post(CHAT, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


# --------------------------------------------------------------------------- determinism and text


def test_the_same_body_gives_the_same_bytes_and_another_body_another_id(client: httpx.Client) -> None:
    body = {"model": "gpt-4o", "messages": HELLO, "temperature": 0.7, "n": 2, "logprobs": True, "top_logprobs": 2}
    first, second = client.post(CHAT, json=body), client.post(CHAT, json=body)
    assert first.content == second.content
    other = chat(client, messages=[{"role": "user", "content": "Something else"}])
    assert other.json()["id"] != first.json()["id"]
    assert stream(client, **body) == stream(client, **body)


def test_temperature_and_seed_vary_the_wording_deterministically(client: httpx.Client) -> None:
    greedy = {chat(client, temperature=0, random_seed=s).json()["choices"][0]["message"]["content"] for s in range(6)}
    assert len(greedy) == 1
    sampled = {chat(client, temperature=1, random_seed=s).json()["choices"][0]["message"]["content"] for s in range(6)}
    assert len(sampled) > 1
    assert all("You said: “Hello, how is the weather in Paris today?”" in text for text in sampled)


def test_long_user_text_is_echoed_shortened(client: httpx.Client) -> None:
    data = chat(client, messages=[{"role": "user", "content": "word " * 100}]).json()
    text = data["choices"][0]["message"]["content"]
    assert text.endswith("…”") and len(text) < 260


def test_max_tokens_cuts_with_length_and_stop_cuts_with_stop(client: httpx.Client) -> None:
    cut = chat(client, max_tokens=3).json()["choices"][0]
    assert cut["message"]["content"] == "Stand-in gpt-4o here."
    assert cut["finish_reason"] == "length"
    stopped = chat(client, stop=["weather"]).json()["choices"][0]
    assert stopped["message"]["content"] == "Stand-in gpt-4o here. You said: “Hello, how is the "
    assert stopped["finish_reason"] == "stop"
    limited = chat(client, max_completion_tokens=2, stream=True)
    assert "length" in limited.text


def test_n_choices_differ_and_stream_with_their_index(client: httpx.Client) -> None:
    whole = chat(client, n=3).json()["choices"]
    texts = [c["message"]["content"] for c in whole]
    assert [c["index"] for c in whole] == [0, 1, 2]
    assert len(set(texts)) == 3 and texts[1].endswith("(choice 2)")
    events = stream(client, n=3)
    assert [streamed_text(events, i) for i in range(3)] == texts
    finishes = [c["index"] for e in events if isinstance(e, dict) for c in e["choices"] if c["finish_reason"]]
    assert sorted(finishes) == [0, 1, 2]


def test_json_modes_give_parsable_json(client: httpx.Client) -> None:
    plain = json.loads(chat(client, response_format={"type": "json_object"}).json()["choices"][0]["message"]["content"])
    assert plain == {"model": "gpt-4o", "echo": "Hello, how is the weather in Paris today?"}
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "count": {"type": "integer", "minimum": 3},
            "score": {"type": "number"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["a", "b"]},
            "meta": {"type": "object"},
            "optional": {"type": "string"},
        },
        "required": ["city", "count", "score", "ok", "tags", "kind", "meta"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    value = json.loads(chat(client, response_format=fmt).json()["choices"][0]["message"]["content"])
    assert value == {"city": "Paris", "count": 3, "score": 1.5, "ok": True, "tags": ["Paris"], "kind": "a", "meta": {}}


def test_media_parts_are_described(client: httpx.Client) -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64}"}},
        {"type": "input_audio", "input_audio": {"data": B64, "format": "wav"}},
    ]
    data = chat(client, messages=[{"role": "user", "content": content}]).json()
    assert (
        "I received 1 image (image/png, 206 bytes) and 1 audio clip (wav, 206 bytes)."
        in (data["choices"][0]["message"]["content"])
    )
    assert data["usage"]["prompt_tokens_details"]["audio_tokens"] > 0


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(st.characters(exclude_categories=("Cs",)), max_size=60),
    stop=st.lists(st.text(min_size=1, max_size=3), max_size=2),
    max_tokens=st.none() | st.integers(1, 12),
    n=st.integers(1, 2),
)
def test_any_question_streams_exactly_what_the_whole_reply_says(
    server: StandInServer, text: str, stop: list[str], max_tokens: int | None, n: int
) -> None:
    body: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], "n": n}
    if stop:
        body["stop"] = stop
    if max_tokens:
        body["max_tokens"] = max_tokens
    with httpx.Client(base_url=server.base_url, headers={"api-key": server.key}, timeout=10) as c:
        first = c.post(CHAT, json=body)
        assert first.status_code == 200, first.text
        assert c.post(CHAT, json=body).content == first.content
        events = stream(c, **body)
    assert events[-1] == "[DONE]"
    for choice in first.json()["choices"]:
        index = choice["index"]
        assert streamed_text(events, index) == choice["message"]["content"]
        finishes = [c["finish_reason"] for e in events[:-1] for c in e["choices"] if c["index"] == index]
        assert [f for f in finishes if f] == [choice["finish_reason"]]


# --------------------------------------------------------------------------- streaming


def test_stream_events_come_in_order_and_match_the_whole_reply(client: httpx.Client) -> None:
    whole = chat(client).json()
    events = stream(client)
    first, role = events[0], events[1]
    assert first["choices"] == [] and first["prompt_filter_results"]
    assert role["choices"][0]["delta"]["role"] == "assistant"
    tokens = [d["content"] for d in deltas(events)[1:] if d.get("content")]
    text = whole["choices"][0]["message"]["content"]
    assert "".join(tokens) == text and len(tokens) == len(text.split())
    assert events[-2]["choices"][0]["finish_reason"] == "stop"
    assert events[-1] == "[DONE]"
    assert not any("usage" in e and e["usage"] for e in events[:-1])
    assert len({(e["id"], e["created"], e["model"]) for e in events[:-1]}) == 1


def test_usage_chunk_only_when_asked(client: httpx.Client) -> None:
    events = stream(client, stream_options={"include_usage": True})
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == chat(client).json()["usage"]
    assert [e for e in events[:-1] if e.get("usage")] == [usage_chunk]


def test_logprobs_per_token_deterministic_and_ordered(client: httpx.Client) -> None:
    data = chat(client, messages=[{"role": "user", "content": "Say café ☕"}], logprobs=True, top_logprobs=5).json()
    choice = data["choices"][0]
    entries = choice["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    for entry in entries:
        assert bytes(entry["bytes"]).decode("utf-8") == entry["token"]
        assert -3 <= entry["logprob"] <= 0
        top = entry["top_logprobs"]
        assert len(top) == 5 and len({t["token"] for t in top}) == 5
        assert all(-20 <= t["logprob"] <= entry["logprob"] for t in top)  # finite; a real tail goes far below -3
        assert max(top, key=lambda t: t["logprob"])["token"] == entry["token"]
    events = stream(client, messages=[{"role": "user", "content": "Say café ☕"}], logprobs=True, top_logprobs=5)
    streamed = [c["logprobs"]["content"] for e in events if isinstance(e, dict) for c in e["choices"] if c["logprobs"]]
    assert all(len(s) == 1 for s in streamed)
    assert [s[0] for s in streamed] == entries


# --------------------------------------------------------------------------- tools


def test_a_mentioned_tool_is_called_and_streamed_in_pieces(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "Please use get_current_weather: how warm is it in San Francisco?"}]
    events = stream(client, messages=messages, tools=[WEATHER_TOOL])
    calls = assemble_tool_calls(events)
    assert list(calls) == [0]
    fragments = calls[0]["fragments"]
    assert fragments[0]["id"].startswith("call_") and fragments[0]["function"]["name"] == "get_current_weather"
    assert all("id" not in f and "name" not in f.get("function", {}) for f in fragments[1:])
    assert len([f for f in fragments if f["function"]["arguments"]]) >= 3
    assert json.loads(calls[0]["arguments"]) == {"location": "San Francisco", "unit": "celsius"}
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_several_mentioned_tools_are_called_in_parallel(client: httpx.Client) -> None:
    messages = [{"role": "user", "content": "Call get_time and then get_current_weather for Tokyo."}]
    choice = chat(client, messages=messages, tools=[WEATHER_TOOL, TIME_TOOL]).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["get_time", "get_current_weather"]
    assert len({c["id"] for c in calls}) == 2
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Tokyo", "exact": True}
    events = stream(client, messages=messages, tools=[WEATHER_TOOL, TIME_TOOL])
    streamed = assemble_tool_calls(events)
    assert [s["fragments"][0]["function"]["name"] for s in streamed.values()] == ["get_time", "get_current_weather"]
    assert [s["arguments"] for s in streamed.values()] == [c["function"]["arguments"] for c in calls]


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("none", None),
        ("auto", None),
        ("required", ["get_current_weather"]),
        ({"type": "function", "function": {"name": "get_time"}}, ["get_time"]),
    ],
)
def test_tool_choice(client: httpx.Client, tool_choice: Any, expected: list[str] | None) -> None:
    message = chat(client, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=tool_choice).json()["choices"][0]["message"]
    names = [c["function"]["name"] for c in message.get("tool_calls", [])] or None
    assert names == expected
    assert (message["content"] is None) == (expected is not None)


def test_tool_results_are_answered_in_text(client: httpx.Client) -> None:
    call = {"id": "call_x", "type": "function", "function": {"name": "get_current_weather", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "get_current_weather in Paris"},
        {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "call_y"}]},
        {"role": "tool", "tool_call_id": "call_x", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_y", "name": "other_name", "content": "sunny"},
    ]
    choice = chat(client, messages=messages, tools=[WEATHER_TOOL]).json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == 'Based on get_current_weather: {"temp": 21}\nBased on other_name: sunny'


# --------------------------------------------------------------------------- audio, reasoning, documents


def test_audio_wav_is_a_playable_file(client: httpx.Client) -> None:
    data = chat(client, model="gpt-4o-audio-preview", **AUDIO_WAV).json()
    message = data["choices"][0]["message"]
    assert message["content"] is None
    audio = message["audio"]
    assert audio["id"].startswith("audio_") and audio["expires_at"] > data["created"]
    assert audio["transcript"].startswith("Stand-in gpt-4o-audio-preview here.")
    with wave.open(io.BytesIO(base64.b64decode(audio["data"]))) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.getnframes() / 24000 >= 0.5
        assert any(wav.readframes(wav.getnframes()))
    assert data["usage"]["completion_tokens_details"]["audio_tokens"] > 0


def test_audio_pcm16_streams_whole_samples_and_the_transcript(client: httpx.Client) -> None:
    audio_body = {"modalities": ["text", "audio"], "audio": {"voice": "coral", "format": "pcm16"}}
    whole = chat(client, model="gpt-4o-audio-preview", **audio_body).json()["choices"][0]["message"]["audio"]
    events = stream(client, model="gpt-4o-audio-preview", **audio_body)
    pieces = [d["audio"] for d in deltas(events) if "audio" in d]
    assert pieces[0]["id"].startswith("audio_")
    chunks = [base64.b64decode(p["data"]) for p in pieces if "data" in p]
    assert len(chunks) > 1 and all(len(c) % 2 == 0 for c in chunks)
    assert b"".join(chunks) == base64.b64decode(whole["data"])
    assert "".join(p.get("transcript", "") for p in pieces) == whole["transcript"]


def test_reasoning_models_report_reasoning_tokens(client: httpx.Client) -> None:
    usage = chat(client, model="o3").json()["usage"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning > 0 and usage["completion_tokens"] > reasoning
    assert chat(client, model="gpt-4o").json()["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0
    high = chat(client, model="gpt-5", reasoning_effort="high").json()["usage"]
    low = chat(client, model="gpt-5", reasoning_effort="low").json()["usage"]
    assert high["completion_tokens_details"]["reasoning_tokens"] > low["completion_tokens_details"]["reasoning_tokens"]


def test_thinking_gives_reasoning_content_streamed_before_the_text(client: httpx.Client) -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    message = chat(client, model="claude-sonnet-4", thinking=thinking).json()["choices"][0]["message"]
    assert message["reasoning_content"].startswith("The user wrote 8 words.")
    kinds = [
        k
        for d in deltas(stream(client, model="claude-sonnet-4", thinking=thinking))
        for k in ("reasoning_content", "content")
        if d.get(k)
    ]
    assert kinds[0] == "reasoning_content" and kinds[-1] == "content"
    assert kinds == sorted(kinds, key=lambda k: k != "reasoning_content")


def test_documents_are_quoted_with_citations(client: httpx.Client) -> None:
    documents = [{"id": "faq-1", "data": {"title": "FAQ", "text": "Returns are free within 30 days."}}, "Second."]
    message = chat(client, model="cohere-command-r-08-2024", documents=documents).json()["choices"][0]["message"]
    (citation,) = message["citations"]
    assert citation["document_ids"] == ["faq-1"]
    assert message["content"][citation["start"] : citation["end"]] == citation["text"] == documents[0]["data"]["text"]
    events = stream(client, model="cohere-command-r-08-2024", documents=documents)
    assert deltas(events)[-1]["citations"] == message["citations"]


# --------------------------------------------------------------------------- scenarios


def test_scenarios_are_used_first_in_first_out_with_times(server: StandInServer, client: httpx.Client) -> None:
    server.enqueue(
        Scenario(status=429, retry_after=2, error_message="Slow down."),
        Scenario(status=503, times=2),
        Scenario(text="Finally."),
    )
    assert server.queued == 4
    limited = chat(client)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["message"] == "Slow down."
    assert [chat(client).status_code for _ in range(2)] == [503, 503]
    assert chat(client).json()["choices"][0]["message"]["content"] == "Finally."
    assert chat(client).json()["choices"][0]["message"]["content"].startswith("Stand-in")
    assert server.queued == 0


def test_fractional_retry_after_is_sent_in_both_headers(server: StandInServer, client: httpx.Client) -> None:
    server.enqueue(Scenario(status=429, retry_after=0.25))
    response = chat(client)
    assert response.headers["retry-after"] == "0.25" and response.headers["retry-after-ms"] == "250"


def test_scripted_tool_calls_and_token_counts(server: StandInServer, client: httpx.Client) -> None:
    scripted = [{"name": "lookup", "arguments": {"q": "x"}}, {"name": "broken", "arguments": "{oops"}]
    server.enqueue(Scenario(tool_calls=scripted))
    calls = [c["function"] for c in chat(client).json()["choices"][0]["message"]["tool_calls"]]
    assert calls == [{"name": "lookup", "arguments": '{"q":"x"}'}, {"name": "broken", "arguments": "{oops"}]
    server.enqueue(Scenario(tokens=500), Scenario(tokens=7, text="café ☕ "))
    assert len(chat(client).json()["choices"][0]["message"]["content"].split()) == 500
    assert stream(client)[-2]["choices"][0]["finish_reason"] == "stop"
    server.enqueue(Scenario(finish_reason="content_filter", model="gpt-4o-2024-08-06", usage=False))
    data = chat(client).json()
    assert data["choices"][0]["finish_reason"] == "content_filter" and data["model"] == "gpt-4o-2024-08-06"
    assert "usage" not in data


def test_scenario_fields_are_checked() -> None:
    with pytest.raises(ValueError, match="Valid fields are"):
        Scenario.from_dict({"stauts": 500})
    with pytest.raises(ValueError, match="times"):
        Scenario(times=0)
    with pytest.raises(ValueError, match="tool_calls"):
        Scenario(tool_calls=[{"arguments": {}}])


# --------------------------------------------------------------------------- broken and odd streams


def raw_stream(client: httpx.Client, **body: Any) -> bytes:
    return chat(client, stream=True, **body).content


def test_stream_quirks_are_visible_on_the_wire(server: StandInServer, client: httpx.Client) -> None:
    normal = raw_stream(client)
    server.enqueue(Scenario(crlf=True), Scenario(no_space=True), Scenario(keepalive=True))
    crlf, no_space, keepalive = raw_stream(client), raw_stream(client), raw_stream(client)
    assert b"\r\n\r\n" in crlf and b"\n\n" not in crlf.replace(b"\r\n", b"")
    assert b"data:{" in no_space and b"data: " not in no_space
    assert b": keep-alive\n\n" in keepalive
    # The same events, whatever the shape.
    assert sse_data(crlf) == sse_data(no_space) == sse_data(keepalive) == sse_data(normal)


def test_split_utf8_cuts_a_character_across_network_writes(server: StandInServer, client: httpx.Client) -> None:
    server.enqueue(Scenario(split_utf8=True, text="Plain ASCII."))
    with client.stream("POST", CHAT, json={"model": "gpt-4o", "messages": HELLO, "stream": True}) as response:
        pieces = list(response.iter_raw())
    cut = []
    for piece in pieces:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            cut.append(piece)
    assert cut, "no network write ended inside a multi-byte character"
    events = [json.loads(d) for d in sse_data(b"".join(pieces))[:-1]]
    assert streamed_text(events) == "Plain ASCII. (café ☕)"


def test_drop_after_cuts_the_connection_mid_body(server: StandInServer, client: httpx.Client) -> None:
    server.enqueue(Scenario(drop_after=2))
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("POST", CHAT, json={"model": "gpt-4o", "messages": HELLO, "stream": True}) as response:
            for piece in response.iter_raw():
                received += piece
    data = sse_data(received)
    assert "[DONE]" not in data
    assert [json.loads(d)["choices"][0]["delta"].get("content") for d in data[2:]] == ["Stand-in", " gpt-4o"]
    # The server is still fine afterwards.
    assert chat(client).status_code == 200


def test_malformed_event_after_n_chunks(server: StandInServer, client: httpx.Client) -> None:
    server.enqueue(Scenario(malformed_after=1))
    data = sse_data(raw_stream(client))
    assert data[3] == "{not json"
    assert json.loads(data[2])["choices"][0]["delta"]["content"] == "Stand-in"


def test_stream_error_event_ends_the_stream(server: StandInServer, client: httpx.Client) -> None:
    error = {"message": "Overloaded.", "type": "server_error", "param": None, "code": "overloaded"}
    server.enqueue(
        Scenario(stream_error_after=3, error_message="Overloaded.", error_type="server_error", error_code="overloaded")
    )
    data = sse_data(raw_stream(client))
    assert "[DONE]" not in data
    assert json.loads(data[-1]) == {"error": error}
    assert len(data) == 2 + 3 + 1


def test_a_fault_past_the_end_still_happens(server: StandInServer, client: httpx.Client) -> None:
    server.enqueue(Scenario(text="short", stream_error_after=50))
    data = sse_data(raw_stream(client))
    assert json.loads(data[-1])["error"] and json.loads(data[-2])["choices"][0]["delta"]["content"] == "short"


def test_empty_body(server: StandInServer, client: httpx.Client) -> None:
    server.enqueue(Scenario(empty_body=True))
    response = chat(client, stream=True)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    assert response.content == b""


# --------------------------------------------------------------------------- server behaviour


def test_requests_are_recorded_with_the_key_masked_in_repr(server: StandInServer, client: httpx.Client) -> None:
    client.post("/openai/deployments/gpt-4o/chat/completions?api-version=v1", json={"messages": HELLO})
    recorded = server.last_request
    assert isinstance(recorded, RecordedRequest)
    assert recorded.method == "POST" and recorded.query == {"api-version": "v1"}
    assert recorded.path == "/openai/deployments/gpt-4o/chat/completions"
    assert recorded.headers["api-key"] == server.key and recorded.body == {"messages": HELLO}
    assert json.loads(recorded.raw) == recorded.body
    assert server.key not in repr(recorded) and server.key not in repr(server)
    server.clear()
    assert server.requests == [] and server.last_request is None


def test_admin_api(server: StandInServer, client: httpx.Client) -> None:
    admin = client  # the admin routes take the same api-key header as the chat route
    assert admin.post("/_standin/enqueue", json=[{"text": "One."}, {"status": 500, "times": 2}]).json() == {"queued": 3}
    assert chat(client).json()["choices"][0]["message"]["content"] == "One."
    assert chat(client).status_code == 500
    listed = admin.get("/_standin/requests").json()
    assert len(listed) == 2 and listed[0]["body"]["model"] == "gpt-4o"
    assert listed[0]["headers"]["api-key"] == "****" and server.key not in json.dumps(listed)
    bad = admin.post("/_standin/enqueue", json={"statsu": 500})
    assert bad.status_code == 400 and "statsu" in bad.json()["error"]["message"]
    assert admin.post("/_standin/reset", json={}).json() == {"ok": True}
    assert admin.get("/_standin/requests").json() == [] and server.queued == 0
    assert admin.get("/_standin/health").json() == {"ok": True}
    assert chat(client).status_code == 200  # the 500 that was left was dropped by the reset


def test_requests_are_served_concurrently(server: StandInServer, client: httpx.Client) -> None:
    server.enqueue(Scenario(delay=0.2, tokens=50))
    first_chunk = threading.Event()
    outcome: dict[str, Any] = {}

    def slow() -> None:
        with client.stream("POST", CHAT, json={"model": "gpt-4o", "messages": HELLO, "stream": True}) as response:
            for _line in response.iter_lines():
                first_chunk.set()
                if outcome.get("fast") is not None:
                    outcome.setdefault("still_streaming", True)
                    break

    thread = threading.Thread(target=slow)
    thread.start()
    assert first_chunk.wait(5)
    outcome["fast"] = chat(client).status_code  # answered while the slow stream is open
    thread.join(10)
    assert outcome == {"fast": 200, "still_streaming": True}


def test_stop_closes_kept_alive_connections() -> None:
    running = StandInServer(key="").start()
    with httpx.Client(base_url=running.base_url, timeout=3) as c:
        assert c.post(CHAT, json={"model": "gpt-4o", "messages": HELLO}).status_code == 200
        running.stop()
        with pytest.raises(httpx.TransportError):
            c.post(CHAT, json={"model": "gpt-4o", "messages": HELLO})
    running.stop()  # twice is fine


# --------------------------------------------------------------------------- who may use it

EVIL = "http://evil.example"
CONTROL_ROUTES = [
    ("POST", "/_standin/enqueue"),
    ("GET", "/_standin/requests"),
    ("POST", "/_standin/reset"),
    ("GET", "/_standin/health"),
    ("GET", "/_standin/no-such-route"),
    ("GET", "/_standin"),
]


def raw_request(
    server: StandInServer, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Exactly these headers on the wire (urllib adds no Content-Type to a bodiless request)."""
    request = urllib.request.Request(server.base_url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.mark.parametrize(
    "sent",
    [{}, {"api-key": "not-the-key"}, {"api-key": ""}, {"authorization": "Bearer not-the-key"}],
    ids=["no-key", "wrong-key", "empty-key", "wrong-bearer"],
)
@pytest.mark.parametrize(("method", "path"), CONTROL_ROUTES)
def test_control_routes_need_the_key(
    server: StandInServer, client: httpx.Client, method: str, path: str, sent: dict[str, str]
) -> None:
    server.enqueue(Scenario(text="Queued by the test."))
    chat(client)  # one recorded request that an outsider must not read
    server.enqueue(Scenario(text="Still queued."))
    with httpx.Client(base_url=server.base_url, headers=sent, timeout=10) as outsider:
        response = outsider.request(method, path, json={"text": "Injected."} if method == "POST" else None)
    assert response.status_code == 401
    message = response.json()["error"]["message"]
    assert "api-key header" in message and "COMPASS_API_KEY" in message  # names the fix
    assert "Hello" not in response.text and server.key not in response.text
    assert server.queued == 1 and len(server.requests) == 1  # nothing enqueued, nothing reset
    assert chat(client).json()["choices"][0]["message"]["content"] == "Still queued."


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        # What fetch(url, {method: "POST", mode: "no-cors", body}) sends from another site.
        ({"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"}, 403),
        # The same page, even if it had learned the key.
        ({"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8", "api-key": "KEY"}, 403),
        # A browser that sent no Origin: the content type alone still refuses it.
        ({"Content-Type": "text/plain", "api-key": "KEY"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded", "api-key": "KEY"}, 415),
        ({"Content-Type": "multipart/form-data; boundary=x", "api-key": "KEY"}, 415),
        ({"api-key": "KEY"}, 415),
        ({"Content-Type": "text/plain"}, 401),
    ],
    ids=["cross-origin", "cross-origin-keyed", "text-plain", "form", "multipart", "no-type", "unkeyed"],
)
@pytest.mark.parametrize("path", ["/_standin/enqueue", "/_standin/reset"])
def test_a_browser_simple_request_changes_nothing(
    server: StandInServer, client: httpx.Client, headers: dict[str, str], status: int, path: str
) -> None:
    server.enqueue(Scenario(text="The test's own reply."))
    headers = {name: (server.key if value == "KEY" else value) for name, value in headers.items()}
    body = None if "Content-Type" not in headers else json.dumps({"text": "Injected."}).encode()
    code, _, answer = raw_request(server, "POST", path, headers, body)
    assert code == status
    assert json.loads(answer)["error"]["message"]
    assert server.queued == 1  # neither enqueued nor reset
    assert chat(client).json()["choices"][0]["message"]["content"] == "The test's own reply."
    assert server.queued == 0


@pytest.mark.parametrize(
    "origin", [EVIL, "null", "http://127.0.0.1:1", "http://localhost:{port}", "https://127.0.0.1:{port}"]
)
def test_a_foreign_origin_is_refused_even_with_the_key(
    server: StandInServer, client: httpx.Client, origin: str
) -> None:
    chat(client)
    refused = client.get("/_standin/requests", headers={"Origin": origin.format(port=server.port)})
    assert refused.status_code == 403
    assert "cross-origin" in refused.json()["error"]["message"] and "Hello" not in refused.text
    enqueue = client.post("/_standin/enqueue", json={"status": 500}, headers={"Origin": EVIL})
    assert enqueue.status_code == 403 and server.queued == 0
    # The server's own origin (what a page it served would send) is not foreign.
    assert client.get("/_standin/requests", headers={"Origin": server.base_url}).status_code == 200


def test_a_preflight_grants_nothing(server: StandInServer, client: httpx.Client) -> None:
    preflight = {
        "Origin": EVIL,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "api-key, content-type",
    }
    for path in ("/_standin/enqueue", "/_standin/requests", CHAT):
        code, headers, _ = raw_request(server, "OPTIONS", path, preflight)
        assert code >= 400, path
        assert not [name for name in headers if name.startswith("access-control-")], path
    keyed = client.options("/_standin/enqueue")
    assert keyed.status_code == 405 and "access-control-allow-origin" not in keyed.headers
    served = client.get("/_standin/health")
    assert served.status_code == 200 and not [n for n in served.headers if n.startswith("access-control-")]


def test_a_keyless_server_still_refuses_browsers() -> None:
    with StandInServer(key="") as keyless, httpx.Client(base_url=keyless.base_url, timeout=10) as anyone:
        assert anyone.post("/_standin/enqueue", json={"text": "Fine."}).json() == {"queued": 1}
        assert anyone.post("/_standin/enqueue", json={"text": "x"}, headers={"Origin": EVIL}).status_code == 403
        code, _, _ = raw_request(keyless, "POST", "/_standin/enqueue", {"Content-Type": "text/plain"}, b"{}")
        assert code == 415 and keyless.queued == 1


@pytest.mark.parametrize("sent", [{}, {"api-key": "not-the-key"}], ids=["no-key", "wrong-key"])
@pytest.mark.parametrize("path", [CHAT, "/openai/deployments/gpt-4o/chat/completions?api-version=v1"])
def test_a_request_without_the_key_leaves_the_queue_alone(
    server: StandInServer, client: httpx.Client, sent: dict[str, str], path: str
) -> None:
    server.enqueue(Scenario(status=429, retry_after=0), Scenario(text="For the keyed client."))
    with httpx.Client(base_url=server.base_url, headers=sent, timeout=10) as outsider:
        for _ in range(3):
            refused = outsider.post(path, json={"model": "gpt-4o", "messages": HELLO})
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "401"
    assert server.queued == 2
    assert len(server.requests) == 3  # refused requests are still recorded, for debugging
    assert chat(client).status_code == 429
    assert chat(client).json()["choices"][0]["message"]["content"] == "For the keyed client."


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LocalHost.", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("128.0.0.1", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_a_non_loopback_host_warns_and_still_needs_the_key() -> None:
    key = "exposed-test-key-0123456789"
    with pytest.warns(ExposedServerWarning, match="not a loopback address") as caught:
        exposed = StandInServer(host="0.0.0.0", key=key)
    message = str(caught[0].message)
    assert caught[0].filename == __file__  # points at the caller's line
    assert "only protection" in message and "/_standin/enqueue" in message and key not in message
    with exposed, httpx.Client(base_url=f"http://127.0.0.1:{exposed.port}", timeout=10) as c:
        assert c.post("/_standin/enqueue", json={"text": "x"}).status_code == 401 and exposed.queued == 0
        assert c.post("/_standin/enqueue", json={"text": "x"}, headers={"api-key": key}).status_code == 200
    with pytest.warns(ExposedServerWarning, match="NO key"):
        StandInServer(host="::", key="")  # not started: only the warning matters
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for host in ("127.0.0.1", "localhost", "::1"):
            StandInServer(host=host)


# --------------------------------------------------------------------------- command line and fixture


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_command_line_prints_the_url_and_key_and_stops_quietly(how: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "compass_jupyter.testing", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(20, process.kill)
    watchdog.start()
    try:
        url_line = process.stdout.readline().strip()
        key_line = process.stdout.readline().strip()
        assert url_line.startswith("COMPASS_BASE_URL=http://127.0.0.1:")
        assert key_line.startswith("COMPASS_API_KEY=")
        url, key = url_line.split("=", 1)[1], key_line.split("=", 1)[1]
        response = httpx.post(url + CHAT, json={"model": "gpt-4o", "messages": HELLO}, headers={"api-key": key})
        assert response.status_code == 200
        process.send_signal(how)
        _, stderr = process.communicate(timeout=10)
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 0
    assert "Traceback" not in stderr
    assert "NOT LOOPBACK" not in stderr and key not in stderr


def test_command_line_with_a_given_key_prints_only_the_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "compass_jupyter.testing", "--port", str(port), "--key", "k1", "--delay", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == f"COMPASS_BASE_URL=http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}"
        response = httpx.post(url + CHAT, json={"model": "gpt-4o", "messages": HELLO}, headers={"api-key": "k1"})
        assert response.status_code == 200
        process.terminate()
        remaining, _ = process.communicate(timeout=10)
    finally:
        process.kill()
    assert remaining == "" and process.returncode == 0


def test_command_line_warns_loudly_on_a_non_loopback_host() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "compass_jupyter.testing", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(20, process.kill)
    watchdog.start()
    try:
        url = process.stdout.readline().strip().split("=", 1)[1]
        key = process.stdout.readline().strip().split("=", 1)[1]
        port = url.rsplit(":", 1)[1]
        banner = ""
        while "Ctrl-C to stop" not in banner:
            line = process.stderr.readline()
            assert line, f"the server ended early; stderr: {banner}"
            banner += line
        local = f"http://127.0.0.1:{port}"
        assert httpx.get(local + "/_standin/health").status_code == 401
        assert httpx.get(local + "/_standin/health", headers={"api-key": key}).status_code == 200
        process.terminate()
        (rest,) = process.communicate(timeout=10)[1:]
    finally:
        watchdog.cancel()
        process.kill()
    flat = " ".join(banner.split())
    assert "WARNING: NOT LOOPBACK" in flat and f"0.0.0.0:{port}" in flat
    assert "only protection" in flat and "GET /_standin/requests" in flat
    assert key not in banner + rest
    assert "ExposedServerWarning" not in banner  # one banner, not a second Python warning too
    assert process.returncode == 0


def test_fixture_points_the_environment_at_the_server(compass_server: StandInServer) -> None:
    assert os.environ["COMPASS_BASE_URL"] == compass_server.base_url
    assert os.environ["COMPASS_API_KEY"] == compass_server.key
    assert os.environ["COMPASS_API_STYLE"] == "openai"
    assert "COMPASS_MODEL" not in os.environ
    response = httpx.post(
        os.environ["COMPASS_BASE_URL"] + CHAT,
        json={"model": "gpt-4o", "messages": HELLO},
        headers={"api-key": os.environ["COMPASS_API_KEY"]},
    )
    assert response.status_code == 200
    assert compass_server.requests[-1].body["messages"] == HELLO


FIXTURE_USER_TEST = """
import os, httpx
def test_uses_it(compass_server):
    assert "COMPASS_MODEL" not in os.environ
    with open("where.txt", "w") as f:
        f.write(compass_server.base_url)
    r = httpx.post(compass_server.base_url + "/v1/chat/completions",
                   json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]},
                   headers={"api-key": compass_server.key})
    assert r.json()["choices"][0]["message"]["content"] == "Stand-in gpt-4o here. You said: “Hi”"
"""


def test_fixture_in_a_users_test_suite_cleans_up(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPASS_MODEL", "users-own-model")
    pytester.makepyfile(FIXTURE_USER_TEST)
    pytester.runpytest("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert os.environ["COMPASS_MODEL"] == "users-own-model"  # restored after the test
    url = (pytester.path / "where.txt").read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.post(url + CHAT, json={}, timeout=2)  # stopped after the test


def test_fixture_via_pytest_plugins_when_autoload_is_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest('pytest_plugins = ["compass_jupyter.testing.plugin"]')
    pytester.makepyfile(FIXTURE_USER_TEST)
    pytester.runpytest("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_json_mode_gives_the_keys_the_prompt_asks_for(client: httpx.Client) -> None:
    asked = [{"role": "user", "content": 'Give a JSON object with the keys "city" and "country" for Paris.'}]
    reply = chat(client, messages=asked, response_format={"type": "json_object"}).json()
    value = json.loads(reply["choices"][0]["message"]["content"])
    assert list(value) == ["city", "country"] and all(isinstance(v, str) and v for v in value.values())


def test_a_token_and_its_alternatives_are_at_most_certain(client: httpx.Client) -> None:
    import math

    body = chat(client, logprobs=True, top_logprobs=5).json()
    for entry in body["choices"][0]["logprobs"]["content"]:
        shown = [math.exp(alt["logprob"]) for alt in entry["top_logprobs"]]
        assert sum(shown) <= 1.0 + 1e-6, entry  # a model's probabilities never add up to more than 100%
        assert shown[0] == max(shown) and entry["top_logprobs"][0]["token"] == entry["token"]
