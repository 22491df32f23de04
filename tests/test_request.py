"""Request validation: what is refused before anything is sent, and the body that is sent."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compass_jupyter._exceptions import ValidationError
from compass_jupyter.fields import FIELDS
from compass_jupyter.request import build_body, validate_fields

USER = [{"role": "user", "content": "Hi"}]
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}


def refused(fields: dict, *, stream: bool = False) -> str:
    with pytest.raises(ValidationError) as info:
        validate_fields(fields, stream=stream)
    return str(info.value)


def accepted(fields: dict, *, stream: bool = False) -> None:
    validate_fields(fields, stream=stream)
    fields = dict(fields)
    stream = fields.pop("stream", stream)  # a call control in build_body, not a field
    body, _ = build_body(model="gpt-4o", messages=USER, stream=stream, fields=fields, strict=False)
    sent = {name for name, value in fields.items() if value is not None}
    assert sent <= set(body), f"accepted but not sent: {sorted(sent - set(body))}"


# ---- numeric ranges: inside passes, outside is refused -------------------------------

FLOAT_RANGES = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "min_p": (0, 1),
}
INT_RANGES = {
    "n": (1, 128),
    "max_tokens": (1, 10**9),
    "max_completion_tokens": (1, 10**9),
    "top_k": (0, 10**9),
    "num_beams": (1, 10**9),
    "thinking_budget": (1, 10**9),
}


@pytest.mark.parametrize("name", FLOAT_RANGES)
@given(data=st.data())
def test_float_inside_range_passes(name, data):
    low, high = FLOAT_RANGES[name]
    value = data.draw(st.floats(min_value=low, max_value=high) | st.integers(min_value=low, max_value=high))
    accepted({name: value})


@pytest.mark.parametrize("name", FLOAT_RANGES)
@given(data=st.data())
def test_float_outside_range_is_refused(name, data):
    low, high = FLOAT_RANGES[name]
    value = data.draw(
        st.floats(max_value=low, exclude_max=True, allow_nan=False)
        | st.floats(min_value=high, exclude_min=True, allow_nan=False)
        | st.just(math.nan)
    )
    message = refused({name: value})
    assert name in message and f"between {low} and {high}" in message and f"Use e.g. {name}=" in message


@pytest.mark.parametrize("name", INT_RANGES)
@given(data=st.data())
def test_int_inside_range_passes(name, data):
    low, high = INT_RANGES[name]
    accepted({name: data.draw(st.integers(min_value=low, max_value=high))})


@pytest.mark.parametrize("name", INT_RANGES)
@given(data=st.data())
def test_int_below_range_is_refused(name, data):
    low, _ = INT_RANGES[name]
    message = refused({name: data.draw(st.integers(max_value=low - 1))})
    assert name in message and "whole number" in message and f"{name}=" in message


@given(value=st.integers(min_value=129))
def test_n_above_128_is_refused(value):
    assert "between 1 and 128" in refused({"n": value})


@pytest.mark.parametrize("name", INT_RANGES)
@given(value=st.floats(allow_nan=False) | st.booleans() | st.text(max_size=3))
def test_int_fields_refuse_non_integers(name, value):
    assert "whole number" in refused({name: value})


@given(top=st.integers(min_value=0, max_value=20))
def test_top_logprobs_inside_passes_with_logprobs(top):
    accepted({"logprobs": True, "top_logprobs": top})


@given(top=st.integers(max_value=-1) | st.integers(min_value=21))
def test_top_logprobs_outside_is_refused(top):
    assert "between 0 and 20" in refused({"logprobs": True, "top_logprobs": top})


@given(bias=st.floats(min_value=-100, max_value=100), token=st.integers(min_value=0, max_value=200_000))
def test_logit_bias_inside_passes(bias, token):
    accepted({"logit_bias": {token: bias, str(token + 1): 0}})


@given(bias=st.floats(max_value=-100, exclude_max=True) | st.floats(min_value=100, exclude_min=True))
def test_logit_bias_outside_is_refused(bias):
    assert "between -100 and 100" in refused({"logit_bias": {"50256": bias}})


# ---- explicit rules ------------------------------------------------------------------


def test_temperature_message_names_value_range_and_fix():
    assert refused({"temperature": 3}) == "temperature must be between 0 and 2 (got 3). Use e.g. temperature=0.7."


@pytest.mark.parametrize("name", list(FLOAT_RANGES) + ["repitition_penalty"])
@pytest.mark.parametrize("value", [True, "0.5", {"a": 1}, [1]])
def test_numbers_must_be_numbers_not_bools_or_strings(name, value):
    message = refused({name: value})
    assert f"{name} must be a number" in message


def test_repitition_penalty_keeps_the_api_spelling():
    assert "repitition_penalty" in FIELDS
    accepted({"repitition_penalty": 1.1})


def test_documented_fields_are_exactly_the_reference_list():
    expected = set(
        "model messages audio modalities temperature top_p n stream stream_options stop max_tokens "
        "max_completion_tokens presence_penalty frequency_penalty repitition_penalty logit_bias logprobs "
        "top_logprobs user safety_identifier prompt_cache_key store service_tier top_k do_sample max_seconds "
        "num_beams ts tools tool_choice verbosity safe_prompt reasoning_effort random_seed thinking "
        "thinking_budget documents citation_options response_format min_p parallel_tool_calls".split()
    )
    assert set(FIELDS) == expected


@pytest.mark.parametrize(
    "typed, suggestion",
    [("seed", "random_seed"), ("max_token", "max_tokens"), ("temprature", "temperature"),
     ("repetition_penalty", "repitition_penalty"), ("json", "response_format")],
)  # fmt: skip
def test_unknown_field_suggests_the_nearest_documented_name(typed, suggestion):
    message = refused({typed: 1})
    assert f"Unknown request field {typed!r}" in message
    assert re.search(rf"Did you mean {suggestion}\b", message)
    assert "extra_body={" in message


def test_unknown_field_without_neighbours_still_explains_extra_body():
    message = refused({"zzz": 1})
    assert "Did you mean" not in message and "extra_body" in message


def test_unknown_system_field_explains_where_the_system_message_goes():
    assert "system=" in refused({"system": "be brief"})


def test_none_values_are_not_checked():
    accepted({"temperature": None, "tools": None, "tool_choice": None, "top_logprobs": None})


@pytest.mark.parametrize("name", ["stream", "store", "do_sample", "safe_prompt", "logprobs", "parallel_tool_calls"])
def test_booleans_must_be_bools(name):
    accepted({name: True})
    accepted({name: False})
    assert refused({name: 1}) == f"{name} must be true or false (got 1). Use e.g. {name}=True."
    assert "true or false" in refused({name: "yes"})


@pytest.mark.parametrize("name", ["user", "safety_identifier", "prompt_cache_key", "service_tier", "ts"])
def test_strings_must_be_strings(name):
    accepted({name: "x"})
    assert f"{name} must be a string (got 5)" in refused({name: 5})


def test_random_seed_is_an_int():
    accepted({"random_seed": -3})
    accepted({"random_seed": 2**40})
    assert "random_seed must be a whole number" in refused({"random_seed": 1.5})


def test_max_seconds_is_int32():
    accepted({"max_seconds": 60})
    assert "between" in refused({"max_seconds": 2**31})


def test_top_logprobs_needs_logprobs_true():
    message = refused({"top_logprobs": 3})
    assert "top_logprobs=3 needs logprobs=True" in message and "--logprobs" in message
    assert "needs logprobs=True" in refused({"top_logprobs": 3, "logprobs": False})


def test_logprobs_must_be_bool():
    assert "logprobs must be true or false" in refused({"logprobs": 5})


@pytest.mark.parametrize("bias", [{"abc": 1}, {-1: 1}, {True: 1}, {"1.5": 1}, [1, 2], {"5": "high"}])
def test_logit_bias_shape(bias):
    assert "logit_bias" in refused({"logit_bias": bias})


@pytest.mark.parametrize("stop", ["END", ["a"], ["a", "b", "c", "d"], ("x", "y")])
def test_stop_accepted(stop):
    accepted({"stop": stop})


def test_stop_rules():
    assert "at most 4" in refused({"stop": ["a", "b", "c", "d", "e"]})
    assert "non-empty strings" in refused({"stop": ["a", ""]})
    assert "non-empty strings" in refused({"stop": ["a", 3]})
    assert "empty string" in refused({"stop": ""})
    assert "a string or a list" in refused({"stop": 7})
    assert "a string or a list" in refused({"stop": []})


def test_tools_accepted():
    minimal = {"type": "function", "function": {"name": "f-1_x"}}
    described = {"type": "function", "function": {"name": "g", "description": "d", "parameters": {}, "strict": True}}
    accepted({"tools": [minimal, described], "tool_choice": "auto"})
    accepted({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})
    accepted({"tools": [TOOL], "tool_choice": "required"})
    accepted({"tool_choice": "none"})


@pytest.mark.parametrize(
    "tools, expected",
    [
        ({"type": "function"}, "tools must be a list"),
        ([], "empty list"),
        (["f"], "tools[0] must be a tool object"),
        ([{"type": "retrieval", "function": {"name": "f"}}], "tools[0].type must be 'function'"),
        ([{"type": "function"}], "tools[0].function must be an object"),
        ([{"type": "function", "function": {"name": "has space"}}], "a-z, A-Z, 0-9"),
        ([{"type": "function", "function": {"name": "x" * 65}}], "1 to 64"),
        ([{"type": "function", "function": {"name": ""}}], "1 to 64"),
        ([{"type": "function", "function": {"name": "f", "parameters": "none"}}], "JSON Schema object"),
        ([{"type": "function", "function": {"name": "f", "description": 3}}], "description must be a string"),
        ([{"type": "function", "function": {"name": "f", "strict": "yes"}}], "strict must be"),
        ([TOOL, TOOL], "two functions named 'get_weather'"),
    ],
)
def test_tools_refused(tools, expected):
    assert expected in refused({"tools": tools})


@given(name=st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"))
def test_any_valid_tool_name_passes(name):
    accepted({"tools": [{"type": "function", "function": {"name": name}}]})


def test_tool_choice_rules():
    assert "needs tools" in refused({"tool_choice": "auto"})
    assert "needs tools" in refused({"tool_choice": "required"})
    assert "must be none, auto, required" in refused({"tools": [TOOL], "tool_choice": "always"})
    message = refused({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "nope"}}})
    assert "'nope'" in message and "get_weather" in message
    assert "no tools were given" in refused({"tool_choice": {"type": "function", "function": {"name": "f"}}})
    assert "must be none, auto, required" in refused({"tools": [TOOL], "tool_choice": {"name": "get_weather"}})


def test_modalities_and_audio():
    accepted({"modalities": ["text"]})
    accepted({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}})
    assert "modalities must be a list" in refused({"modalities": ["video"]})
    assert "modalities must be a list" in refused({"modalities": "audio"})
    assert "modalities must be a list" in refused({"modalities": []})
    message = refused({"modalities": ["text", "audio"]})
    assert "needs audio=" in message and "--voice" in message


@pytest.mark.parametrize("voice", ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer"])
@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "opus", "pcm16"])
def test_every_documented_voice_and_format(voice, fmt):
    accepted({"modalities": ["text", "audio"], "audio": {"voice": voice, "format": fmt}})


def test_audio_refused():
    assert "audio.voice must be one of alloy" in refused({"audio": {"voice": "nova", "format": "wav"}})
    assert "audio.format must be one of wav, mp3, flac, opus, pcm16" in refused(
        {"audio": {"voice": "alloy", "format": "aac"}}
    )
    assert "audio.voice" in refused({"audio": {"format": "wav"}})
    assert "audio must be an object" in refused({"audio": "alloy"})


def test_streaming_audio_output_needs_pcm16():
    fields = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}
    message = refused(fields, stream=True)
    assert "pcm16" in message and "--audio-format pcm16" in message and "--no-stream" in message
    accepted(fields, stream=False)
    accepted({**fields, "audio": {"voice": "alloy", "format": "pcm16"}}, stream=True)
    # The field itself wins over the keyword when both are given.
    accepted({**fields, "stream": False}, stream=True)


@pytest.mark.parametrize("level", ["minimal", "low", "medium", "high"])
def test_reasoning_effort_levels(level):
    accepted({"reasoning_effort": level})


def test_reasoning_effort_and_verbosity_refused():
    assert refused({"reasoning_effort": "max"}) == (
        "reasoning_effort must be one of minimal, low, medium, high (got 'max'). Use e.g. reasoning_effort='low'."
    )
    accepted({"verbosity": "low"})
    assert "verbosity must be one of low, medium, high" in refused({"verbosity": "minimal"})


def test_thinking():
    accepted({"thinking": {"type": "enabled", "budget_tokens": 1024}})
    accepted({"thinking": {"type": "disabled"}})
    accepted({"thinking": {"type": "enabled"}, "thinking_budget": 500})  # qwen3-14b style
    assert "at least 1024" in refused({"thinking": {"type": "enabled", "budget_tokens": 1023}})
    assert "no budget_tokens" in refused({"thinking": {"type": "enabled"}})
    assert "thinking.type must be 'enabled' or 'disabled'" in refused({"thinking": {"type": "on"}})
    assert "thinking must be an object" in refused({"thinking": True})


@given(budget=st.integers(min_value=1024, max_value=10**7))
def test_thinking_budget_tokens_at_least_1024(budget):
    accepted({"thinking": {"type": "enabled", "budget_tokens": budget}})


def test_citation_options():
    for mode in ("FAST", "accurate", "Off"):
        accepted({"citation_options": {"mode": mode}})
    accepted({"citation_options": {}})
    assert "FAST, ACCURATE, OFF" in refused({"citation_options": {"mode": "slow"}})
    assert "citation_options must be an object" in refused({"citation_options": "fast"})


def test_documents():
    accepted({"documents": ["a text", {"data": {"title": "t"}, "id": "d1"}, {"data": "plain"}]})
    assert "documents[1] must be a string or an object with 'data'" in refused({"documents": ["a", {"id": "x"}]})
    assert "documents must be a list" in refused({"documents": "text"})
    assert "documents[0].id must be a string" in refused({"documents": [{"data": "x", "id": 3}]})


def test_response_format():
    accepted({"response_format": {"type": "json_object"}})
    accepted({"response_format": {"type": "text"}})
    accepted({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}})
    assert "text, json_object, json_schema" in refused({"response_format": {"type": "xml"}})
    assert "text, json_object, json_schema" in refused({"response_format": "json"})
    message = refused({"response_format": {"type": "json_schema"}})
    assert "'json_schema' object with a 'name' and a 'schema'" in message
    assert "'name'" in refused({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}})


def test_stream_options():
    accepted({"stream_options": {"include_usage": True}}, stream=True)
    assert "only applies to streamed requests" in refused({"stream_options": {"include_usage": True}})
    assert "include_usage must be true or false" in refused({"stream_options": {"include_usage": 1}}, stream=True)


# ---- messages ------------------------------------------------------------------------


def body_of(messages, **kwargs):
    return build_body(model="gpt-4o", messages=messages, stream=False, fields={}, **kwargs)[0]


def test_messages_accepted():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Rules."},
        {"role": "user", "content": "Hi", "name": "alice"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "{}"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "mp3"}},
            ],
        },
    ]
    assert body_of(messages)["messages"] == messages


@pytest.mark.parametrize(
    "messages, expected",
    [
        ([], "messages must be a non-empty list"),
        ("Hi", "messages must be a non-empty list"),
        (["Hi"], "messages[0] must be a message object"),
        ([{"role": "bot", "content": "x"}], "messages[0].role must be one of system, user, assistant, tool, developer"),
        ([{"role": "user"}], "messages[0] (role 'user') needs content"),
        ([{"role": "user", "content": 5}], "messages[0].content must be a string or a list"),
        ([{"role": "user", "content": []}], "messages[0].content is an empty list"),
        ([{"role": "user", "content": "x", "name": 3}], "messages[0].name must be a string"),
        ([{"role": "tool", "content": "42"}], "without a tool_call_id"),
        ([{"role": "user", "content": [{"type": "video"}]}], "messages[0].content[0].type must be text, image_url or input_audio"),
        ([{"role": "user", "content": [{"type": "text"}]}], "messages[0].content[0].text must be a string"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": "http://x"}]}], "image_url must be an object with a url"),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "flac"}}]}],
         "input_audio.format must be wav or mp3"),
        ([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"format": "wav"}}]}], "base64 data"),
    ],
)  # fmt: skip
def test_messages_refused(messages, expected):
    with pytest.raises(ValidationError, match=re.escape(expected)):
        body_of(messages)


# ---- build_body ----------------------------------------------------------------------


def test_body_for_a_streamed_turn():
    body, warnings = build_body(
        model="gpt-4o", messages=USER, stream=True, fields={"temperature": 0, "top_p": None, "stop": ["END"]}
    )
    assert body == {
        "model": "gpt-4o",
        "messages": USER,
        "stream": True,
        "temperature": 0,
        "stop": ["END"],
        "stream_options": {"include_usage": True},
    }
    assert warnings == []


def test_body_without_streaming_has_no_stream_options():
    body, _ = build_body(model="gpt-4o", messages=USER, stream=False, fields={})
    assert body == {"model": "gpt-4o", "messages": USER, "stream": False}


def test_callers_stream_options_are_kept():
    body, _ = build_body(
        model="gpt-4o", messages=USER, stream=True, fields={"stream_options": {"include_usage": False}}
    )
    assert body["stream_options"] == {"include_usage": False}


def test_validation_error_means_no_body():
    with pytest.raises(ValidationError, match="temperature must be between 0 and 2"):
        build_body(model="gpt-4o", messages=USER, stream=False, fields={"temperature": 2.5})


def test_unknown_model_is_sent_with_a_warning():
    body, warnings = build_body(model="gpt4o", messages=USER, stream=False, fields={})
    assert body["model"] == "gpt4o"
    assert warnings == [
        "Unknown model 'gpt4o' (not in the Compass reference); nearest known: gpt-4o, gpt-4o-mini, "
        "gpt-4o-audio-preview. It is sent anyway."
    ]


def test_reserved_param_is_a_warning_and_still_sent():
    body, warnings = build_body(model="gpt-4o", messages=USER, stream=False, fields={"min_p": 0.1})
    assert body["min_p"] == 0.1
    assert len(warnings) == 1 and warnings[0].startswith("min_p is documented only for qwen3-14b")


def test_strict_turns_the_reserved_param_warning_into_an_error():
    with pytest.raises(ValidationError) as info:
        build_body(model="gpt-4o", messages=USER, stream=False, fields={"min_p": 0.1}, strict=True)
    message = str(info.value)
    assert message.startswith("min_p is documented only for qwen3-14b (and Qwen3-Reranker-8B); gpt-4o")
    assert message.endswith("Turn this into a warning with %compass set strict=false.")
    # strict leaves allowed params and unknown models alone
    body, warnings = build_body(model="qwen3-14b", messages=USER, stream=False, fields={"min_p": 0.1}, strict=True)
    assert body["min_p"] == 0.1 and warnings == []
    _, warnings = build_body(model="new-model", messages=USER, stream=False, fields={"min_p": 0.1}, strict=True)
    assert warnings[0].startswith("Unknown model 'new-model'")


def test_warnings_combine_model_and_reserved_params():
    _, warnings = build_body(model="JAIS-30B", messages=USER, stream=False, fields={"presence_penalty": 1})
    assert len(warnings) == 2
    assert "spelled 'jais-30b'" in warnings[0]
    assert "presence_penalty" in warnings[1]


def test_extra_body_is_merged_unvalidated():
    body, _ = build_body(
        model="gpt-4o", messages=USER, stream=False, fields={"temperature": 1}, extra_body={"seed": 7, "temperature": 9}
    )
    assert body["seed"] == 7 and body["temperature"] == 9


@pytest.mark.parametrize("name", ["model", "messages", "stream"])
def test_own_arguments_cannot_hide_in_fields_or_extra_body(name):
    with pytest.raises(ValidationError, match=f"{name} is not a request field here"):
        build_body(model="gpt-4o", messages=USER, stream=False, fields={name: "x"})
    with pytest.raises(ValidationError, match=f"extra_body cannot set {name}"):
        build_body(model="gpt-4o", messages=USER, stream=False, fields={}, extra_body={name: "x"})


def test_model_and_stream_arguments_are_checked():
    with pytest.raises(ValidationError, match="model must be a non-empty model id"):
        build_body(model="  ", messages=USER, stream=False, fields={})
    with pytest.raises(ValidationError, match="stream must be true or false"):
        build_body(model="gpt-4o", messages=USER, stream="yes", fields={})  # type: ignore[arg-type]


def test_pcm16_rule_applies_through_build_body():
    fields = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "mp3"}}
    with pytest.raises(ValidationError, match="forces audio format pcm16"):
        build_body(model="gpt-4o-audio-preview", messages=USER, stream=True, fields=fields)
    body, warnings = build_body(model="gpt-4o-audio-preview", messages=USER, stream=False, fields=fields)
    assert body["audio"] == {"voice": "alloy", "format": "mp3"} and warnings == []


def test_inputs_are_not_mutated():
    fields = {"temperature": None, "stop": ["x"]}
    messages = [{"role": "user", "content": "Hi"}]
    body, _ = build_body(model="gpt-4o", messages=messages, stream=True, fields=fields)
    body["messages"].append({"role": "user", "content": "more"})
    assert fields == {"temperature": None, "stop": ["x"]} and len(messages) == 1
