"""A server that is not trusted: wrong shapes, echoed keys, redirects, deep nesting.

Each case goes through a real socket to the client and, where it matters, the
Session: only CompassErrors come out, the partial reply travels on ``exc.reply``,
the history is left consistent, and the key is nowhere in what the user can see.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import traceback

import httpx
import pytest
from rawserver import KEY, RawServer, chunk, completion

import compass_jupyter as cj
from compass_jupyter.conversation import Session

HI = [{"role": "user", "content": "Hi"}]
PIECE = KEY[5:19]  # a long run of the key that its mask does not show


@pytest.fixture
def raw():
    with RawServer() as server:
        yield server


@pytest.fixture
def client(raw):
    c = cj.Client(base_url=raw.base_url, api_key=KEY, backoff=0.01, max_retries=1)
    yield c
    c.close()


@pytest.fixture
def session(client):
    return Session(client)


def _exception_text(exc: BaseException) -> str:
    """Everything a traceback, a log or a debugger's first look would show of an exception chain."""
    parts = []
    seen = set()
    item: BaseException | None = exc
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        parts += [repr(item), str(item), repr(getattr(item, "body", None)), repr(vars(item))]
        reply = getattr(item, "reply", None)
        if reply is not None:
            parts += [reply.text, repr(reply), repr(reply.raw), " ".join(reply.warnings)]
        item = item.__cause__ or item.__context__
    parts.append("".join(traceback.format_exception(exc)))
    return "\n".join(parts)


def _assert_no_key(text: str) -> None:
    assert KEY not in text
    assert PIECE not in text
    assert KEY[-12:-4] not in text


def _chain(exc: BaseException) -> list[BaseException]:
    items = []
    item: BaseException | None = exc
    while item is not None:
        items.append(item)
        item = item.__cause__ or item.__context__
    return items


# -- 1. valid JSON of the wrong shape -----------------------------------------------------------

WRONG_CHUNKS = [
    pytest.param({"choices": [None]}, "choices[0] is null, not an object", id="choice-null"),
    pytest.param(
        {"choices": [{"index": "x", "delta": {"content": "!"}}]}, "choices[0].index is the text 'x'", id="index-text"
    ),
    pytest.param(chunk(5), "choices[0].delta.content is a number (5)", id="content-number"),
    pytest.param(chunk({"a": 1}), "choices[0].delta.content is an object", id="content-object"),
    pytest.param({"choices": {"0": 1}}, "choices is an object", id="choices-object"),
    pytest.param({"choices": [{"index": 0, "delta": "hi"}]}, "choices[0].delta is the text 'hi'", id="delta-text"),
    pytest.param(
        {"choices": [{"index": 9999, "delta": {"content": "x"}}]},
        "choices[0].index is a number (9999)",
        id="index-huge",
    ),
    pytest.param(
        chunk(tool_calls=[{"index": 0, "function": {"name": 7}}]),
        "tool_calls[0].function.name is a number",
        id="tool-name",
    ),
    pytest.param(chunk(tool_calls="call"), "delta.tool_calls is the text 'call'", id="tool-calls-text"),
    pytest.param(
        {"choices": [{"index": 0, "delta": {}, "logprobs": {"content": [{"token": "a", "logprob": "x"}]}}]},
        "logprob is the text 'x'",
        id="logprob-text",
    ),
    pytest.param(chunk(audio={"data": 12}), "delta.audio.data is a number", id="audio-data"),
    pytest.param(chunk(finish=["stop"]), "finish_reason is a list", id="finish-list"),
    pytest.param("[1, 2]", "a list of 2 items, not a JSON object", id="event-list"),
    pytest.param("[" * 50_000 + "]" * 50_000, "nested too deeply", id="event-deep"),
]


@pytest.mark.parametrize("bad, named", WRONG_CHUNKS)
def test_a_streamed_chunk_of_the_wrong_shape_is_a_stream_error_that_keeps_the_partial_reply(raw, session, bad, named):
    raw.stream(chunk("Hello "), chunk("there"), bad)
    with pytest.raises(cj.StreamError) as info:
        session.chat("Hi")
    assert named in str(info.value)
    assert info.value.reply is not None and info.value.reply.text == "Hello there"
    assert info.value.reply.incomplete
    assert session.messages == []  # untouched: the server sent nonsense, nothing broke off
    raw.stream(chunk("Fine", finish="stop"))
    assert session.chat("Again").text == "Fine"
    assert [m["role"] for m in session.messages] == ["user", "assistant"]


def test_compare_mode_keeps_a_reply_the_server_sent_wrong_out_of_the_history(raw, session):
    for _ in range(2):
        raw.stream(chunk("Hello "), chunk(5))
    replies = session.compare("Hi", models=["gpt-4o", "gpt-4.1"])
    assert all(r.incomplete and "is a number (5)" in (r.error or "") and r.text == "Hello " for r in replies)
    assert session.messages == [] and len(session.turns) == 2


def test_usage_of_the_wrong_shape_costs_only_the_usage(raw, client):
    raw.stream(
        chunk("Hi", finish="stop"),
        {
            "choices": [],
            "usage": {
                "prompt_tokens": "3",
                "completion_tokens": 2.0,
                "total_tokens": 5,
                "completion_tokens_details": "many",
            },
        },
    )
    reply = client.chat(HI)
    assert reply.text == "Hi"
    assert (
        reply.usage.prompt_tokens is None
        and reply.usage.completion_tokens == 2
        and reply.usage.reasoning_tokens is None
    )
    assert any("usage.prompt_tokens" in w for w in reply.warnings)
    assert any("completion_tokens_details" in w for w in reply.warnings)
    assert "None" not in reply.status_line() and "? in · 2 out · 5 total" in reply.status_line()


def test_a_non_streamed_object_content_never_reaches_the_history(raw, session):
    raw.complete(completion({"a": 1}))
    with pytest.raises(cj.StreamError, match=r"choices\[0\]\.message\.content is an object"):
        session.chat("Hi", stream=False)
    assert session.messages == []
    raw.complete(completion("Next answer"))
    assert session.chat("Again", stream=False).text == "Next answer"  # the session is not poisoned


@pytest.mark.parametrize(
    "body, named",
    [
        (b"[1, 2, 3]", "a list of 3 items"),
        (b'"just text"', "the text 'just text'"),
        (b"[" * 100_000, "nested too deeply"),
        (json.dumps({"choices": [{"index": 0, "message": [1]}]}).encode(), "choices[0].message is a list"),
        (
            json.dumps(
                {"choices": [{"index": 0, "message": {"content": "x", "tool_calls": [{"function": {"arguments": 5}}]}}]}
            ).encode(),
            "arguments is a number",
        ),
    ],
)
def test_a_non_streamed_answer_of_the_wrong_shape_names_what_was_wrong(raw, session, body, named):
    raw.complete(body)
    with pytest.raises(cj.StreamError) as info:
        session.chat("Hi", stream=False)
    assert named in str(info.value)
    assert session.messages == []


def test_content_as_a_list_of_text_parts_is_joined(raw, client):
    raw.complete(completion([{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]))
    assert client.chat(HI, stream=False).text == "Hi there"
    raw.stream(chunk([{"type": "text", "text": "Str"}]), chunk([{"type": "text", "text": "eamed"}], finish="stop"))
    assert client.chat(HI).text == "Streamed"


def test_an_observer_that_stops_the_stream_is_not_mistaken_for_a_bad_server(raw, client):
    class Stop(Exception):
        pass

    def observer(delta):
        raise Stop()

    raw.stream(chunk("Hi", finish="stop"))
    with pytest.raises(Stop):
        client.chat(HI, on_delta=observer)


# -- 2. the key, echoed back by the server ------------------------------------------------------


def test_a_non_json_200_body_that_echoes_the_key_is_redacted(raw, client):
    raw.complete(f"<html>bad gateway for key {KEY}</html>".encode())
    with pytest.raises(cj.StreamError) as info:
        client.chat(HI, stream=False)
    assert "not JSON" in str(info.value)
    _assert_no_key(_exception_text(info.value))


def test_a_200_error_body_that_echoes_the_key_is_redacted(raw, client):
    raw.complete({"error": {"message": f"Incorrect API key provided: {KEY[:20]}****"}})
    with pytest.raises(cj.APIError) as info:
        client.chat(HI, stream=False)
    assert "Incorrect API key" in str(info.value)
    _assert_no_key(_exception_text(info.value))


def test_an_error_event_and_a_malformed_event_that_echo_the_key_are_redacted(raw, client):
    raw.stream(chunk("Hello"), {"error": {"message": f"key {KEY} is over quota"}})
    with pytest.raises(cj.StreamError) as info:
        client.chat(HI)
    assert "over quota" in str(info.value) and info.value.reply.text == "Hello"
    _assert_no_key(_exception_text(info.value))

    raw.stream(chunk("Hello"), f"not json {KEY}")
    with pytest.raises(cj.StreamError) as info:
        client.chat(HI)
    assert "malformed" in str(info.value)
    _assert_no_key(_exception_text(info.value))


@pytest.mark.parametrize("status", [400, 401, 404, 500])
def test_status_bodies_that_echo_the_key_are_redacted_in_message_and_body(raw, client, status):
    for _ in range(2):
        raw.add(status=status, body=json.dumps({"error": {"message": f"bad key {KEY} / {PIECE}", "key": KEY}}).encode())
    with pytest.raises(cj.APIError) as info:
        client.chat(HI)
    assert info.value.status_code == status
    _assert_no_key(_exception_text(info.value))


def test_a_reply_that_contains_the_key_shows_it_masked(raw, client):
    raw.stream(chunk("Your key is "), chunk(KEY[:10]), chunk(KEY[10:]), chunk(".", finish="stop"))
    reply = client.chat(HI)
    assert reply.text.startswith("Your key is ") and reply.text.endswith(".")
    _assert_no_key(reply.text + repr(reply))


def test_transport_errors_keep_no_request_and_no_key_in_the_exception_chain(client):
    with RawServer() as gone:
        url = gone.base_url  # a port that was open a moment ago and is closed now
    refused = cj.Client(base_url=url, api_key=KEY, max_retries=0)
    with pytest.raises(cj.APIConnectionError) as info:
        refused.chat(HI)
    chain = _chain(info.value)
    assert not any(isinstance(item, httpx.HTTPError) for item in chain)
    _assert_no_key(_exception_text(info.value))


def test_a_redirect_is_not_followed_so_the_key_stays_with_the_configured_server(raw, client):
    with RawServer() as elsewhere:
        raw.add(status=307, headers={"location": f"{elsewhere.base_url}/v1/chat/completions"}, body=b"")
        with pytest.raises(cj.APIConnectionError, match="redirect") as info:
            client.chat(HI)
        assert elsewhere.requests == []
    assert elsewhere.base_url in str(info.value)


# -- 3. interrupts say and record what is true --------------------------------------------------


def _interrupt_after(seconds: float) -> threading.Thread:
    # A real SIGINT, as the kernel's interrupt sends: it also wakes a sleeping main thread.
    thread = threading.Thread(target=lambda: (time.sleep(seconds), os.kill(os.getpid(), signal.SIGINT)), daemon=True)
    thread.start()
    return thread


def test_an_interrupt_during_a_retry_after_wait_records_nothing(raw, session):
    raw.add(status=429, headers={"retry-after": "5"}, body=b'{"error": {"message": "slow down"}}')
    thread = _interrupt_after(0.5)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt) as info:
        session.chat("Hi")
    thread.join()
    assert time.monotonic() - started < 4
    assert getattr(info.value, "reply", None) is None
    assert session.messages == [] and session.turns == []


# -- 4. anything at all, through a socket -------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["choices", "delta", "content", "index", "usage", "error", "x"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)
_EVENT = st.one_of(
    st.builds(
        lambda c, f: json.dumps(chunk(c, finish=f)),
        st.one_of(st.text(max_size=8), _JSON),
        st.sampled_from([None, "stop", 3]),
    ),
    _JSON.map(json.dumps),
    st.text(max_size=12).filter(lambda t: "\n" not in t and "\r" not in t),
)


def _history_is_sendable(session: Session) -> None:
    for message in session.api_messages():
        assert message["role"] in ("system", "user", "assistant", "tool")
        assert message.get("content") is None or isinstance(message["content"], (str, list))
        json.dumps(message, allow_nan=False)


@pytest.fixture(scope="module")
def shared_raw():
    with RawServer() as server:  # one server for every example: starting one costs half a second
        yield server


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(events=st.lists(_EVENT, max_size=4), done=st.booleans(), stream=st.booleans())
def test_any_answer_through_a_socket_is_a_reply_or_a_compass_error_and_the_session_stays_usable(
    shared_raw, events, done, stream
):
    raw = shared_raw
    raw.queue.clear()
    with cj.Client(base_url=raw.base_url, api_key=KEY, max_retries=0) as client:
        session = Session(client)
        if stream:
            raw.add(events=events, done=done)
        else:
            raw.add(body=(events[0] if events else "").encode())
        try:
            reply = session.chat("Hi", stream=stream)
            assert isinstance(reply.text, str)
        except cj.CompassError as exc:
            _assert_no_key(str(exc))
        _history_is_sendable(session)
        raw.stream(chunk("Fine", finish="stop"))
        assert session.chat("Again").text == "Fine"
        _history_is_sendable(session)
