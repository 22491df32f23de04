"""%%compass and %compass in a real IPython shell against the stand-in server.

Each test runs cells through ``InteractiveShell.run_cell`` and looks at what a
user would see (the display outputs, stdout, stderr) and at what the server
received. Outputs are checked twice where it matters: as a front end or nbclient
saves them (display updates applied) and as nbval compares them (updates ignored).
"""

from __future__ import annotations

import _thread
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import compass_jupyter as cj
from compass_jupyter import magics
from compass_jupyter.magics.configurable import Compass
from compass_jupyter.settings import SPECS, config
from compass_jupyter.testing import Scenario
from compass_jupyter.views.plain import PlainLiveView

# -- harness ---------------------------------------------------------------------------------


@dataclass
class Cell:
    """What running one cell showed."""

    success: bool
    error: BaseException | None
    stdout: str
    stderr: str
    messages: list[Any] = field(default_factory=list)  # every display message, updates included

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The outputs as a front end (or nbclient) keeps them: updates applied in place."""
        kept: list[dict[str, Any]] = []
        by_id: dict[str, dict[str, Any]] = {}
        for message in self.messages:
            display_id = (message.transient or {}).get("display_id")
            if message.update:
                if display_id in by_id:
                    by_id[display_id]["data"] = message.data
                continue
            out = {"data": message.data}
            kept.append(out)
            if display_id:
                by_id[display_id] = out
        return [o["data"] for o in kept]

    @property
    def first_states(self) -> list[dict[str, Any]]:
        """The outputs as nbval sees them: display updates ignored."""
        return [m.data for m in self.messages if not m.update]

    @property
    def visible(self) -> list[dict[str, Any]]:
        """Saved outputs that show something (the emptied live output left out)."""
        return [o for o in self.outputs if any(v for v in o.values())]

    @property
    def markdown(self) -> str:
        return "\n".join(o.get("text/markdown", "") for o in self.visible)

    @property
    def text(self) -> str:
        return "\n".join(o.get("text/plain", "") for o in self.visible)


@pytest.fixture
def shell(compass_server):
    sh = InteractiveShell.instance()
    magics.load(sh)
    before = set(sh.user_ns)
    yield sh
    magics.unload(sh)
    sh.config.pop("Compass", None)  # what %config Compass.x left in the shell's config
    for name in set(sh.user_ns) - before:
        del sh.user_ns[name]


def run(sh: InteractiveShell, code: str) -> Cell:
    with capture_output() as cap:
        result = sh.run_cell(code)
    return Cell(
        success=result.success,
        error=result.error_in_exec or result.error_before_exec,
        stdout=cap.stdout,
        stderr=cap.stderr,
        messages=list(cap.outputs),
    )


def ok(sh: InteractiveShell, code: str) -> Cell:
    cell = run(sh, code)
    assert cell.success, f"cell failed: {cell.error!r}\nstderr: {cell.stderr}"
    return cell


def refused(sh: InteractiveShell, server, code: str) -> Cell:
    """Run a cell that must fail as a one-paragraph error without sending anything."""
    sent = len(server.requests)
    history = json.dumps(cj.session().messages)
    cell = run(sh, code)
    assert not cell.success
    assert type(cell.error).__name__ == "UsageError"
    assert "UsageError:" in cell.stderr and "Traceback" not in cell.stderr
    assert len(server.requests) == sent, "a refused cell must send nothing"
    assert json.dumps(cj.session().messages) == history, "a refused cell must leave the history unchanged"
    assert cell.visible == []
    return cell


def body(server) -> dict[str, Any]:
    return server.requests[-1].body


# -- loading and settings ------------------------------------------------------------------


def test_load_ext_is_cheap_and_registers_everything():
    code = textwrap.dedent(
        """
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        sh = InteractiveShell.instance()
        sh.run_line_magic("load_ext", "compass_jupyter")
        heavy = [m for m in ("httpx", "ipywidgets", "compass_jupyter.client", "compass_jupyter.conversation") if m in sys.modules]
        print("heavy", heavy)
        print("cell", "compass" in sh.magics_manager.magics["cell"])
        print("line", "compass" in sh.magics_manager.magics["line"])
        print("configurable", [type(c).__name__ for c in sh.configurables if type(c).__name__ == "Compass"])
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPASS_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "heavy []" in out.stdout
    assert "cell True" in out.stdout and "line True" in out.stdout
    assert "configurable ['Compass']" in out.stdout


def test_loading_again_leaves_one_configurable_and_working_magics(shell, compass_server):
    magics.load(shell)
    magics.load(shell)
    assert sum(isinstance(c, Compass) for c in shell.configurables) == 1
    ok(shell, "%%compass\nStill here")
    assert len(compass_server.requests) == 1
    magics.unload(shell)
    assert "compass" not in shell.magics_manager.magics["cell"]
    assert not any(isinstance(c, Compass) for c in shell.configurables)


def test_config_compass_lists_settings_but_never_the_key(shell, compass_server):
    cell = ok(shell, "%config Compass")
    for name in (
        "model",
        "base_url",
        "api_style",
        "api_version",
        "strict",
        "max_retries",
        "timeout",
        "max_tool_rounds",
    ):
        assert f"Compass.{name}=" in cell.stdout
    assert "api_key" not in cell.stdout
    assert compass_server.key not in cell.stdout
    # the environment is what is in effect, and %config shows it
    assert f"Current: '{compass_server.base_url}'" in cell.stdout


def test_config_assignment_sets_the_model_the_next_cell_uses(shell, compass_server):
    ok(shell, '%config Compass.model = "gpt-4.1"')
    assert config.get("model") == "gpt-4.1"
    assert config.source("model") == "%config"
    ok(shell, "%%compass\nHi")
    assert body(compass_server)["model"] == "gpt-4.1"


def test_config_assignment_of_a_bad_value_is_refused(shell, caplog):
    run(shell, "%config Compass.timeout = -1")  # IPython logs the error of %config
    assert "timeout must be between" in caplog.text
    assert config.get("timeout") == 120.0


def test_compass_set_changes_settings_and_keeps_config_in_sync(shell, compass_server):
    cell = ok(shell, "%compass set model=gpt-4.1 strict=true timeout=30")
    assert "model = gpt-4.1" in cell.text
    assert config.source("model") == "%compass set"
    assert (config.get("model"), config.get("strict"), config.get("timeout")) == ("gpt-4.1", True, 30.0)
    assert "30.0" in ok(shell, "%config Compass.timeout").stdout
    ok(shell, "%%compass\nHi")
    assert body(compass_server)["model"] == "gpt-4.1"


def test_compass_set_checks_every_pair_before_storing_any(shell):
    cell = run(shell, "%compass set model=gpt-4.1 api_style=soap")
    assert not cell.success and "api_style must be 'openai' or 'azure'" in cell.stderr
    assert "Traceback" not in cell.stderr
    assert config.source("model") == "default"


def test_compass_set_refuses_the_key_and_unknown_names(shell):
    cell = run(shell, "%compass set api_key=sk-secret-value-1234")
    assert "%compass key" in cell.stderr and "sk-secret" not in cell.stderr
    assert not config.is_set("api_key")
    cell = run(shell, "%compass set modle=x")
    assert "Did you mean model" in cell.stderr


def test_compass_config_shows_values_and_sources_with_the_key_masked(shell, compass_server):
    ok(shell, "%compass set model=gpt-4.1")
    cell = ok(shell, "%compass config")
    plain = cell.text
    assert compass_server.key not in plain and compass_server.key not in cell.markdown
    assert "env COMPASS_API_KEY" in plain
    row = next(line for line in plain.splitlines() if line.startswith("model "))
    assert "gpt-4.1" in row and "%compass set" in row
    row = next(line for line in plain.splitlines() if line.startswith("api_key "))
    assert "..." in row or "****" in row


def test_compass_key_prompts_hidden_and_shows_only_the_masked_key(shell, compass_server, monkeypatch):
    secret = "sk-test-" + "x" * 20 + "wxyz"
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt="": prompts.append(prompt) or secret)
    cell = ok(shell, "%compass key")
    assert prompts and "hidden" in prompts[0]
    assert config.get("api_key") == secret and config.source("api_key") == "%compass key"
    assert secret not in cell.text + cell.stdout + cell.stderr + cell.markdown
    assert "sk-...wxyz" in cell.text
    # the key typed in is the one sent (the server refuses it: it is not the server's key)
    cell = run(shell, "%%compass\nHi")
    assert compass_server.requests[-1].headers["api-key"] == secret
    assert "refused the API key" in cell.stderr and secret not in cell.stderr


def test_compass_key_refuses_a_key_typed_into_the_cell(shell):
    cell = run(shell, "%compass key sk-typed-into-the-cell-1234")
    assert "would be saved in the notebook" in cell.stderr
    assert not config.is_set("api_key")


def test_compass_models_lists_the_catalog(shell):
    cell = ok(shell, "%compass models")
    assert "gpt-4o-audio-preview" in cell.text and "cohere-command-r-08-2024" in cell.text
    assert "<table>" in cell.visible[0]["text/html"]
    assert "| id |" in cell.markdown


def test_unknown_subcommand_suggests_the_right_one(shell):
    cell = run(shell, "%compass histroy")
    assert "Did you mean history" in cell.stderr and "Traceback" not in cell.stderr


def test_compass_help_lists_subcommands_and_cell_options(shell):
    cell = ok(shell, "%compass help")
    assert "%compass export PATH" in cell.text
    assert "--max-completion-tokens" in cell.text


# -- the cell magic: what is sent ----------------------------------------------------------


def test_a_cell_streams_and_ends_as_one_final_markdown_output(shell, compass_server):
    cell = ok(shell, "%%compass\nHello there")
    sent = body(compass_server)
    assert sent["messages"] == [{"role": "user", "content": "Hello there"}]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    final = cell.visible
    assert len(final) == 1, final
    assert "Hello there" in final[0]["text/markdown"]
    assert "finish: stop" in final[0]["text/markdown"] and "total" in final[0]["text/markdown"]
    assert "gpt-4o" in final[0]["text/plain"]
    # nbval ignores updates: it sees the live output's first (empty) state and the same final output
    assert cell.first_states[0] == {"text/plain": ""}
    assert cell.first_states[-1] == final[0]
    assert [o for o in cell.outputs if o != {"text/plain": ""}] == final
    reply = cj.session().messages[-1]
    assert reply["role"] == "assistant" and reply["content"] in final[0]["text/markdown"]


OPTION_CASES = [
    ("-m gpt-4.1", {"model": "gpt-4.1"}),
    ("--model gpt-4.1", {"model": "gpt-4.1"}),
    ("-t 0.5", {"temperature": 0.5}),
    ("--temperature 0", {"temperature": 0}),
    ("--top-p 0.9", {"top_p": 0.9}),
    ("--top-k 40", {"top_k": 40}),
    ("-m qwen3-14b --min-p 0.05", {"min_p": 0.05}),
    ("--max-tokens 50", {"max_tokens": 50}),
    ("-m gpt-5 --max-completion-tokens 60", {"max_completion_tokens": 60}),
    ("-m gpt-4o --presence-penalty 0.5", {"presence_penalty": 0.5}),
    ("--frequency-penalty -1.5", {"frequency_penalty": -1.5}),
    ("--stop END --stop '\\n\\n'", {"stop": ["END", "\n\n"]}),
    ("-n 2", {"n": 2}),
    ("--seed 7", {"random_seed": 7}),
    ("--no-stream", {"stream": False}),
    ("--stream", {"stream": True}),
    ("--logprobs 3", {"logprobs": True, "top_logprobs": 3}),
    ("--json", {"response_format": {"type": "json_object"}}),
    ("-m gpt-5 --reasoning-effort low", {"reasoning_effort": "low"}),
    ("-m gpt-5 --verbosity high", {"verbosity": "high"}),
    ("--param user=alice", {"user": "alice"}),
    ("--param logit_bias='{\"50256\": -100}'", {"logit_bias": {"50256": -100}}),
    (
        '-m claude-sonnet-4 --param thinking=\'{"type":"enabled","budget_tokens":2048}\'',
        {"thinking": {"type": "enabled", "budget_tokens": 2048}},
    ),
    ("--param store=true --param service_tier=default", {"store": True, "service_tier": "default"}),
]


@pytest.mark.parametrize("line, expected", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_each_option_becomes_its_request_field(shell, compass_server, line, expected):
    ok(shell, f"%%compass {line}\nSay something")
    sent = body(compass_server)
    for key, value in expected.items():
        assert sent[key] == value, key
    if "stream" not in expected:
        assert sent["stream"] is True


def test_no_stream_sends_no_stream_options(shell, compass_server):
    cell = ok(shell, "%%compass --no-stream\nHi")
    assert "stream_options" not in body(compass_server)
    # nothing to stream: no live output, only the reply
    assert len(cell.first_states) == 1 and "Hi" in cell.markdown


def test_system_name_and_spaces_in_quoted_values(shell, compass_server):
    ok(shell, "%%compass -s 'You are terse, and kind.' --name ada\nHi")
    assert body(compass_server)["messages"] == [
        {"role": "system", "content": "You are terse, and kind."},
        {"role": "user", "content": "Hi", "name": "ada"},
    ]


def test_the_system_message_is_replaced_not_stacked(shell, compass_server):
    ok(shell, "%%compass -s 'Be brief.'\nHi")
    ok(shell, "%%compass -s 'Be verbose.'\nAgain")
    systems = [m for m in body(compass_server)["messages"] if m["role"] == "system"]
    assert systems == [{"role": "system", "content": "Be verbose."}]
    ok(shell, "%%compass\nThird")
    assert body(compass_server)["messages"][0] == {"role": "system", "content": "Be verbose."}


def test_cells_share_one_conversation(shell, compass_server):
    ok(shell, "%%compass\nMy name is Ada")
    ok(shell, "%%compass\nWhat is my name?")
    assert [m["role"] for m in body(compass_server)["messages"]] == ["user", "assistant", "user"]
    assert body(compass_server)["messages"][0]["content"] == "My name is Ada"


def test_no_history_neither_reads_nor_writes(shell, compass_server):
    ok(shell, "%%compass\nFirst")
    history = list(cj.session().messages)
    ok(shell, "%%compass --no-history\nAside")
    assert body(compass_server)["messages"] == [{"role": "user", "content": "Aside"}]
    assert cj.session().messages == history


def test_new_starts_over_and_keeps_the_system_message(shell, compass_server):
    ok(shell, "%%compass -s 'Be brief.'\nFirst")
    ok(shell, "%%compass --new\nFresh start")
    assert body(compass_server)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Fresh start"},
    ]


def test_new_with_a_bad_value_resets_nothing(shell, compass_server):
    ok(shell, "%%compass\nFirst")
    refused(shell, compass_server, "%%compass --new -t 7\nSecond")
    assert len(cj.session().messages) == 2


def test_voice_asks_for_audio_and_streaming_forces_pcm16(shell, compass_server):
    cell = ok(shell, "%%compass -m gpt-4o-audio-preview --voice alloy\nSay hi")
    sent = body(compass_server)
    assert sent["modalities"] == ["text", "audio"]
    assert sent["audio"] == {"voice": "alloy", "format": "pcm16"}
    assert "<audio controls" in cell.markdown  # the reply gets a player


def test_audio_format_without_streaming_is_kept(shell, compass_server):
    ok(shell, "%%compass -m gpt-4o-audio-preview --no-stream --voice echo --audio-format wav\nSay hi")
    assert body(compass_server)["audio"] == {"voice": "echo", "format": "wav"}


def test_streaming_with_a_non_pcm16_audio_format_is_refused(shell, compass_server):
    cell = refused(shell, compass_server, "%%compass -m gpt-4o-audio-preview --voice alloy --audio-format mp3\nSay hi")
    assert "pcm16" in cell.stderr


def _png(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def test_images_become_content_parts(shell, compass_server, tmp_path):
    png = _png(tmp_path / "dot.png")
    ok(shell, f"%%compass --image '{png}' --image https://example.com/cat.png\nWhat is this?")
    content = body(compass_server)["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[2]["image_url"]["url"] == "https://example.com/cat.png"


def test_an_image_over_8_mib_is_refused_before_sending(shell, compass_server, tmp_path):
    big = tmp_path / "big.png"
    with open(big, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        fh.truncate(8 * 1024 * 1024 + 1)
    cell = refused(shell, compass_server, f"%%compass --image {big}\nLook")
    assert "8 MiB" in cell.stderr


def test_audio_input_becomes_an_input_audio_part(shell, compass_server, tmp_path):
    path = tmp_path / "hi.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    ok(shell, f"%%compass -m gpt-4o-audio-preview --audio {path}\nTranscribe")
    part = body(compass_server)["messages"][-1]["content"][1]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"


# -- tools -----------------------------------------------------------------------------------


def test_tools_are_called_and_the_calls_shown(shell, compass_server):
    ok(
        shell,
        textwrap.dedent(
            '''
            def get_weather(city: str) -> str:
                """Current weather in a city.

                Args:
                    city: the city name
                """
                return f"sunny in {city}"
            '''
        ),
    )
    cell = ok(shell, "%%compass --tools get_weather -o r\nWhat is the get_weather in Paris?")
    first, last = compass_server.requests[-2].body, body(compass_server)
    assert first["tools"][0]["function"]["name"] == "get_weather"
    assert first["tools"][0]["function"]["parameters"]["properties"]["city"]["type"] == "string"
    assert last["messages"][-1]["role"] == "tool" and "sunny in" in last["messages"][-1]["content"]
    assert "🔧 `get_weather(" in cell.markdown and "sunny in" in cell.markdown
    assert shell.user_ns["r"].text.startswith("Based on get_weather")


def test_tool_choice_name_forces_that_tool(shell, compass_server):
    ok(shell, "def a(x: int) -> int:\n    return x\n\ndef b(y: int) -> int:\n    return y")
    ok(shell, "%%compass --tools a,b --tool-choice b\nGo")
    assert compass_server.requests[-2].body["tool_choice"] == {"type": "function", "function": {"name": "b"}}
    assert compass_server.requests[-2].body["tools"][1]["function"]["name"] == "b"


def test_tool_choice_words_pass_through(shell, compass_server):
    ok(shell, "def a(x: int) -> int:\n    return x")
    ok(shell, "%%compass --tools a --tool-choice none\nGo")
    assert body(compass_server)["tool_choice"] == "none"


def test_an_unknown_tool_name_is_a_clear_error(shell, compass_server):
    cell = refused(shell, compass_server, "%%compass --tools no_such_function\nGo")
    assert "no function called 'no_such_function'" in cell.stderr


# -- interpolation ---------------------------------------------------------------------------


def test_interpolation_of_names_attributes_indices_and_specs(shell, compass_server):
    ok(shell, "city = 'Paris'\nrows = [3, 4]\nimport math\npi = math.pi\nclass P: name = 'Ada'\np = P()")
    ok(shell, "%%compass\nIn {city}, {rows[1]} rows, pi={pi:.2f}, by {p.name!r}; code: {{x: 1}}")
    assert body(compass_server)["messages"][-1]["content"] == "In Paris, 4 rows, pi=3.14, by 'Ada'; code: {x: 1}"


def test_interpolation_happens_once(shell, compass_server):
    ok(shell, "snippet = 'def f(): return {secret}'")
    ok(shell, "%%compass\nExplain {snippet}")
    sent = body(compass_server)["messages"][-1]["content"]
    assert sent == "Explain def f(): return {secret}"
    assert cj.session().messages[0]["content"] == sent  # the history keeps the interpolated text


def test_an_undefined_name_is_refused_and_names_it(shell, compass_server):
    cell = refused(shell, compass_server, "%%compass\nTell me about {nowhere_defined}")
    assert "nowhere_defined" in cell.stderr and "{{" in cell.stderr


def test_pasted_code_with_single_braces_is_refused_with_the_escape_hint(shell, compass_server):
    cell = refused(shell, compass_server, '%%compass\nfix: d = {"a": 1}')
    assert "{{ and }}" in cell.stderr
    cell = refused(shell, compass_server, "%%compass\nunbalanced { brace")
    assert "{{ and }}" in cell.stderr


def test_option_line_json_is_not_mangled_by_ipython_expansion(shell, compass_server):
    ok(shell, "budget = 1")
    ok(shell, "%%compass --param logit_bias='{\"1\": -5}' --param user='$budget'\nHi")
    assert body(compass_server)["logit_bias"] == {"1": -5}
    assert body(compass_server)["user"] == "$budget"


# -- refused cells ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, words",
    [
        ("-t 3", "temperature must be between 0 and 2"),
        ("-t hot", "expected a number"),
        ("--temprature 1", "Did you mean --temperature"),
        ("hello world", "first line, which takes options only"),
        ("--top-p 1.5", "top_p"),
        ("--presence-penalty 3", "presence_penalty"),
        ("--stop a --stop b --stop c --stop d --stop e", "at most 4"),
        ("--logprobs 21", "top_logprobs"),
        ("-n 0", "n must be"),
        ("--format html", "invalid choice"),
        ("--tool-choice required", "needs tools"),
        ("--param nonsense_field=1", "Unknown request field 'nonsense_field'"),
        ("--param temperature=1 -t 1", "given twice"),
        ("--param model=gpt-4.1", "-m/--model"),
        ("--param foo", "KEY=VALUE"),
        ("-o 'not a name'", "variable name"),
        ("--pick 1", "compare mode"),
        ("-m gpt-4o,gpt-4.1 --pick 5", "--pick must be between 0 and 1"),
        ("-m gpt-4o,gpt-4o", "more than once"),
        ("-s 'unclosed", "quote"),
    ],
)
def test_bad_options_are_one_paragraph_and_send_nothing(shell, compass_server, line, words):
    ok(shell, "%%compass\nFirst")
    cell = refused(shell, compass_server, f"%%compass {line}\nHi")
    assert words in cell.stderr
    assert cell.stderr.count("\n") <= 2, cell.stderr


def test_a_missing_key_says_how_to_set_it(shell, compass_server, monkeypatch):
    monkeypatch.delenv("COMPASS_API_KEY")
    cell = refused(shell, compass_server, "%%compass\nHi")
    assert "COMPASS_API_KEY" in cell.stderr and "%compass key" in cell.stderr


def test_an_empty_cell_sends_nothing(shell, compass_server):
    refused(shell, compass_server, "%%compass -t 0\n   \n")


def test_strict_turns_a_reserved_parameter_warning_into_an_error(shell, compass_server):
    cell = ok(shell, "%%compass -m gpt-4o --reasoning-effort low\nHi")
    assert "reasoning_effort" in cell.stderr and "Warning:" in cell.stderr
    assert body(compass_server)["reasoning_effort"] == "low"  # sent anyway
    ok(shell, "%compass set strict=true")
    cell = refused(shell, compass_server, "%%compass -m gpt-4o --reasoning-effort low\nHi")
    assert "reasoning_effort" in cell.stderr


def test_unknown_model_warns_once_and_is_sent(shell, compass_server):
    cell = run(shell, "%%compass -m gpt-9-preview\nHi")
    # the stand-in does not know it either (404): the warning came first, then the error
    assert cell.stderr.count("Unknown model 'gpt-9-preview'") == 1
    assert cell.stderr.index("Warning:") < cell.stderr.index("UsageError:")
    assert body(compass_server)["model"] == "gpt-9-preview"


def test_server_errors_are_one_paragraph_without_traceback(shell, compass_server):
    compass_server.enqueue(Scenario(status=400, error_message="Your prompt was flagged."))
    cell = run(shell, "%%compass\nHi")
    assert not cell.success and "Your prompt was flagged." in cell.stderr and "Traceback" not in cell.stderr
    assert cj.session().messages == []


def test_a_broken_stream_keeps_the_partial_reply_marked_incomplete(shell, compass_server):
    compass_server.enqueue(Scenario(text="one two three four five six", drop_after=3))
    cell = run(shell, "%%compass -o partial\nCount")
    assert not cell.success and "broke off" in cell.stderr and "Traceback" not in cell.stderr
    assert len(cell.visible) == 1
    assert "one two three" in cell.markdown and "Incomplete" in cell.markdown
    assert shell.user_ns["partial"].incomplete
    assert [m.get("incomplete") for m in cj.session().messages] == [True, True]
    history = ok(shell, "%compass history")
    assert "incomplete" in history.markdown and "incomplete" in history.text


def test_unexpected_exceptions_keep_their_traceback(shell, compass_server):
    from compass_jupyter import conversation

    class Broken(conversation.Session):
        def chat(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("a bug, not a user error")

    conversation._session = Broken()
    cell = run(shell, "%%compass\nHi")
    assert isinstance(cell.error, RuntimeError)


# -- how replies are shown -------------------------------------------------------------------


def test_n_shows_every_choice(shell, compass_server):
    cell = ok(shell, "%%compass -n 3\nHi")
    for i in (1, 2, 3):
        assert f"**Choice {i}**" in cell.markdown and f"[choice {i}]" in cell.text


def test_logprobs_table_under_the_reply(shell, compass_server):
    cell = ok(shell, "%%compass --logprobs 2 -o r\nHi")
    assert "**Logprobs**" in cell.markdown and "| token | prob |" in cell.markdown
    rows = [line for line in cell.markdown.splitlines() if line.startswith("| ") and line[2:3].isdigit()]
    tokens = shell.user_ns["r"].logprobs
    assert len(rows) == len(tokens) > 3  # one row per token
    assert all(len(t.top) == 2 for t in tokens)


def test_format_json_displays_parsed_json(shell, compass_server):
    cell = ok(shell, "%%compass --json -o data\nGive me JSON")
    final = cell.visible[-1]
    assert final["application/json"] == json.loads(shell.user_ns["data"].text)
    assert json.loads(final["text/plain"].rsplit("\n", 1)[0]) == final["application/json"]


def test_format_json_on_a_reply_that_is_not_json_warns_and_shows_the_text(shell, compass_server):
    compass_server.enqueue(Scenario(text="Sorry, no JSON today."))
    cell = ok(shell, "%%compass --format json\nGive me JSON")
    assert "not valid JSON" in cell.stderr
    assert "Sorry, no JSON today." in cell.markdown
    assert "application/json" not in cell.visible[-1]


@pytest.mark.parametrize("fmt, expected", [("code", "```\nHello code\n```"), ("text", "    Hello code")])
def test_format_code_and_text(shell, compass_server, fmt, expected):
    compass_server.enqueue(Scenario(text="Hello code"))
    cell = ok(shell, f"%%compass --format {fmt}\nHi")
    assert cell.markdown.startswith(expected)


def test_out_stores_the_reply(shell, compass_server):
    ok(shell, "%%compass -o answer\nHi")
    answer = shell.user_ns["answer"]
    assert isinstance(answer, cj.Reply) and answer.text == cj.session().messages[-1]["content"]
    assert answer.finish_reason == "stop" and answer.usage.total_tokens > 0


def test_compare_mode_side_by_side_keeps_the_first(shell, compass_server):
    cell = ok(shell, "%%compass -m gpt-4o,gpt-4.1,o3-mini -o both\nCompare us")
    models = sorted(r.body["model"] for r in compass_server.requests[-3:])
    assert models == ["gpt-4.1", "gpt-4o", "o3-mini"]
    final = cell.visible[-1]
    grid = final["text/html"]
    assert grid.index("gpt-4o") < grid.index("gpt-4.1") < grid.index("o3-mini")
    assert "kept in history" in grid and "first token" in grid and "total" in grid
    assert "### gpt-4.1" in final["text/markdown"]
    replies = shell.user_ns["both"]
    assert [r.model for r in replies] == ["gpt-4o", "gpt-4.1", "o3-mini"]
    assert cj.session().messages[-1]["content"] == replies[0].text
    assert [t.kind for t in cj.session().turns] == ["compare"] * 3


def test_compare_pick_by_model_name(shell, compass_server):
    ok(shell, "%%compass -m gpt-4o,gpt-4.1 --pick gpt-4.1 -o both\nCompare us")
    assert cj.session().messages[-1]["content"] == shell.user_ns["both"][1].text


# -- the conversation commands ---------------------------------------------------------------


def test_history_reset_usage(shell, compass_server):
    assert "empty" in ok(shell, "%compass history").text
    ok(shell, "%%compass -s 'Be brief.'\nFirst question")
    ok(shell, "%%compass\nSecond question")
    history = ok(shell, "%compass history")
    assert "**system**" in history.markdown and "Be brief." in history.markdown
    assert history.text.count("[user]") == 2 and "Second question" in history.text

    usage = ok(shell, "%compass usage")
    table = usage.text.splitlines()
    totals = next(line for line in table if line.startswith("total"))
    turns = cj.session().turns
    assert str(sum(t.usage.total_tokens for t in turns)) in totals
    assert sum(1 for line in table if line[:1].isdigit()) == 2

    cell = ok(shell, "%compass reset")
    assert "4 message(s) forgotten" in cell.text and "system message is kept" in cell.text
    assert cj.session().messages == [] and cj.session().system == "Be brief."
    ok(shell, "%%compass\nThird")
    assert [m["role"] for m in body(compass_server)["messages"]] == ["system", "user"]
    ok(shell, "%compass reset --all")
    assert cj.session().system is None


def test_export_and_import_round_trip_without_the_key(shell, compass_server, tmp_path):
    ok(shell, "%%compass -s 'Be brief.'\nRemember 42")
    path = tmp_path / "conv one.json"
    cell = ok(shell, f"%compass export '{path}'")
    assert "2 messages" in cell.text
    assert compass_server.key not in path.read_text()
    ok(shell, "%compass reset --all")
    cell = ok(shell, f"%compass import '{path}'")
    assert "Imported 2 messages with its system message" in cell.text
    ok(shell, "%%compass\nWhat did I ask you to remember?")
    messages = body(compass_server)["messages"]
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert messages[1]["content"] == "Remember 42" and len(messages) == 4


def test_import_of_a_missing_file_is_a_clear_error(shell, tmp_path):
    cell = run(shell, f"%compass import {tmp_path / 'nope.json'}")
    assert "No conversation file" in cell.stderr and "Traceback" not in cell.stderr


# -- the live view ----------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_live_view_coalesces_updates_and_always_flushes(shell):
    from compass_jupyter.reply import Choice, Reply
    from compass_jupyter.stream import Delta

    clock = _Clock()
    view = PlainLiveView(clock=clock)
    reply = Reply(model="m", choices=[Choice()])
    with capture_output() as cap:
        for i in range(100):  # 100 deltas within 0.2 s: at most one render per 50 ms
            reply.choices[0].text += f"w{i} "
            view.on_delta(Delta(reply=reply, choice=0, text=f"w{i} "))
            clock.now += 0.002
        reply.choices[0].finish_reason = "stop"
        view.finish(reply)
    assert view.renders == 4
    updates = [o for o in cap.outputs if o.update]
    assert updates[-1].data == {"text/plain": ""}
    final = [o for o in cap.outputs if not o.update][-1]
    assert "w99" in final.data["text/markdown"] and "finish: stop" in final.data["text/markdown"]


# -- interrupts (Ctrl-C / the kernel's interrupt button raise KeyboardInterrupt in the main thread) --


def _interrupt_once_streaming(server, requests: int) -> threading.Thread:
    def interrupt() -> None:
        deadline = time.monotonic() + 10
        while len(server.requests) < requests and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.4)  # some chunks have arrived
        _thread.interrupt_main()

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread


def test_interrupt_keeps_the_partial_reply_and_marks_it(shell, compass_server):
    compass_server.enqueue(Scenario(tokens=200, text="alpha beta gamma", delay=0.05))
    thread = _interrupt_once_streaming(compass_server, 1)
    started = time.monotonic()
    cell = run(shell, "%%compass -o partial\nCount")
    thread.join()
    assert time.monotonic() - started < 5  # not the whole 10 s stream
    assert type(cell.error).__name__ == "UsageError" and "Traceback" not in cell.stderr
    assert "Interrupted" in cell.stderr
    assert len(cell.visible) == 1 and cell.markdown.startswith("alpha beta")
    assert "⏹ Interrupted" in cell.markdown and "interrupted" in cell.text
    partial = shell.user_ns["partial"]
    assert partial.interrupted and partial.incomplete and partial.text in cell.markdown
    assert [m.get("incomplete") for m in cj.session().messages] == [True, True]
    ok(shell, "%%compass\nNext")
    assert body(compass_server)["messages"] == [{"role": "user", "content": "Next"}]  # the partial turn is not resent


def test_interrupt_in_compare_mode_keeps_every_partial_reply(shell, compass_server):
    compass_server.enqueue(Scenario(tokens=200, text="alpha beta gamma", delay=0.05, times=2))
    thread = _interrupt_once_streaming(compass_server, 2)
    cell = run(shell, "%%compass -m gpt-4o,gpt-4.1\nCount")
    thread.join()
    assert type(cell.error).__name__ == "UsageError" and "Interrupted" in cell.stderr
    grid = cell.visible[-1]
    assert grid["text/html"].count("interrupted: the reply is partial") == 2
    assert "alpha beta" in grid["text/markdown"]
    assert cj.session().messages[-1].get("incomplete") is True


def _sigint_after(seconds: float) -> threading.Thread:
    # A real SIGINT (what the kernel's interrupt sends) also wakes a main thread that sleeps.
    import signal

    thread = threading.Thread(target=lambda: (time.sleep(seconds), os.kill(os.getpid(), signal.SIGINT)), daemon=True)
    thread.start()
    return thread


def test_an_interrupt_while_waiting_to_retry_says_nothing_was_kept(shell, compass_server):
    compass_server.enqueue(Scenario(status=429, retry_after=5))
    thread = _sigint_after(0.5)
    started = time.monotonic()
    cell = run(shell, "%%compass\nHello")
    thread.join()
    assert time.monotonic() - started < 4
    assert type(cell.error).__name__ == "UsageError" and "Traceback" not in cell.stderr
    assert "before a reply arrived" in cell.stderr and "conversation is unchanged" in cell.stderr
    assert "partial reply above is kept" not in cell.stderr
    assert cj.session().messages == []


def test_an_interrupt_before_the_first_byte_records_no_empty_message(shell, compass_server):
    compass_server.enqueue(Scenario(text="slow answer", delay=1.0))
    thread = _sigint_after(0.5)
    cell = run(shell, "%%compass --no-stream\nHello")
    thread.join()
    assert "before the first word" in cell.stderr and "partial reply above is kept" not in cell.stderr
    assert cj.session().messages == []
    ok(shell, "%%compass\nNext")
    assert [m["role"] for m in cj.session().messages] == ["user", "assistant"]


def test_config_traits_are_the_settings_themselves(shell, monkeypatch):
    settings = next(c for c in shell.configurables if isinstance(c, Compass))
    # every setting but the key is a trait, made from its one description
    assert set(settings.trait_names(config=True)) == {name for name, spec in SPECS.items() if not spec.secret}
    config.set("model", "o3")
    assert settings.model == "o3"  # no cell boundary needed: the trait reads the setting
    monkeypatch.setenv("COMPASS_TIMEOUT", "42")
    assert settings.timeout == 42.0
    settings.max_retries = 5
    assert config.get("max_retries") == 5 and config.source("max_retries") == "%config"
