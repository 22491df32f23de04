"""Property tests: any JSON a server sends, in any position, gives a Reply or a CompassError.

A well-formed chunk and a well-formed completion (with text, reasoning, tool calls,
audio, logprobs, citations and usage) are the templates; hypothesis replaces the
value at one to three of their positions (every key and list item, the whole chunk
included) with an arbitrary JSON value. Whatever comes in, the accumulator either
understands it or raises a CompassError, and an accepted reply is one the session
can keep and send again: its assistant message is JSON with text content.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compass_jupyter import CompassError
from compass_jupyter import rendering as html
from compass_jupyter.rendering import reply as render
from compass_jupyter.reply import Reply, Usage
from compass_jupyter.stream import Accumulator, EventReader

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)

CHUNK: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-4o",
    "system_fingerprint": "fp_1",
    "choices": [
        {
            "index": 0,
            "delta": {
                "role": "assistant",
                "content": "Hel",
                "reasoning_content": "think",
                "refusal": None,
                "citations": [
                    {
                        "text": "t",
                        "url": "https://u",
                        "start": 0,
                        "end": 3,
                        "document_ids": ["d1"],
                        "sources": [{"id": "d1", "document": {"id": "d1"}}],
                    }
                ],
                "tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a"'}}
                ],
                "audio": {"id": "au_1", "data": "AAAA", "transcript": "Hel", "expires_at": 1700000100},
            },
            "logprobs": {
                "content": [
                    {
                        "token": "Hel",
                        "logprob": -0.1,
                        "bytes": [72, 101, 108],
                        "top_logprobs": [{"token": "Hel", "logprob": -0.1}],
                    }
                ]
            },
            "finish_reason": None,
        }
    ],
    "usage": {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "completion_tokens_details": {"reasoning_tokens": 1, "audio_tokens": 0},
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    },
}

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-2",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello",
                "reasoning_content": "think",
                "refusal": None,
                "citations": [{"title": "t", "documents": ["d1"], "sources": [{"document": {"id": "d1"}}]}],
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                "audio": {"id": "au_1", "data": "AAAA", "transcript": "Hello", "expires_at": 1700000100},
            },
            "logprobs": {"content": [{"token": "Hello", "logprob": -0.2, "bytes": None, "top_logprobs": []}]},
            "finish_reason": "stop",
        }
    ],
    "usage": CHUNK["usage"],
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*prefix, i))
    return found


def _replace(template: dict[str, Any], changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
    data: Any = copy.deepcopy(template)
    for path, value in changes:
        if not path:
            data = value
            continue
        parent = data
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced the way to this position
    return data


def _mutations(template: dict[str, Any]) -> st.SearchStrategy[Any]:
    change = st.tuples(st.sampled_from(_paths(template)), JSON)
    return st.lists(change, min_size=1, max_size=3).map(lambda changes: _replace(template, changes))


def _assert_usable(reply: Reply) -> None:
    """What the session, the views and a later request need of an accepted reply."""
    for choice in reply.choices:
        message = choice.message()
        assert message["content"] is None or isinstance(message["content"], str)
        json.dumps(message, allow_nan=False)
        assert isinstance(choice.text, str)
        for call in choice.tool_calls:
            assert isinstance(call.id, str) and isinstance(call.name, str)
            assert isinstance(call.arguments, dict)
        for token in choice.logprobs or []:
            assert isinstance(token.token, str) and isinstance(token.logprob, float)
    if reply.usage is not None:
        for name in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens", "cached_tokens"):
            value = getattr(reply.usage, name)
            assert value is None or (isinstance(value, int) and not isinstance(value, bool))
        Usage.total([reply.usage, reply.usage])
    reply.status_line()
    # Every rendering a cell, a saved notebook or the widget views make of a reply.
    reply._repr_mimebundle_()
    render.reply_bundle(reply, "json")
    render.json_bundle(reply)
    html.reply_html(reply)
    html.compare_html([reply, reply])


def _reply() -> Reply:
    return Reply(model="gpt-4o", request={"model": "gpt-4o", "stream": True, "n": 1, "audio": {"format": "pcm16"}})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=_mutations(CHUNK), second=_mutations(CHUNK))
def test_any_json_in_any_position_of_a_chunk_gives_a_reply_or_a_compass_error(first: Any, second: Any) -> None:
    accumulator = Accumulator(_reply())
    reader = EventReader(accumulator)
    try:
        for chunk in (CHUNK, first, second):
            reader.data(json.dumps(chunk))
        reader.data("[DONE]")
        reader.end()
    except CompassError as exc:
        assert exc.reply is None or isinstance(exc.reply, Reply)
        if exc.reply is not None:
            _assert_usable(exc.reply)
        return
    _assert_usable(accumulator.finish())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_mutations(COMPLETION))
def test_any_json_in_any_position_of_a_completion_gives_a_reply_or_a_compass_error(data: Any) -> None:
    accumulator = Accumulator(_reply())
    try:
        if not isinstance(data, dict):
            return  # the client refuses a body that is not an object before the accumulator sees it
        accumulator.feed_completion(data)
    except CompassError:
        return
    _assert_usable(accumulator.finish())


@settings(max_examples=200, deadline=None)
@given(payload=st.text(max_size=60))
def test_any_event_text_gives_a_reply_or_a_compass_error(payload: str) -> None:
    reader = EventReader(Accumulator(_reply()))
    try:
        reader.data(payload)
    except CompassError:
        pass
