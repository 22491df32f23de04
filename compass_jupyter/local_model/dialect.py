"""How the local llama.cpp server reads a request, and what SmolLM2 cannot do.

:class:`LlamaCppDialect` is the :class:`~compass_jupyter.dialect.Dialect` of the
client :func:`compass_jupyter.local_model.local` routes the session to. It rewrites
each validated body: ``seed`` for ``random_seed``, ``""`` for null assistant
content beside ``tool_calls`` (llama.cpp refuses null there), text parts joined
into one string, and the model id of the model that really answers (llama.cpp
answers for any id). Before that, :func:`refuse_what_smollm2_cannot_do` turns a
request the model cannot serve (images, audio, several choices) into a clear
:class:`~compass_jupyter.ValidationError` before anything is sent.
"""

from __future__ import annotations

from typing import Any

from .._exceptions import ValidationError
from ..dialect import Dialect, null_content_as_empty
from .server import LOCAL_MODEL_ID

__all__ = ["LlamaCppDialect", "refuse_what_smollm2_cannot_do"]

_FIX = "Remove it, or set a key (%compass key) and run %compass local stop to use Compass."


def refuse_what_smollm2_cannot_do(body: dict[str, Any]) -> None:
    """SmolLM2 reads and writes text only; say so before sending rather than fail obscurely."""
    for message in body.get("messages", []):
        content = message.get("content")
        kinds = {p.get("type") for p in content if isinstance(p, dict)} if isinstance(content, list) else set()
        if kinds & {"image_url", "input_audio"}:
            what = "images" if "image_url" in kinds else "audio"
            raise ValidationError(f"The local model (SmolLM2-135M) reads text only, not {what}. {_FIX}")
    if "audio" in (body.get("modalities") or []):
        raise ValidationError(f"The local model (SmolLM2-135M) cannot speak: it has no audio output (--voice). {_FIX}")
    if (body.get("n") or 1) > 1:
        raise ValidationError(f"The local model gives one choice per request; n={body['n']} is not possible. {_FIX}")


def _joined_text_parts(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return {**message, "content": "\n".join(str(p.get("text", "")) for p in content)}
    return message


class LlamaCppDialect(Dialect):
    """llama.cpp's OpenAI-compatible server (``llama_cpp.server``) serving SmolLM2 as ``model_id``."""

    name = "llama.cpp"

    def __init__(self, model_id: str = LOCAL_MODEL_ID) -> None:
        super().__init__()
        self.model_id = model_id

    def route(self, url: str) -> str:
        # The port changes with every start of the server; the model answering does not.
        return f"local:{self.model_id}"

    def rewrite(self, body: dict[str, Any]) -> dict[str, Any]:
        refuse_what_smollm2_cannot_do(body)
        adapted = null_content_as_empty(body)
        # llama.cpp answers for any id; say which model really answered.
        adapted["model"] = self.model_id
        if "random_seed" in adapted:
            adapted["seed"] = adapted.pop("random_seed")
        adapted["messages"] = [_joined_text_parts(m) for m in adapted.get("messages", [])]
        return adapted
