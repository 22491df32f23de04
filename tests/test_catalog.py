"""The model catalog: what the Compass reference says of each model id."""

from __future__ import annotations

import dataclasses

import pytest

from compass_jupyter import catalog

# The reference's own list, copied by hand so a slip in the catalog shows up here.
REFERENCE_IDS = (
    "gpt-5, gpt-5-mini, gpt-4.1, gpt-4o, gpt-4o-audio-preview, gpt-4o-mini, o3, o3-mini, "
    "o4-mini-2025-04-16, o1, jais-30b, Llama-3.3-70B, llama3-70b, mixtral-8x7b, mistral-7b, "
    "gpt-oss-120b-crerebras, gpt-oss-120b-core42, gpt-oss-120b-azure, gpt-oss-120b-core42-amd, "
    "gpt-oss-20b-core42-amd, gpt-oss-120b-qualcomm, gpt-oss-20b-qualcomm, gpt-oss-20b-core42, "
    "claude-sonnet-4, qwen3-14b, command-a-03-2025, cohere-command-r-08-2024"
).split(", ")


def test_every_reference_id_in_order():
    assert list(catalog.MODELS) == REFERENCE_IDS
    assert len(catalog.MODELS) == 27
    assert all(info.id == key for key, info in catalog.MODELS.items())


def test_model_info_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        catalog.MODELS["gpt-4o"].tools = False  # type: ignore[misc]


def test_families():
    families = {info.family for info in catalog.MODELS.values()}
    assert {"OpenAI GPT-4o", "OpenAI reasoning", "gpt-oss", "Jais", "Llama", "Mistral",
            "Anthropic Claude", "Qwen", "Cohere"} <= families  # fmt: skip
    assert catalog.MODELS["claude-sonnet-4"].family == "Anthropic Claude"
    assert catalog.MODELS["mixtral-8x7b"].family == "Mistral"
    assert catalog.MODELS["gpt-oss-20b-qualcomm"].family == "gpt-oss"
    assert catalog.MODELS["o4-mini-2025-04-16"].family == "OpenAI reasoning"


def test_image_input_as_documented():
    assert catalog.MODELS["gpt-4o"].image_input is True
    assert catalog.MODELS["gpt-4o-mini"].image_input is False
    silent = [m for m, info in catalog.MODELS.items() if info.image_input is None]
    assert len(silent) == 25


def test_audio_as_documented():
    audio = catalog.MODELS["gpt-4o-audio-preview"]
    assert audio.audio_input is True and audio.audio_output is True
    # "GPT-4o ... generates text output", "GPT-4o mini supports text input and text outputs".
    assert catalog.MODELS["gpt-4o"].audio_output is False
    assert catalog.MODELS["gpt-4o-mini"].audio_output is False
    assert catalog.MODELS["claude-sonnet-4"].audio_output is None


def test_tools_and_reasoning_flags_follow_the_reservations():
    for model_id, info in catalog.MODELS.items():
        assert info.tools is (True if model_id in catalog.RESERVED_PARAMS["tools"] else None)
        assert info.reasoning is (True if model_id in catalog.RESERVED_PARAMS["reasoning_effort"] else None)


def test_reservations_from_the_reference():
    r = catalog.RESERVED_PARAMS
    assert set(r["tools"]) == {"gpt-4.1", "gpt-4o", "gpt-4o-audio-preview", "o3-mini", "o1"}
    assert set(r["max_completion_tokens"]) == {"gpt-4o", "gpt-4o-mini", "o3", "o3-mini", "o1"}
    assert set(r["presence_penalty"]) == set(REFERENCE_IDS) - {"jais-30b"}
    assert r["safe_prompt"] == ("mistral-7b",)
    gpt_oss = {m for m in REFERENCE_IDS if m.startswith("gpt-oss-")}
    assert len(gpt_oss) == 8
    assert set(r["reasoning_effort"]) == {"gpt-5", "gpt-5-mini", "o1", "o3", "o3-mini", "o4-mini-2025-04-16"} | gpt_oss
    assert set(r["thinking"]) == {"claude-sonnet-4", "qwen3-14b"}
    assert r["thinking_budget"] == ("qwen3-14b",)
    for param in ("documents", "citation_options", "response_format"):
        assert r[param] == ("cohere-command-r-08-2024",)
    assert r["min_p"] == ("qwen3-14b",)
    assert all(set(ids) <= set(REFERENCE_IDS) for ids in r.values())


def test_audio_formats_and_voices():
    assert catalog.AUDIO_FORMATS == ("wav", "mp3", "flac", "opus", "pcm16")
    assert catalog.VOICES == ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer")


def test_get_exact_then_case_insensitive():
    assert catalog.get("gpt-4o").id == "gpt-4o"
    assert catalog.get("GPT-4O").id == "gpt-4o"
    assert catalog.get("llama-3.3-70b").id == "Llama-3.3-70B"
    assert catalog.get("gpt4o") is None
    assert catalog.get("") is None


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("gpt-oss-120b-cerebras", "gpt-oss-120b-crerebras"),
        ("gpt4o", "gpt-4o"),
        ("claude", "claude-sonnet-4"),
        ("qwen", "qwen3-14b"),
        ("command-r", "cohere-command-r-08-2024"),
        ("o4-mini", "o4-mini-2025-04-16"),
        ("mistral", "mistral-7b"),
        ("gpt-4o-audio", "gpt-4o-audio-preview"),
    ],
)
def test_nearest_puts_the_intended_model_first(typed, expected):
    assert catalog.nearest(typed)[0] == expected


def test_nearest_respects_n_and_finds_nothing_for_nonsense():
    assert len(catalog.nearest("gpt", n=2)) == 2
    assert catalog.nearest("gpt4o", n=1) == ["gpt-4o"]
    assert catalog.nearest("zzzz") == []
    assert catalog.nearest("") == []
    assert set(catalog.nearest("llama")) == {"Llama-3.3-70B", "llama3-70b"}


def test_unknown_model_warning_text():
    (warning,) = catalog.model_warnings("gpt4o")
    assert warning.startswith(
        "Unknown model 'gpt4o' (not in the Compass reference); nearest known: gpt-4o, gpt-4o-mini"
    )
    assert warning.endswith(". It is sent anyway.")


def test_unknown_model_without_neighbours_points_at_the_list():
    (warning,) = catalog.model_warnings("zzzz")
    assert "%compass models" in warning and "It is sent anyway." in warning


def test_known_model_has_no_warning_but_other_case_is_pointed_out():
    assert catalog.model_warnings("gpt-oss-120b-crerebras") == []
    (warning,) = catalog.model_warnings("GPT-4o")
    assert "'gpt-4o'" in warning and "404" in warning


def test_reserved_param_message_for_a_single_model():
    (problem,) = catalog.reserved_param_problems("gpt-4o", {"min_p": 0.1})
    assert problem.startswith(
        "min_p is documented only for qwen3-14b (and Qwen3-Reranker-8B); gpt-4o may ignore or reject it."
    )
    assert "Remove min_p" in problem


def test_reserved_param_message_lists_the_models():
    (problem,) = catalog.reserved_param_problems("mistral-7b", {"tools": [{"type": "function"}]})
    assert "tools is documented only for" in problem
    for model_id in ("gpt-4.1", "gpt-4o", "gpt-4o-audio-preview", "o3-mini", "o1"):
        assert model_id in problem
    assert "mistral-7b may ignore or reject it" in problem


def test_reasoning_effort_message_folds_the_gpt_oss_ids():
    (problem,) = catalog.reserved_param_problems("gpt-4o", {"reasoning_effort": "low"})
    assert "gpt-5" in problem and "o4-mini-2025-04-16" in problem and "gpt-oss" in problem
    assert "crerebras" not in problem  # folded into one phrase, not 8 ids


def test_presence_penalty_is_only_a_problem_for_jais():
    assert catalog.reserved_param_problems("gpt-4o", {"presence_penalty": 0.5}) == []
    (problem,) = catalog.reserved_param_problems("jais-30b", {"presence_penalty": 0.5})
    assert "presence_penalty" in problem and "not applying to jais-30b" in problem


def test_allowed_unknown_and_unset_params_give_no_problem():
    assert catalog.reserved_param_problems("qwen3-14b", {"min_p": 0.1, "thinking_budget": 2000}) == []
    assert catalog.reserved_param_problems("QWEN3-14B", {"min_p": 0.1}) == []
    assert catalog.reserved_param_problems("my-new-model", {"min_p": 0.1, "safe_prompt": True}) == []
    assert catalog.reserved_param_problems("gpt-4o", {"min_p": None, "temperature": 1}) == []


def test_several_problems_come_one_per_field():
    problems = catalog.reserved_param_problems(
        "gpt-4o-mini", {"safe_prompt": True, "documents": ["a"], "thinking": {"type": "enabled"}, "top_p": 1}
    )
    assert [p.split()[0] for p in problems] == ["safe_prompt", "thinking", "documents"]


def test_table_rows():
    rows = catalog.table()
    assert [row["id"] for row in rows] == REFERENCE_IDS
    gpt4o = rows[REFERENCE_IDS.index("gpt-4o")]
    assert gpt4o["image in"] == "yes" and gpt4o["audio out"] == "no" and gpt4o["tools"] == "yes"
    assert gpt4o["reserved params"] == "tools, max_completion_tokens, presence_penalty"
    jais = rows[REFERENCE_IDS.index("jais-30b")]
    assert jais["reserved params"] == "" and jais["image in"] == catalog.NOT_DOCUMENTED == "—"
    cohere = rows[REFERENCE_IDS.index("cohere-command-r-08-2024")]
    assert "documents" in cohere["reserved params"] and "response_format" in cohere["reserved params"]
    audio = rows[REFERENCE_IDS.index("gpt-4o-audio-preview")]
    assert audio["audio in"] == audio["audio out"] == "yes"
    for row in rows:
        assert {"id", "family", "image in", "audio in", "audio out", "tools", "reasoning", "reserved params"} <= set(
            row
        )
        assert all(isinstance(v, str) for v in row.values())
