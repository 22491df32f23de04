"""Model-specific fields end to end through %%compass: documents, thinking, schemas, audio, tool errors."""

from __future__ import annotations

import json

from test_magics import body, ok, refused, run, shell  # noqa: F401  (shell is a fixture)

import compass_jupyter as cj
from compass_jupyter.testing import Scenario


def test_documents_from_a_list_are_sent_and_citations_shown(shell, compass_server):
    shell.user_ns["docs"] = [
        "The Burj Khalifa is 828 metres tall.",
        {"id": "d2", "data": {"text": "Dubai is in the UAE."}},
    ]
    cell = ok(shell, "%%compass -m cohere-command-r-08-2024 --documents docs\nHow tall is the Burj Khalifa?")
    assert body(compass_server)["documents"] == shell.user_ns["docs"]
    assert "Citations" in cell.markdown
    assert "828 metres" in cell.markdown


def test_undefined_documents_variable_is_refused(shell, compass_server):
    cell = refused(shell, compass_server, "%%compass --documents nope\nHi")
    assert "nope" in cell.stderr


def test_thinking_is_sent_and_the_reasoning_shown_collapsed(shell, compass_server):
    cell = ok(
        shell,
        """%%compass -m claude-sonnet-4 --max-tokens 4096 --param thinking='{"type": "enabled", "budget_tokens": 2048}'
Why is the sky blue?""",
    )
    assert body(compass_server)["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "<details><summary>Reasoning</summary>" in cell.markdown
    assert cj.session().messages[-1]["content"] and "Reasoning" not in cj.session().messages[-1]["content"]


def test_schema_from_a_dict_variable_is_sent_and_the_reply_parsed(shell, compass_server):
    shell.user_ns["person"] = {
        "title": "person",
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    cell = ok(shell, "%%compass -m cohere-command-r-08-2024 --schema person -o r\nDescribe Ada Lovelace as JSON.")
    sent = body(compass_server)["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "person"
    assert sent["json_schema"]["schema"]["required"] == ["name", "age"]
    shown = [o["application/json"] for o in cell.visible if "application/json" in o]
    assert shown and set(shown[0]) >= {"name", "age"}
    assert shell.user_ns["r"].json() == shown[0]


def test_a_schema_reply_that_is_not_json_is_reported_and_kept(shell, compass_server):
    shell.user_ns["schema"] = {"type": "object", "properties": {"x": {"type": "integer"}}}
    compass_server.enqueue(Scenario(text="Sorry, I cannot do that"))
    cell = ok(shell, "%%compass --schema schema\nGive me x")
    assert "not valid JSON" in cell.stderr + cell.markdown + cell.text
    assert "Sorry, I cannot do that" in cell.markdown + cell.text


def test_param_at_name_takes_a_notebook_variable(shell, compass_server):
    shell.user_ns["bias"] = {"50256": -100}
    ok(shell, "%%compass --param logit_bias=@bias\nHi")
    assert body(compass_server)["logit_bias"] == {"50256": -100}


def test_a_tool_that_raises_is_shown_and_sent_back(shell, compass_server):
    ok(
        shell,
        'def lookup(city: str) -> str:\n    """Look a city up."""\n    raise RuntimeError(f"database down for {city}")',
    )
    cell = ok(shell, "%%compass --tools lookup\nPlease lookup Paris")
    assert "database down for Paris" in cell.markdown
    tool_message = [m for m in cj.session().messages if m["role"] == "tool"][0]
    assert "database down for Paris" in tool_message["content"]
    assert cj.session().messages[-1]["role"] == "assistant"


def test_streamed_voice_reply_plays_and_keeps_the_transcript(shell, compass_server):
    cell = ok(shell, "%%compass -m gpt-4o-audio-preview --voice alloy -o spoken\nSay hi")
    reply = shell.user_ns["spoken"]
    assert body(compass_server)["audio"] == {"voice": "alloy", "format": "pcm16"}
    assert reply.audio.wav[:4] == b"RIFF" and reply.audio.duration > 0.4
    assert "<audio" in cell.markdown
    assert cj.session().messages[-1]["content"] == reply.audio.transcript
    assert reply.usage.audio_tokens > 0


def test_safe_prompt_and_repitition_penalty_by_their_documented_names(shell, compass_server):
    ok(shell, "%%compass -m mistral-7b --param safe_prompt=true --param repitition_penalty=1.1 --top-k 40\nHi")
    sent = body(compass_server)
    assert (sent["safe_prompt"], sent["repitition_penalty"], sent["top_k"]) == (True, 1.1, 40)


def test_unknown_field_by_param_suggests_the_documented_spelling(shell, compass_server):
    cell = refused(shell, compass_server, "%%compass --param repetition_penalty=1.1\nHi")
    assert "repitition_penalty" in cell.stderr
    assert json.dumps(cj.session().messages) == "[]"
