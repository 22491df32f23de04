"""How the local llama.cpp server reads a request, and what SmolLM2 does instead of what it cannot do.

:class:`LlamaCppDialect` is the :class:`~compass_jupyter.dialect.Dialect` of the
client :func:`compass_jupyter.local_model.local` routes the session to. It rewrites
each validated body: ``seed`` for ``random_seed``, ``""`` for null assistant
content beside ``tool_calls`` (llama.cpp refuses null there), text parts joined
into one string, and the model id of the model that really answers (llama.cpp
answers for any id and echoes it back).

A tutorial must run to its end on the local model too, so what SmolLM2 cannot do
is done another way or left out, never refused; :meth:`LlamaCppDialect.notices`
says so in one line each, shown with the reply:

- several choices (``n``): llama.cpp ignores ``n``, so the client sends one
  request per choice with successive seeds and merges them (``max_choices = 1``);
- images and audio clips: left out, the text is sent alone;
- a spoken reply (``--voice``): the reply is text only;
- tools without a named ``tool_choice``: llama.cpp's chat template shows the
  model no tools, so it can only call one it is told to call (a grammar then
  shapes the call). With one tool offered and no result back yet, that tool is
  named; with several, the model answers in text;
- ``documents``: not read;
- a model id other than its own: it answers anyway, under its own id.
"""

from __future__ import annotations

from typing import Any

from ..dialect import Dialect, null_content_as_empty
from .server import LOCAL_MODEL_ID

__all__ = ["LlamaCppDialect"]

_STOP_LOCAL = "%compass key, then %compass local stop"
_MEDIA = {"image_url": "[image]", "input_audio": "[audio clip]"}  # what stands in for a part left out


def _new_media(body: dict[str, Any]) -> set[str]:
    """Which of image_url / input_audio the latest user message holds.

    Older messages' parts are left out too, but were announced with their own turn:
    a conversation with a picture in its history would otherwise say so at every turn.
    """
    for message in reversed(body.get("messages", [])):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return {str(p["type"]) for p in content if isinstance(p, dict) and p.get("type") in _MEDIA}
            return set()
    return set()


def _without_media(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its image and audio parts left out (a placeholder when nothing else is left)."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    kept = [p for p in content if not (isinstance(p, dict) and p.get("type") in _MEDIA)]
    if len(kept) == len(content):
        return message
    if not kept:
        # An empty message would leave the model nothing to answer; say what was there instead.
        kept = [{"type": "text", "text": " ".join(_MEDIA[p["type"]] for p in content if isinstance(p, dict))}]
    return {**message, "content": kept}


def _joined_text_parts(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return {**message, "content": "\n".join(str(p.get("text", "")) for p in content)}
    return message


def _tool_names(body: dict[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            names.append(name)
    return names


def _model_decides(body: dict[str, Any]) -> bool:
    """Tools are offered, the model is to decide whether to call one, and no tool result came back yet.

    After a result (the last message is a tool's), the model is meant to answer in text:
    it must not be told to call a tool again, or the tool loop would never end.
    """
    if not body.get("tools") or body.get("tool_choice") not in (None, "auto", "required"):
        return False
    messages = body.get("messages") or []
    return not (messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "tool")


class LlamaCppDialect(Dialect):
    """llama.cpp's OpenAI-compatible server (``llama_cpp.server``) serving SmolLM2 as ``model_id``."""

    name = "llama.cpp"
    max_choices = 1  # llama.cpp's server drops ``n``: one choice per request

    def __init__(self, model_id: str = LOCAL_MODEL_ID) -> None:
        super().__init__()
        self.model_id = model_id
        self.sole_model = model_id  # whatever id a request names, this model answers

    def route(self, url: str) -> str:
        # The port changes with every start of the server; the model answering does not.
        return f"local:{self.model_id}"

    def rewrite(self, body: dict[str, Any]) -> dict[str, Any]:
        adapted = null_content_as_empty(body)
        # llama.cpp answers for any id and echoes it back; say which model really answered.
        adapted["model"] = self.model_id
        if "random_seed" in adapted:
            adapted["seed"] = adapted.pop("random_seed")
        adapted["messages"] = [_joined_text_parts(_without_media(m)) for m in adapted.get("messages", [])]
        if "audio" in (adapted.get("modalities") or []):
            # llama.cpp would ignore them; dropped so the body sent says what the reply will be.
            adapted.pop("modalities")
            adapted.pop("audio", None)
        adapted.pop("documents", None)
        tools = _tool_names(body)
        if len(tools) == 1 and _model_decides(body):
            adapted["tool_choice"] = {"type": "function", "function": {"name": tools[0]}}
        return adapted

    def notices(self, body: dict[str, Any]) -> list[str]:
        lines = super().notices(body)
        model = body.get("model")
        if isinstance(model, str) and model != self.model_id:
            # The same words whatever id was named: compare mode's columns show it once, not once per model.
            lines.append(
                f"The local model {self.model_id} answers on this route whichever model is named; "
                f"to ask Compass models: {_STOP_LOCAL}."
            )
        kinds = _new_media(body)
        if "image_url" in kinds:
            lines.append(
                "The local model cannot see images: it was sent the text alone "
                "(a Compass vision model such as gpt-4o would describe the image)."
            )
        if "input_audio" in kinds:
            lines.append(
                "The local model cannot hear audio: it was sent the text alone "
                "(gpt-4o-audio-preview on Compass would listen to the clip)."
            )
        if "audio" in (body.get("modalities") or []):
            lines.append(
                "The local model cannot speak: the reply is text only, with no audio "
                "(gpt-4o-audio-preview on Compass would say it aloud)."
            )
        if body.get("documents"):
            lines.append(
                "The local model does not read documents: they were not sent "
                "(cohere-command-r-08-2024 on Compass answers from them, with citations)."
            )
        tools = _tool_names(body)
        if len(tools) == 1 and _model_decides(body) and body.get("tool_choice") != "required":
            lines.append(
                f"The local model cannot decide alone whether to call a tool, so it was told to call {tools[0]}, "
                "the only one offered (Compass models decide for themselves)."
            )
        elif len(tools) > 1 and _model_decides(body):
            lines.append(
                "The local model calls a tool only when it is named (--tool-choice NAME) or is the only one "
                f"offered, so it answers in text; Compass models choose among {', '.join(tools)} themselves."
            )
        return lines
