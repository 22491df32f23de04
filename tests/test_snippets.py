"""Settings -> %%compass cell / Python call, read back by the magic's own parser."""

from __future__ import annotations

import ast
import re
import shlex
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compass_jupyter.magics.interpolate import interpolate
from compass_jupyter.magics.options import parse
from compass_jupyter.snippets import magic_cell, magic_cells, parse_stop, python_snippet, stop_text, system_cell

EVERY_OPTION = {
    "temperature": 0.7,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "max_tokens": 300,
    "max_completion_tokens": 200,
    "presence_penalty": -1.5,
    "frequency_penalty": 0.25,
    "stop": ["END", "\n\n", "a,b", "it's", "-x", "back\\slash"],
    "n": 3,
    "random_seed": -7,
    "logprobs": True,
    "top_logprobs": 4,
    "response_format": {"type": "json_object"},
    "reasoning_effort": "high",
    "verbosity": "low",
    "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "pcm16"},
    "tool_choice": "none",
}


def read_back(cell: str) -> tuple[Any, str]:
    """What the magic makes of a cell: (parsed options, the message it sends)."""
    first, _, body = cell.partition("\n")
    assert first.startswith("%%compass"), first
    options = parse(first[len("%%compass") :].strip(), {})
    # As the magic does: trailing whitespace and leading blank lines are not part of the message.
    return options, interpolate(body.rstrip().lstrip("\r\n"), {})


def test_every_field_with_an_option_round_trips_through_the_magic_parser() -> None:
    cell = magic_cell("gpt-4o-audio-preview", EVERY_OPTION, "You are terse.", "Hello")
    options, message = read_back(cell)

    assert options.fields == EVERY_OPTION
    assert options.kwargs["model"] == "gpt-4o-audio-preview"
    assert options.kwargs["system"] == "You are terse."
    assert options.kwargs["stream"] is True
    assert message == "Hello"
    assert "--param" not in cell  # each of these has an option of its own


def test_the_cell_uses_the_documented_options() -> None:
    cell = magic_cell("gpt-4o", {"temperature": 0.2, "random_seed": 7, "logprobs": True, "top_logprobs": 3}, None, "Hi")
    assert cell.splitlines()[0] == "%%compass -m gpt-4o -t 0.2 --seed 7 --logprobs 3"
    assert magic_cell("gpt-4o", {"response_format": {"type": "json_object"}}, None, "Hi").startswith(
        "%%compass -m gpt-4o --json\n"
    )


def test_fields_without_an_option_go_through_param_as_json() -> None:
    fields = {
        "response_format": {"type": "text"},
        "logprobs": True,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "logit_bias": {"50256": -100},
        "user": "alice smith",
        "stop": "END",  # a single string stays a string
        "max_tokens": 2.0,  # a float is not what --max-tokens parses: kept as sent
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    cell = magic_cell("gpt-4o", fields, None, "Hi")
    options, _ = read_back(cell)
    assert options.fields == fields
    assert type(options.fields["max_tokens"]) is float
    assert "--param 'thinking=" in cell
    assert "--tool-choice get_weather" in cell


def test_no_stream_and_compare_models() -> None:
    cell = magic_cell(["gpt-4o", "gpt-4.1", "o3"], {"temperature": 0}, None, "Same question", stream=False)
    options, message = read_back(cell)
    assert options.models == ["gpt-4o", "gpt-4.1", "o3"]
    assert options.compare
    assert options.kwargs["stream"] is False
    assert options.fields == {"temperature": 0}
    assert message == "Same question"


def test_braces_in_the_message_are_doubled_so_the_magic_sends_them_literally() -> None:
    message = 'Return {"a": 1} and {name} as written; }{ too'
    cell = magic_cell("gpt-4o", {}, None, message)
    assert "{{name}}" in cell
    _, sent = read_back(cell)
    assert sent == message


def test_values_that_look_like_options_are_written_with_equals() -> None:
    fields = {"presence_penalty": -2.0, "random_seed": -1, "stop": ["--", "-n"]}
    cell = magic_cell("gpt-4o", fields, "- terse", "Hi")
    options, _ = read_back(cell)
    assert options.fields == fields
    assert options.kwargs["system"] == "- terse"
    assert "--system=" in cell and "--seed=-1" in cell


def test_a_multi_line_system_message_goes_into_a_python_cell_first() -> None:
    system = "Line one.\nLine two: 'quoted'."
    with pytest.raises(ValueError, match="line breaks"):
        magic_cell("gpt-4o", {}, system, "Hi")
    before, cell = magic_cells("gpt-4o", {"n": 2}, system, "Hi")
    tree = ast.parse(before)
    call = tree.body[-1].value  # cj.session().set_system(...)
    assert isinstance(call, ast.Call) and call.func.attr == "set_system"
    assert ast.literal_eval(call.args[0]) == system
    options, _ = read_back(cell)
    assert "system" not in options.kwargs and options.fields == {"n": 2}
    assert magic_cells("gpt-4o", {}, "--", "Hi")[0] == system_cell("--")  # argparse drops a bare "--"
    assert magic_cells("gpt-4o", {}, "one line", "Hi") == [magic_cell("gpt-4o", {}, "one line", "Hi")]


def test_stop_box_text_parses_like_the_magic_escapes() -> None:
    assert parse_stop("END, STOP\n###") == ["END", "STOP", "###"]
    assert parse_stop("\\n\\n, a\\,b, back\\\\slash, tab\\t") == ["\n\n", "a,b", "back\\slash", "tab\t"]
    assert parse_stop(" , \n ") == []
    stops = ["\n\n", "a,b", "x\\y", "\t", "END"]
    assert parse_stop(stop_text(stops)) == stops


@given(st.lists(st.text(min_size=1, max_size=12).map(lambda t: t.strip(" ")).filter(bool), min_size=1, max_size=4))
def test_the_stop_box_reads_back_what_the_playground_writes_into_it(stops: list[str]) -> None:
    assert parse_stop(stop_text(stops)) == stops


def _call_of(snippet: str) -> tuple[str, list[Any], dict[str, Any]]:
    tree = ast.parse(snippet)
    assign = next(node for node in tree.body if isinstance(node, ast.Assign))
    call = assign.value
    assert isinstance(call, ast.Call)
    name = ast.unparse(call.func)
    return name, [ast.literal_eval(a) for a in call.args], {k.arg: ast.literal_eval(k.value) for k in call.keywords}


def test_python_snippet_is_a_cj_chat_call_with_the_same_fields() -> None:
    snippet = python_snippet("gpt-4o", EVERY_OPTION, "Be brief.", "Hi 'there'\n{x}")
    assert snippet.startswith("import compass_jupyter as cj\n")
    name, args, kwargs = _call_of(snippet)
    assert name == "cj.chat"
    assert args == ["Hi 'there'\n{x}"]
    assert kwargs.pop("model") == "gpt-4o"
    assert kwargs.pop("system") == "Be brief."
    assert kwargs == EVERY_OPTION
    assert snippet.rstrip().endswith("reply")


def test_python_snippet_for_several_models_compares_them() -> None:
    name, args, kwargs = _call_of(python_snippet(["gpt-4o", "o3"], {"n": 2}, None, "Hi", stream=False))
    assert name == "cj.session().compare"
    assert kwargs == {"models": ["gpt-4o", "o3"], "stream": False, "n": 2}


# Text a person could type: quotes, backslashes, braces, dollars, non-ASCII, newlines.
_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)
_ONE_LINE = _TEXT.filter(lambda t: len(t.splitlines()) <= 1 and "\n" not in t and "\r" not in t)


@settings(max_examples=150, deadline=None)
@given(
    system=st.one_of(st.none(), _ONE_LINE),
    message=_TEXT,
    stops=st.lists(_TEXT, min_size=1, max_size=4),
    temperature=st.floats(min_value=0, max_value=2),
    seed=st.integers(min_value=-(2**31), max_value=2**31),
    user=_TEXT,
    effort=st.sampled_from(["minimal", "low", "medium", "high"]),
)
def test_any_text_round_trips(
    system: str | None, message: str, stops: list[str], temperature: float, seed: int, user: str, effort: str
) -> None:
    fields = {"temperature": temperature, "random_seed": seed, "stop": stops, "user": user, "reasoning_effort": effort}
    cells = magic_cells("gpt-5", fields, system, message)
    cell = cells[-1]
    first_line = cell.partition("\n")[0]
    assert len(first_line.splitlines()) == 1  # nothing breaks the option line
    options, sent = read_back(cell)
    assert options.fields == fields
    if system and len(cells) == 1:
        assert options.kwargs["system"] == system
    assert sent == message.rstrip().lstrip("\r\n")
    # And the Python call says the same.
    _, args, kwargs = _call_of(python_snippet("gpt-5", fields, system, message))
    assert args == [message]
    assert {k: v for k, v in kwargs.items() if k not in ("model", "system")} == fields


def test_the_option_line_splits_with_shlex_into_whole_values() -> None:
    cell = magic_cell("gpt-4o", {"stop": ["a b", "c'd"]}, 'He said "hi"', "x")
    words = shlex.split(cell.partition("\n")[0])
    assert words[:5] == ["%%compass", "-m", "gpt-4o", "-s", 'He said "hi"']
    assert re.search(r"--stop 'a b'", cell)


# -- the local model's id -------------------------------------------------------------------------


def test_the_local_models_id_is_written_as_the_compass_model_it_stands_in_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compass refuses smollm2-135m-instruct: a copied cell names the model Compass would answer with."""
    import compass_jupyter as cj
    from compass_jupyter.local_model import server as server_module
    from compass_jupyter.local_model import stop
    from compass_jupyter.local_model.server import LOCAL_MODEL_ID
    from compass_jupyter.settings import config

    def model_line(model: Any) -> str:
        return magic_cell(model, {"temperature": 0.5}, None, "Hi").partition("\n")[0]

    assert model_line(LOCAL_MODEL_ID) == "%%compass -m gpt-4o -t 0.5"  # the default, when nothing was set
    monkeypatch.setenv("COMPASS_MODEL", "gpt-4.1")
    assert model_line(LOCAL_MODEL_ID) == "%%compass -m gpt-4.1 -t 0.5"

    # Routed to the local model, the model setting names it; the copy names the one it replaced.
    fake = type("FakeServer", (), {"base_url": "http://127.0.0.1:9", "model_id": LOCAL_MODEL_ID})()
    monkeypatch.setattr(server_module, "start_local", lambda **options: fake)
    monkeypatch.setattr(server_module, "stop_local", lambda: True)
    config.set("model", "o3")
    cj.local()
    try:
        assert config.get("model") == LOCAL_MODEL_ID
        assert model_line(LOCAL_MODEL_ID) == "%%compass -m o3 -t 0.5"
        assert model_line([LOCAL_MODEL_ID, "gpt-4.1"]) == "%%compass -m o3,gpt-4.1 -t 0.5"
        assert _call_of(python_snippet(LOCAL_MODEL_ID, {}, None, "Hi"))[2] == {"model": "o3"}
        assert model_line("gpt-4o-mini") == "%%compass -m gpt-4o-mini -t 0.5"  # a model picked by hand stays
    finally:
        stop()
    assert config.get("model") == "o3"
