"""The Client through real sockets against the stand-in server."""

from __future__ import annotations

import asyncio
import io
import socket
import time
import wave

import httpx
import pytest
from rawserver import KEY, RawServer

import compass_jupyter as cj
from compass_jupyter.settings import config
from compass_jupyter.testing import Scenario, StandInServer

HI = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def client(compass_server) -> cj.Client:
    c = cj.Client(backoff=0.01)
    yield c
    c.close()


# -- routes and settings ---------------------------------------------------------------------


def test_openai_route_sends_key_header_model_and_usage_option(client, compass_server):
    reply = client.chat(HI, model="gpt-4o")
    request = compass_server.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.headers["api-key"] == compass_server.key
    assert request.body["model"] == "gpt-4o"
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert request.body["messages"] == HI
    assert "Hello there" in reply.text
    assert reply.model == "gpt-4o"


def test_azure_route_puts_the_deployment_in_the_path_and_sends_api_version(compass_server):
    client = cj.Client(api_style="azure", api_version="2024-11-01-preview")
    reply = client.chat(HI, model="gpt-4.1", stream=False)
    request = compass_server.requests[-1]
    assert request.path == "/openai/deployments/gpt-4.1/chat/completions"
    assert request.query["api-version"] == "2024-11-01-preview"
    assert reply.text


def test_settings_precedence_argument_over_kernel_over_env_over_default(compass_server, monkeypatch):
    monkeypatch.setenv("COMPASS_MODEL", "gpt-4.1")
    assert cj.Client().model == "gpt-4.1"
    config.set("model", "o3")
    assert cj.Client().model == "o3"
    assert config.source("model") == "set"
    assert cj.Client(model="gpt-5").model == "gpt-5"
    config.unset("model")
    monkeypatch.delenv("COMPASS_MODEL")
    assert cj.Client().model == "gpt-4o"


def test_missing_key_is_a_config_error_and_nothing_is_sent(compass_server, monkeypatch):
    monkeypatch.delenv("COMPASS_API_KEY")
    with pytest.raises(cj.ConfigError, match="COMPASS_API_KEY"):
        cj.Client().chat(HI)
    assert compass_server.requests == []


def test_invalid_field_is_refused_before_sending(client, compass_server):
    with pytest.raises(cj.ValidationError, match="temperature"):
        client.chat(HI, temperature=3)
    with pytest.raises(cj.ValidationError, match="random_seed"):
        client.chat(HI, seed=3)
    assert compass_server.requests == []


def test_unknown_model_warns_with_nearest_ids_and_is_still_sent(client, compass_server):
    with pytest.warns(cj.CompassWarning, match="gpt-4o"), pytest.raises(cj.NotFoundError):
        client.chat(HI, model="gpt4o", stream=False)  # the stand-in answers 404 for unknown ids
    assert compass_server.requests[-1].body["model"] == "gpt4o"


def test_reserved_parameter_warns_naming_the_models_and_strict_refuses(client, compass_server):
    with pytest.warns(cj.CompassWarning, match="qwen3-14b"):
        reply = client.chat(HI, model="gpt-4o", min_p=0.1)
    assert "min_p" in reply.warnings[0]
    assert compass_server.requests[-1].body["min_p"] == 0.1
    config.set("strict", True)
    with pytest.raises(cj.ValidationError, match="qwen3-14b"):
        client.chat(HI, model="gpt-4o", min_p=0.1)
    assert len(compass_server.requests) == 1


# -- streaming -----------------------------------------------------------------------------


def test_stream_and_non_stream_give_the_same_reply(client):
    streamed = client.chat(HI, model="gpt-4o", temperature=0)
    whole = client.chat(HI, model="gpt-4o", temperature=0, stream=False)
    assert streamed.text == whole.text
    assert streamed.finish_reason == whole.finish_reason == "stop"
    assert streamed.usage.total_tokens == whole.usage.total_tokens
    assert streamed.id and streamed.id.startswith("chatcmpl")


def test_observers_see_every_piece_in_order(client):
    pieces = []
    reply = client.chat(HI, on_delta=lambda d: pieces.append(d.text) if d.text else None)
    assert len(pieces) > 3
    assert "".join(pieces) == reply.text


def test_n_choices_each_with_text_and_finish_reason(client):
    reply = client.chat(HI, n=3)
    assert len(reply.choices) == 3
    assert len({c.text for c in reply.choices}) == 3
    assert all(c.finish_reason == "stop" for c in reply.choices)
    assert reply.text == reply.choices[0].text


def test_logprobs_per_token_with_alternatives(client):
    reply = client.chat(HI, logprobs=True, top_logprobs=3)
    assert reply.logprobs
    assert "".join(t.token for t in reply.logprobs) == reply.text
    first = reply.logprobs[0]
    assert 0 < first.prob <= 1
    assert len(first.top) == 3 and all(isinstance(lp, float) for _, lp in first.top)


@pytest.mark.parametrize("quirk", ["crlf", "no_space", "keepalive", "split_utf8"])
def test_stream_shapes_real_servers_send(client, compass_server, quirk):
    compass_server.enqueue(Scenario(text="Un café ☕ s'il vous plaît, merci beaucoup", **{quirk: True}))
    reply = client.chat(HI)
    assert reply.text == "Un café ☕ s'il vous plaît, merci beaucoup"
    assert not reply.incomplete


def test_usage_not_reported_is_counted_and_marked_not_zero(client, compass_server):
    compass_server.enqueue(Scenario(usage=False))
    reply = client.chat(HI)
    assert reply.text
    assert reply.usage is not None and reply.usage.counted and reply.usage.completion_tokens
    assert "(counted, not reported)" in reply.status_line()


def test_reasoning_tokens_reported_for_reasoning_models(client):
    reply = client.chat(HI, model="o3")
    assert reply.usage.reasoning_tokens and reply.usage.reasoning_tokens > 0
    assert reply.usage.cached_tokens == 0


def test_latency_is_measured(client, compass_server):
    compass_server.delay = 0.01
    reply = client.chat(HI)
    assert 0 < reply.latency.ttft <= reply.latency.total
    assert reply.latency.tokens_per_s and reply.latency.tokens_per_s > 0


def test_tool_call_arguments_streamed_in_pieces_are_assembled(client):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]
    text = [{"role": "user", "content": "Use get_weather and get_time for Paris"}]
    streamed = client.chat(text, tools=tools)
    whole = client.chat(text, tools=tools, stream=False)
    assert streamed.finish_reason == "tool_calls"
    assert [c.name for c in streamed.tool_calls] == ["get_weather", "get_time"]
    assert streamed.tool_calls[0].arguments == {"city": "Paris"}
    assert [(c.name, c.arguments) for c in streamed.tool_calls] == [(c.name, c.arguments) for c in whole.tool_calls]
    assert all(c.id.startswith("call_") for c in streamed.tool_calls)


def test_streamed_pcm16_audio_becomes_a_playable_wav(client):
    reply = client.chat(
        HI, model="gpt-4o-audio-preview", modalities=["text", "audio"], audio={"voice": "alloy", "format": "pcm16"}
    )
    audio = reply.audio
    assert audio is not None and audio.transcript
    with wave.open(io.BytesIO(audio.wav)) as w:
        assert w.getframerate() == 24_000 and w.getsampwidth() == 2 and w.getnframes() > 0
    assert audio.duration > 0.4
    assert reply.usage.audio_tokens > 0


def test_non_streamed_wav_audio(client):
    reply = client.chat(
        HI,
        model="gpt-4o-audio-preview",
        stream=False,
        modalities=["text", "audio"],
        audio={"voice": "echo", "format": "wav"},
    )
    assert reply.audio.wav[:4] == b"RIFF"
    assert reply.audio.transcript


def test_streaming_audio_other_than_pcm16_is_refused_before_sending(client, compass_server):
    with pytest.raises(cj.ValidationError, match="pcm16"):
        client.chat(HI, modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"})
    assert compass_server.requests == []


# -- broken streams ------------------------------------------------------------------------


def test_dropped_stream_keeps_the_partial_reply(client, compass_server):
    compass_server.enqueue(Scenario(text="one two three four five six seven", drop_after=3))
    with pytest.raises(cj.StreamError, match="broke off") as info:
        client.chat(HI)
    partial = info.value.reply
    assert partial.incomplete
    assert partial.text and "one two three four five six seven".startswith(partial.text)
    assert len(compass_server.requests) == 1  # a stream that delivered data is never retried


def test_error_object_inside_the_stream(client, compass_server):
    compass_server.enqueue(
        Scenario(text="one two three four", stream_error_after=2, error_message="content filter tripped")
    )
    with pytest.raises(cj.StreamError, match="content filter tripped") as info:
        client.chat(HI)
    assert info.value.reply.text


def test_malformed_event_is_a_clear_error(client, compass_server):
    compass_server.enqueue(Scenario(malformed_after=2))
    with pytest.raises(cj.StreamError, match="malformed") as info:
        client.chat(HI)
    assert "Traceback" not in str(info.value)
    assert info.value.reply.incomplete


def test_empty_stream_suggests_non_streaming(client, compass_server):
    compass_server.enqueue(Scenario(empty_body=True))
    with pytest.raises(cj.StreamError, match="stream=False"):
        client.chat(HI)


def test_interrupt_closes_and_keeps_partial(client, compass_server):
    compass_server.delay = 0.02
    seen = []

    def interrupt(delta):
        if delta.text:
            seen.append(delta.text)
            if len(seen) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        client.chat(HI, on_delta=interrupt)
    partial = info.value.reply
    assert partial.interrupted and partial.incomplete
    assert partial.text == "".join(seen)


# -- errors and retries ------------------------------------------------------------------------


def test_bad_key_is_not_retried_and_never_echoed(compass_server):
    secret = "sk-this-is-a-wrong-key-1234"
    client = cj.Client(api_key=secret)
    with pytest.raises(cj.AuthenticationError) as info:
        client.chat(HI)
    assert secret not in str(info.value) and secret not in repr(info.value) and secret not in repr(client)
    assert "1234" in str(info.value)  # masked form helps recognise which key
    assert len(compass_server.requests) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, cj.BadRequestError), (404, cj.NotFoundError), (403, cj.AuthenticationError)],
)
def test_client_errors_are_typed_and_not_retried(client, compass_server, status, error):
    compass_server.enqueue(Scenario(status=status, error_message="the server says no"))
    with pytest.raises(error, match="the server says no"):
        client.chat(HI)
    assert len(compass_server.requests) == 1


def test_unknown_deployment_is_not_found(client, compass_server):
    with pytest.warns(cj.CompassWarning), pytest.raises(cj.NotFoundError, match="gpt-4x"):
        client.chat(HI, model="gpt-4x")


def test_rate_limit_honours_retry_after_then_succeeds(client, compass_server):
    compass_server.enqueue(Scenario(status=429, retry_after=0.3, error_message="slow down"))
    started = time.perf_counter()
    reply = client.chat(HI)
    assert reply.text
    assert len(compass_server.requests) == 2
    assert time.perf_counter() - started >= 0.3


def test_server_errors_are_retried_a_bounded_number_of_times(compass_server):
    compass_server.enqueue(Scenario(status=503, times=10, error_message="overloaded"))
    client = cj.Client(max_retries=2, backoff=0.01)
    with pytest.raises(cj.ServerError, match="3 attempts"):
        client.chat(HI)
    assert len(compass_server.requests) == 3


def test_connection_refused_is_retried_then_a_clear_error(compass_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = cj.Client(base_url=f"http://127.0.0.1:{port}", max_retries=1, backoff=0.01)
    with pytest.raises(cj.APIConnectionError, match="Could not reach"):
        client.chat(HI)


def test_timeout_is_a_clear_error(compass_server):
    compass_server.enqueue(Scenario(delay=1.0, times=5))
    client = cj.Client(timeout=0.2, max_retries=0)
    with pytest.raises((cj.APITimeoutError, cj.StreamError)) as info:
        client.chat(HI, stream=False)
    assert "timeout" in str(info.value).lower() or "within" in str(info.value)


# -- async ---------------------------------------------------------------------------------------


def test_achat_streams_like_chat(compass_server):
    async def main():
        async with cj.Client() as client:
            pieces = []
            reply = await client.achat(HI, on_delta=lambda d: pieces.append(d.text))
            return reply, pieces

    reply, pieces = asyncio.run(main())
    assert "".join(pieces) == reply.text
    assert reply.usage is not None


def test_achat_runs_requests_concurrently(compass_server):
    compass_server.delay = 0.05

    async def main():
        async with cj.Client() as client:
            return await asyncio.gather(*(client.achat(HI, model=m) for m in ("gpt-4o", "gpt-4.1", "o3")))

    replies = asyncio.run(main())
    assert [r.model for r in replies] == ["gpt-4o", "gpt-4.1", "o3"]


def test_a_server_refusing_null_content_gets_a_resend_that_is_still_retried(client, compass_server):
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
    ]
    compass_server.enqueue(
        Scenario(status=500, error_message="1 validation error: messages.1.content Input should be a valid string"),
        Scenario(status=429, retry_after=0.05, error_message="slow down"),
    )
    reply = client.chat(messages)
    assert reply.text
    assert len(compass_server.requests) == 3
    assert compass_server.requests[0].body["messages"][1]["content"] is None
    assert [r.body["messages"][1]["content"] for r in compass_server.requests[1:]] == ["", ""]


# -- a given httpx client ---------------------------------------------------------------------


class _CountingTransport(httpx.HTTPTransport):
    """A real transport (real sockets) that notes the path of every request it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


class _AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await super().handle_async_request(request)


def test_a_given_http_client_is_used_with_its_headers_and_transport_and_left_open(compass_server):
    transport = _CountingTransport()
    with httpx.Client(headers={"x-team": "notebooks"}, transport=transport) as given:
        client = cj.Client(http_client=given)
        assert client.chat(HI).text
        assert transport.paths == ["/v1/chat/completions"]
        assert compass_server.requests[-1].headers["x-team"] == "notebooks"
        assert compass_server.requests[-1].headers["api-key"] == compass_server.key
        client.close()
        assert not given.is_closed  # the caller owns it
        assert client.chat(HI, stream=False).text  # and the client still sends through it
        assert len(transport.paths) == 2


def test_a_given_async_http_client_is_used_and_left_open(compass_server):
    transport = _AsyncCountingTransport()

    async def main():
        async with httpx.AsyncClient(headers={"x-team": "async"}, transport=transport) as given:
            async with cj.Client(async_http_client=given) as client:
                reply = await client.achat(HI)
            return reply, given.is_closed

    reply, closed = asyncio.run(main())
    assert reply.text and not closed
    assert transport.paths == ["/v1/chat/completions"]
    assert compass_server.requests[-1].headers["x-team"] == "async"


def test_a_given_http_client_keeps_its_own_timeout(compass_server):
    compass_server.enqueue(Scenario(delay=1.0, times=5))
    with httpx.Client(timeout=0.2) as given:
        client = cj.Client(http_client=given, timeout=30, max_retries=0)
        started = time.perf_counter()
        with pytest.raises(cj.APITimeoutError, match="given http client's timeout"):
            client.chat(HI, stream=False)
    assert time.perf_counter() - started < 5


def test_a_given_http_client_that_follows_redirects_still_does_not_take_the_key_elsewhere(compass_server):
    with RawServer() as raw, httpx.Client(follow_redirects=True) as given:
        raw.add(status=307, headers={"location": f"{compass_server.base_url}/v1/chat/completions"}, body=b"")
        client = cj.Client(base_url=raw.base_url, api_key=KEY, http_client=given, max_retries=0)
        with pytest.raises(cj.APIConnectionError, match="redirect"):
            client.chat(HI)
    assert compass_server.requests == []


# -- dialects -------------------------------------------------------------------------------------

TOOL_TURN = [
    {"role": "user", "content": "Weather?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 18}'},
]
REFUSES_NULL = Scenario(
    status=422, error_message="1 validation error: messages.1.content Input should be a valid string"
)


def test_each_client_learns_its_own_servers_quirk(compass_server):
    with StandInServer() as other:
        picky = cj.Client(backoff=0.01)  # the compass_server fixture's server
        lenient = cj.Client(base_url=other.base_url, api_key=other.key)
        compass_server.enqueue(REFUSES_NULL)
        assert picky.chat(TOOL_TURN).text and lenient.chat(TOOL_TURN).text
        assert picky.dialect.null_content_as_empty and not lenient.dialect.null_content_as_empty
        assert [r.body["messages"][1]["content"] for r in compass_server.requests] == [None, ""]
        picky.chat(TOOL_TURN), lenient.chat(TOOL_TURN)  # learned: sent as "" at once; the other server: null
        assert compass_server.requests[-1].body["messages"][1]["content"] == ""
        assert [r.body["messages"][1]["content"] for r in other.requests] == [None, None]
        assert len(compass_server.requests) == 3
        picky.close(), lenient.close()


def test_a_client_that_follows_the_settings_forgets_a_quirk_when_the_server_changes(compass_server):
    with StandInServer(key=compass_server.key) as other, cj.Client() as client:
        compass_server.enqueue(REFUSES_NULL)
        client.chat(TOOL_TURN)
        assert client.dialect.null_content_as_empty
        config.set("base_url", other.base_url)
        client.chat(TOOL_TURN)
        assert not client.dialect.null_content_as_empty
        assert other.requests[-1].body["messages"][1]["content"] is None


def test_the_llama_cpp_dialect_rewrites_the_body_on_the_wire(compass_server):
    from compass_jupyter.local_model.dialect import LlamaCppDialect

    # The stand-in knows gpt-4o; the local route names its own model the same way.
    with cj.Client(dialect=LlamaCppDialect(model_id="gpt-4o")) as client:
        parts = [{"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]}]
        with pytest.warns(cj.CompassWarning, match="whichever model is named"):
            reply = client.chat(parts + TOOL_TURN[1:], model="o3", random_seed=7, stream=False)
    sent = compass_server.requests[-1].body
    assert len(compass_server.requests) == 1
    assert sent["seed"] == 7 and "random_seed" not in sent
    assert sent["model"] == reply.model == "gpt-4o"
    assert sent["messages"][0]["content"] == "one\ntwo"
    assert sent["messages"][1]["content"] == ""
    assert not client.dialect.null_content_as_empty  # nothing learned: llama.cpp's shape is known


def test_achat_resends_in_the_dialect_and_retries_like_chat(compass_server):
    compass_server.enqueue(REFUSES_NULL, Scenario(status=503, error_message="busy"))

    async def main():
        async with cj.Client(backoff=0.01) as client:
            return await client.achat(TOOL_TURN), client.dialect.null_content_as_empty

    reply, learned = asyncio.run(main())
    assert reply.text and learned
    assert [r.body["messages"][1]["content"] for r in compass_server.requests] == [None, "", ""]
