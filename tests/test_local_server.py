"""The local model (SmolLM2 on llama.cpp) as a child process, spoken to over real HTTP.

Needs the [local] extra; the whole module is skipped without it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from compass_jupyter._exceptions import ConfigError
from compass_jupyter.local_model.server import (
    LOCAL_MODEL_ID,
    LocalModelServer,
    current_local,
    local_available,
    model_path,
    start_local,
    stop_local,
)

pytestmark = pytest.mark.local

if not local_available():
    pytest.skip("the [local] extra (llama.cpp and the SmolLM2 model) is not installed", allow_module_level=True)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def server():
    with LocalModelServer() as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    # trust_env=False: a proxy from the environment must not see loopback traffic.
    with httpx.Client(base_url=server.base_url, timeout=120, trust_env=False) as client:
        yield client


def chat(http: httpx.Client, content: str, **fields) -> dict:
    body = {"model": LOCAL_MODEL_ID, "messages": [{"role": "user", "content": content}], "max_tokens": 24, **fields}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def stream_events(http: httpx.Client, content: str, **fields) -> list[str]:
    body = {"model": LOCAL_MODEL_ID, "messages": [{"role": "user", "content": content}], "stream": True, **fields}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]


def process_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# -- finding the model ------------------------------------------------------------------------


def test_model_path_points_at_the_bundled_gguf():
    path = model_path()
    assert path.suffix == ".gguf"
    assert path.stat().st_size > 50_000_000


def test_checking_availability_imports_nothing_heavy():
    probe = "import sys, compass_jupyter.local_model.server as l; print(l.local_available(), 'llama_cpp' in sys.modules, 'llm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False", "False"]


# -- what the served model does ---------------------------------------------------------------


def test_server_lists_the_local_model_id(server, http):
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    models = http.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == [LOCAL_MODEL_ID]


def test_chat_completion_returns_text(http):
    data = chat(http, "Say hello in one short sentence.", temperature=0)
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    assert data["model"] == LOCAL_MODEL_ID
    assert data["usage"]["completion_tokens"] > 0


def test_streamed_reply_arrives_in_several_chunks_and_ends_with_done(http):
    events = stream_events(http, "Count from one to ten.", max_tokens=24, temperature=0)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    assert sum(1 for p in pieces if p) >= 5
    assert "".join(pieces).strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_logprobs_come_with_top_alternatives(http):
    data = chat(http, "Name a fruit.", max_tokens=5, logprobs=True, top_logprobs=3)
    entries = data["choices"][0]["logprobs"]["content"]
    assert len(entries) == data["usage"]["completion_tokens"]
    text = data["choices"][0]["message"]["content"]
    assert "".join(e["token"] for e in entries).strip() == text.strip()
    for entry in entries:
        assert entry["logprob"] <= 0
        top = entry["top_logprobs"]
        best = [t["logprob"] for t in top[:3]]
        assert best == sorted(best, reverse=True)
        # llama.cpp appends the sampled token when it is not among the top 3.
        if len(top) == 4:
            assert top[3]["token"] == entry["token"] and top[3]["logprob"] <= best[-1]
        else:
            assert len(top) == 3 and entry["token"] in [t["token"] for t in top]


def test_named_tool_choice_returns_a_tool_call_with_json_arguments(http):
    data = chat(
        http,
        "What is the weather in Paris?",
        max_tokens=40,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    arguments = json.loads(call["function"]["arguments"])
    assert isinstance(arguments["city"], str)


def test_a_fixed_seed_gives_the_same_text_each_time(http):
    def sample(seed: int) -> str:
        body = chat(http, "Write one sentence about the sea.", seed=seed, temperature=1.0, max_tokens=12)
        return body["choices"][0]["message"]["content"]

    first = sample(1234)
    assert sample(1234) == first  # straight after: the prompt is in llama.cpp's cache
    chat(http, "Something else entirely.", max_tokens=4)  # now it is not
    assert sample(1234) == first
    # ... and the seed is really used: other seeds sample other words.
    assert len({first, sample(1), sample(2)}) > 1


def test_temperature_zero_repeats_even_when_the_prompt_is_cached(http):
    # With llama.cpp's default batching this prompt answered differently the
    # second time (re-evaluated from the prefix cache); the server's
    # deterministic mode must make both answers equal.
    answers = [
        chat(http, "Name a color.", temperature=0, max_tokens=16)["choices"][0]["message"]["content"] for _ in range(3)
    ]
    assert answers[0] == answers[1] == answers[2]


def test_two_streams_at_once_both_finish(http):
    # Compare mode sends two requests at once; the second must wait, not cut the first off.
    results: list[list[str]] = []

    def run() -> None:
        results.append(stream_events(http, "Tell me about the moon.", max_tokens=12, temperature=0))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2
    for events in results:
        assert events[-1] == "[DONE]"
        assert json.loads(events[-2])["choices"][0]["finish_reason"] in ("stop", "length")


# -- the process ----------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads the process's environment from /proc")
def test_the_server_leaves_a_core_free_and_waits_without_spinning(server):
    from compass_jupyter.local_model.server import default_threads

    assert server.threads == default_threads()
    environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    assert b"OMP_WAIT_POLICY=PASSIVE" in environ  # llama.cpp's OpenMP threads sleep at their barrier
    command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
    for option in (b"--n_threads", b"--n_threads_batch"):
        assert command[command.index(option) + 1] == str(default_threads()).encode()


def test_stop_ends_the_process_and_frees_the_port():
    server = LocalModelServer().start()
    pid, port = server.pid, server.port
    assert server.running
    assert f"127.0.0.1:{port}" in server.output()  # uvicorn's "running on ..." line
    server.stop()
    assert not server.running
    assert process_gone(pid)
    assert port_free(port)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False)
    server.stop()  # a second stop is harmless


def test_start_local_starts_once_and_stop_local_stops_it():
    assert current_local() is None
    first = start_local()
    try:
        assert start_local() is first
        assert current_local() is first
        assert first.running
    finally:
        assert stop_local() is True
    assert not first.running
    assert current_local() is None
    assert stop_local() is False


def test_start_local_replaces_a_server_that_crashed():
    first = start_local()
    try:
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while first.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert current_local() is None
        second = start_local()
        assert second is not first and second.running
        assert httpx.get(f"{second.base_url}/v1/models", trust_env=False).status_code == 200
    finally:
        stop_local()


def test_missing_model_file_is_a_config_error_naming_the_path(tmp_path: Path):
    missing = tmp_path / "no-such-model.gguf"
    with pytest.raises(ConfigError) as caught:
        LocalModelServer(model=missing).start()
    assert str(missing) in str(caught.value)


def test_a_file_that_is_not_a_model_fails_fast_with_the_server_output(tmp_path: Path):
    junk = tmp_path / "not-a-model.gguf"
    junk.write_bytes(os.urandom(4096))
    server = LocalModelServer(model=junk, startup_timeout=60)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        server.start()
    assert time.monotonic() - started < 30  # the exit is noticed, the timeout is not waited out
    message = str(caught.value)
    assert str(junk) in message
    assert "Failed to load model" in message  # the server's own last words
    assert not server.running


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"{port}.*in use"):
            LocalModelServer(port=port).start()


LAUNCHER = textwrap.dedent(
    """
    import sys, time
    from compass_jupyter.local_model.server import start_local
    server = start_local()
    print(server.pid, server.port, flush=True)
    if sys.argv[1] == "linger":
        time.sleep(600)
    """
)


def test_server_stops_when_the_python_process_exits():
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, "exit"], capture_output=True, text=True, timeout=120, check=True
    )
    pid, port = map(int, out.stdout.split())
    assert process_gone(pid)
    assert port_free(port)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_server_dies_with_a_killed_kernel():
    logs_before = set(Path(tempfile.gettempdir()).glob("compass-local-*"))
    kernel = subprocess.Popen([sys.executable, "-c", LAUNCHER, "linger"], stdout=subprocess.PIPE, text=True)
    try:
        pid, _port = map(int, kernel.stdout.readline().split())
        assert not process_gone(pid, within=0.2)
        kernel.send_signal(signal.SIGKILL)  # no atexit, no cleanup: only the kernel's death
        assert process_gone(pid)
        # The server's log lives in an already unlinked file: nothing is left in the temp dir.
        assert set(Path(tempfile.gettempdir()).glob("compass-local-*")) <= logs_before
    finally:
        kernel.kill()
        kernel.wait()
        kernel.stdout.close()
