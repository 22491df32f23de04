"""Serving a cassette over HTTP: recorded with the client against the stand-in, replayed by the stand-in.

Every exchange goes through real loopback sockets. A cassette is recorded by
running the client against an ordinary stand-in with ``cassette_mode=record``;
that server is stopped, and a server reading the cassette answers the same
requests (from our client without a cassette setting, and from plain httpx).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import compass_jupyter as cj
from compass_jupyter import BadRequestError, CassetteError, RateLimitError, ServerError, StreamError
from compass_jupyter.reply import Reply, Usage
from compass_jupyter.settings import config
from compass_jupyter.store.cassette import Cassette
from compass_jupyter.store.exchanges import forget_cassettes
from compass_jupyter.testing import Scenario, StandInServer
from compass_jupyter.testing.cassette_server import MISS_CODE

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello, how is the weather in Paris today?"}]
PLAIN = [{"role": "user", "content": "Name three rivers of France."}]
LIMITED = [{"role": "user", "content": "This one will be rate limited."}]
BROKEN = [{"role": "user", "content": "This stream breaks with an error event."}]
TWICE = [{"role": "user", "content": "Asked twice, answered differently."}]
LOGPROBS: dict[str, Any] = {"logprobs": True, "top_logprobs": 2}


@dataclasses.dataclass
class Recording:
    path: Path
    streamed: Reply
    plain: Reply
    limited: RateLimitError
    broken: StreamError


def _client(server: StandInServer, **settings: Any) -> cj.Client:
    # No retries: a replayed 429 or 5xx would otherwise be asked again with backoff delays.
    return cj.Client(base_url=server.base_url, api_key=server.key or "unused", max_retries=0, **settings)


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[Recording]:
    """A cassette of a streamed, a plain, a rate-limited and a broken exchange, and what the client got."""
    path = tmp_path / "run.json"
    config.set("cassette", str(path))
    config.set("cassette_mode", "record")
    try:
        with StandInServer() as live, _client(live) as client:
            streamed = client.chat(HELLO, **LOGPROBS)
            plain = client.chat(PLAIN, stream=False, **LOGPROBS)
            live.enqueue(Scenario(status=429))
            with pytest.raises(RateLimitError) as limited:
                client.chat(LIMITED)
            live.enqueue(Scenario(stream_error_after=2, error_message="The model fell over."))
            with pytest.raises(StreamError) as broken:
                client.chat(BROKEN)
            live.enqueue(Scenario(text="The first answer."), Scenario(text="The second answer."))
            client.chat(TWICE)
            client.chat(TWICE)
    finally:
        forget_cassettes()
        config.unset("cassette")
        config.unset("cassette_mode")
    yield Recording(path, streamed, plain, limited.value, broken.value)


@pytest.fixture
def replaying(recording: Recording) -> Iterator[StandInServer]:
    with StandInServer(cassette=recording.path) as server:
        yield server


def counts(usage: Usage | None) -> dict[str, Any]:
    """The token counts of a Usage (``raw`` holds whatever else the server sent, which may differ)."""
    assert usage is not None
    return {name: value for name, value in dataclasses.asdict(usage).items() if name != "raw"}


def sse_data(raw: bytes) -> list[str]:
    return [line[len("data: ") :] for line in raw.decode("utf-8").splitlines() if line.startswith("data: ")]


# --------------------------------------------------------------------------- replies


def test_a_streamed_request_gets_the_recorded_reply_in_several_chunks(
    recording: Recording, replaying: StandInServer
) -> None:
    pieces: list[str] = []
    with _client(replaying) as client:
        reply = client.chat(HELLO, on_delta=lambda delta: pieces.append(delta.text), **LOGPROBS)
    assert reply.source == "server"  # it came over the wire, not from a cassette setting
    assert reply.text == recording.streamed.text
    assert reply.first.logprobs == recording.streamed.first.logprobs and reply.first.logprobs
    assert counts(reply.usage) == counts(recording.streamed.usage)
    assert reply.first.finish_reason == recording.streamed.first.finish_reason
    assert len([piece for piece in pieces if piece]) > 3 and "".join(pieces) == reply.text
    assert replaying.last_request is not None and replaying.last_request.body["messages"] == HELLO


def test_the_stream_on_the_wire_is_chunked_sse_ending_with_usage_and_done(
    recording: Recording, replaying: StandInServer
) -> None:
    body = {"model": "gpt-4o", "messages": HELLO, "stream": True, **LOGPROBS}
    response = httpx.post(replaying.base_url + CHAT, json=body, headers={"api-key": replaying.key}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["transfer-encoding"] == "chunked"
    data = sse_data(response.content)
    assert data[-1] == "[DONE]"
    events = [json.loads(item) for item in data[:-1]]
    assert all(event["object"] == "chat.completion.chunk" for event in events)
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == recording.streamed.usage.total_tokens
    text = "".join(event["choices"][0]["delta"].get("content") or "" for event in events if event["choices"])
    assert text == recording.streamed.text


def test_a_plain_request_gets_the_recorded_completion(recording: Recording, replaying: StandInServer) -> None:
    with _client(replaying) as client:
        reply = client.chat(PLAIN, stream=False, **LOGPROBS)
    assert reply.text == recording.plain.text
    assert reply.first.logprobs == recording.plain.first.logprobs and reply.first.logprobs
    assert counts(reply.usage) == counts(recording.plain.usage)
    body = {"model": "gpt-4o", "messages": PLAIN, **LOGPROBS}
    response = httpx.post(replaying.base_url + CHAT, json=body, headers={"api-key": replaying.key}, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["object"] == "chat.completion" and document["choices"][0]["message"]["content"] == reply.text


def test_how_the_answer_is_delivered_does_not_matter(recording: Recording, replaying: StandInServer) -> None:
    with _client(replaying) as client:
        as_plain = client.chat(HELLO, stream=False, **LOGPROBS)  # recorded streamed
        as_stream = client.chat(PLAIN, **LOGPROBS)  # recorded plain
    assert as_plain.text == recording.streamed.text
    assert as_stream.text == recording.plain.text


def test_the_same_request_recorded_twice_answers_in_order_then_repeats(replaying: StandInServer) -> None:
    with _client(replaying) as client:
        texts = [client.chat(TWICE).text for _ in range(3)]
    assert texts == ["The first answer.", "The second answer.", "The second answer."]


def test_the_azure_route_is_answered_from_the_cassette_too(recording: Recording, replaying: StandInServer) -> None:
    with _client(replaying, api_style="azure") as client:
        reply = client.chat(HELLO, **LOGPROBS)
    assert reply.text == recording.streamed.text
    assert replaying.last_request is not None
    assert replaying.last_request.path == "/openai/deployments/gpt-4o/chat/completions"
    # The rest of the Azure route's rules still hold: api-version is required.
    url = replaying.base_url + "/openai/deployments/gpt-4o/chat/completions"
    response = httpx.post(url, json={"messages": HELLO}, headers={"api-key": replaying.key}, timeout=10)
    assert response.status_code == 400 and "api-version" in response.json()["error"]["message"]


# --------------------------------------------------------------------------- errors


def test_a_recorded_error_comes_back_with_its_status_and_class(recording: Recording, replaying: StandInServer) -> None:
    with _client(replaying) as client, pytest.raises(RateLimitError) as caught:
        client.chat(LIMITED)
    assert caught.value.status_code == 429
    said = recording.limited.body["error"]["message"]  # the recording server's own words
    assert said in caught.value.message and caught.value.message.count(said) == 1  # said once, not wrapped twice
    assert caught.value.message.count("Compass is rate limiting") == 1
    response = httpx.post(
        replaying.base_url + CHAT,
        json={"model": "gpt-4o", "messages": LIMITED},
        headers={"api-key": replaying.key},
        timeout=10,
    )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["message"] == said  # another client sees what the server said, not this client's advice
    assert error["type"] == "rate_limit_error" and error["code"] == "429"


def test_an_error_recorded_without_a_status_arrives_after_a_200(recording: Recording, replaying: StandInServer) -> None:
    assert "The model fell over." in recording.broken.message
    with _client(replaying) as client, pytest.raises(StreamError) as caught:
        client.chat(BROKEN)
    assert caught.value.message == recording.broken.message  # the same error event, read the same way
    with _client(replaying) as client, pytest.raises(BadRequestError) as plain:
        client.chat(BROKEN, stream=False)  # no stream to break: a 200 body holding only the error
    assert "The model fell over." in plain.value.message


def test_a_changed_request_is_a_400_naming_what_differs(recording: Recording, replaying: StandInServer) -> None:
    changed = [{"role": "user", "content": "Hello, how is the weather in Lyon today?"}]
    with _client(replaying) as client, pytest.raises(BadRequestError) as caught:
        client.chat(changed, **LOGPROBS)
    message = caught.value.message
    assert caught.value.status_code == 400
    assert "holds no answer" in message and "nearest recorded request (number 1)" in message
    assert "messages[0]" in message and "Paris" in message and "Lyon" in message
    # The whole CassetteError text travels in the body, exactly as replaying in process would say it.
    expected = _miss_text(recording.path, {"model": "gpt-4o", "messages": changed, **LOGPROBS})
    assert caught.value.body["error"] == {
        "message": expected,
        "type": "invalid_request_error",
        "param": None,
        "code": MISS_CODE,
    }
    with _client(replaying) as client, pytest.raises(BadRequestError, match=r"temperature \(not recorded; now 0.5\)"):
        client.chat(HELLO, temperature=0.5, **LOGPROBS)


def _miss_text(path: Path, body: dict[str, Any]) -> str:
    with pytest.raises(CassetteError) as caught:
        Cassette(path, mode="replay").answer(body)
    return caught.value.message


def test_the_key_rules_of_the_stand_in_still_apply(recording: Recording, replaying: StandInServer) -> None:
    body = {"model": "gpt-4o", "messages": HELLO, **LOGPROBS}
    refused = httpx.post(replaying.base_url + CHAT, json=body, headers={"api-key": "wrong"}, timeout=10)
    assert refused.status_code == 401
    with StandInServer(key="", cassette=recording.path) as open_server:
        assert httpx.post(open_server.base_url + CHAT, json=body, timeout=10).status_code == 200


def test_a_queued_scenario_still_answers_first_and_shapes_the_stream(
    recording: Recording, replaying: StandInServer
) -> None:
    replaying.enqueue(Scenario(status=503), Scenario(crlf=True, keepalive=True))
    with _client(replaying) as client:
        with pytest.raises(ServerError):
            client.chat(HELLO, **LOGPROBS)
        body = {"model": "gpt-4o", "messages": HELLO, "stream": True, **LOGPROBS}
        response = httpx.post(replaying.base_url + CHAT, json=body, headers={"api-key": replaying.key}, timeout=10)
    assert b"\r\n\r\n" in response.content and b": keep-alive" in response.content
    assert b"data: [DONE]" in response.content


# --------------------------------------------------------------------------- unreadable cassettes


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ('{"format": "compass-jupyter/cassette", "version": 1, "interactions": [', "is not JSON"),
        ('{"format": "compass-jupyter/cassette", "version": 99, "interactions": []}', "newer compass-jupyter"),
    ],
)
def test_an_unreadable_cassette_fails_before_a_port_is_bound(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "run.json"
    if content is not None:
        _write(path, content)
    with pytest.raises(CassetteError, match=expected):
        StandInServer(cassette=path)


# --------------------------------------------------------------------------- command line


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "compass_jupyter.testing", *args]


def test_command_line_serves_a_cassette_and_stops_quietly(recording: Recording) -> None:
    process = subprocess.Popen(
        _command("--cassette", str(recording.path), "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(20, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None and process.stderr is not None
        url_line = process.stdout.readline().strip()
        key_line = process.stdout.readline().strip()
        assert url_line.startswith("COMPASS_BASE_URL=http://127.0.0.1:")
        assert key_line.startswith("COMPASS_API_KEY=")
        url, key = url_line.split("=", 1)[1], key_line.split("=", 1)[1]
        banner = process.stderr.readline()
        assert "replaying the cassette" in banner and "6 exchanges" in banner
        body = {"model": "gpt-4o", "messages": PLAIN, **LOGPROBS}
        response = httpx.post(url + CHAT, json=body, headers={"api-key": key}, timeout=10)
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == recording.plain.text
        missing = httpx.post(url + CHAT, json={**body, "seed": 7}, headers={"api-key": key}, timeout=10)
        assert missing.status_code == 400 and "seed (not recorded; now 7)" in missing.json()["error"]["message"]
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 0
    assert "Traceback" not in stderr and key not in stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ('{"format": "compass-jupyter/cassette", "version": 1, "interactions": [{"request": {', "is not JSON"),
        ("not a cassette at all", "is not JSON"),
        ('{"format": "compass-jupyter/cassette", "version": 2, "interactions": []}', "newer compass-jupyter"),
    ],
)
def test_command_line_exits_2_with_one_paragraph_for_a_bad_cassette(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "run.json"
    if content is not None:
        _write(path, content)
    done = subprocess.run(_command("--cassette", str(path), "--port", "0"), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stdout == ""  # no COMPASS_BASE_URL for a server that never started
    assert "Traceback" not in done.stderr
    paragraph = done.stderr.strip()
    assert "\n" not in paragraph and expected in paragraph and str(path) in paragraph
    with pytest.raises(CassetteError) as caught:
        Cassette(path, mode="replay")
    assert paragraph == caught.value.message


def test_command_line_refuses_models_with_a_cassette(recording: Recording) -> None:
    done = subprocess.run(
        _command("--cassette", str(recording.path), "--models", "gpt-4o"), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "--models does not apply with --cassette" in done.stderr
