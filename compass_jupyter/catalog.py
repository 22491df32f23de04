"""The models the Compass reference names, and what it says each one supports.

Everything here comes from the chat-completions reference and the text-generation
guide, nothing from experience: ``None`` means the documentation is silent. The
gateway grows faster than its documentation, so an unknown id is never refused,
only warned about (with the nearest known ids).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = [
    "AUDIO_FORMATS",
    "MARKS",
    "MODELS",
    "ModelInfo",
    "NOT_DOCUMENTED",
    "RESERVED_PARAMS",
    "VOICES",
    "get",
    "model_warnings",
    "nearest",
    "reserved_param_problems",
    "table",
]

AUDIO_FORMATS: tuple[str, ...] = ("wav", "mp3", "flac", "opus", "pcm16")
VOICES: tuple[str, ...] = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer")


@dataclass(frozen=True)
class ModelInfo:
    """One model id and what the documentation says of it (``None``: it does not say)."""

    id: str
    family: str
    image_input: bool | None = None
    audio_input: bool | None = None
    audio_output: bool | None = None
    tools: bool | None = None
    reasoning: bool | None = None
    notes: str = ""


_GPT_OSS = (
    # "crerebras" is the reference's own spelling; the gateway id may well be exactly that.
    "gpt-oss-120b-crerebras",
    "gpt-oss-120b-core42",
    "gpt-oss-120b-azure",
    "gpt-oss-120b-core42-amd",
    "gpt-oss-20b-core42-amd",
    "gpt-oss-120b-qualcomm",
    "gpt-oss-20b-qualcomm",
    "gpt-oss-20b-core42",
)

_TOOLS = ("gpt-4.1", "gpt-4o", "gpt-4o-audio-preview", "o3-mini", "o1")
_REASONING = ("gpt-5", "gpt-5-mini", *_GPT_OSS, "o1", "o3", "o3-mini", "o4-mini-2025-04-16")


def _model(model_id: str, family: str, notes: str = "", **capabilities: bool | None) -> ModelInfo:
    capabilities.setdefault("tools", True if model_id in _TOOLS else None)
    capabilities.setdefault("reasoning", True if model_id in _REASONING else None)
    return ModelInfo(id=model_id, family=family, notes=notes, **capabilities)


# The order of the reference's first model list.
MODELS: dict[str, ModelInfo] = {
    info.id: info
    for info in (
        _model("gpt-5", "OpenAI GPT-5", "reasoning model (reasoning_effort)"),
        _model("gpt-5-mini", "OpenAI GPT-5", "reasoning model (reasoning_effort)"),
        _model("gpt-4.1", "OpenAI GPT-4.1", "function tools"),
        _model(
            "gpt-4o",
            "OpenAI GPT-4o",
            "text and image in, text out",
            image_input=True,
            audio_input=False,
            audio_output=False,
        ),
        _model(
            "gpt-4o-audio-preview",
            "OpenAI GPT-4o",
            "text and audio in, text and audio out; streamed audio only as pcm16",
            audio_input=True,
            audio_output=True,
        ),
        _model(
            "gpt-4o-mini",
            "OpenAI GPT-4o",
            "text in, text out",
            image_input=False,
            audio_input=False,
            audio_output=False,
        ),
        _model("o3", "OpenAI reasoning", "reasoning model (reasoning_effort)"),
        _model("o3-mini", "OpenAI reasoning", "reasoning model (reasoning_effort), function tools"),
        _model("o4-mini-2025-04-16", "OpenAI reasoning", "reasoning model (reasoning_effort)"),
        _model("o1", "OpenAI reasoning", "reasoning model (reasoning_effort), function tools"),
        _model("jais-30b", "Jais", "presence_penalty does not apply"),
        _model("Llama-3.3-70B", "Llama"),
        _model("llama3-70b", "Llama"),
        _model("mixtral-8x7b", "Mistral"),
        _model("mistral-7b", "Mistral", "safe_prompt injects a safety prompt"),
        _model("gpt-oss-120b-crerebras", "gpt-oss", "spelled 'crerebras' in the reference; reasoning_effort"),
        *(_model(model_id, "gpt-oss", "reasoning_effort") for model_id in _GPT_OSS[1:]),
        _model("claude-sonnet-4", "Anthropic Claude", "extended thinking (thinking, budget >= 1024 tokens)"),
        _model("qwen3-14b", "Qwen", "thinking, thinking_budget and min_p"),
        _model("command-a-03-2025", "Cohere"),
        _model(
            "cohere-command-r-08-2024",
            "Cohere",
            "documents, citation_options and response_format (RAG with citations)",
        ),
    )
}

_EVERY_MODEL = tuple(MODELS)

# Fields the reference documents by naming the models they do NOT apply to.
_NOT_FOR: dict[str, tuple[str, ...]] = {
    # "Note: This does not apply to the Jais 30B model."
    "presence_penalty": ("jais-30b",),
}


def _in_catalog_order(ids: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m for m in _EVERY_MODEL if m in ids)


_RESERVED: dict[str, tuple[str, ...]] = {
    "tools": _TOOLS,
    "max_completion_tokens": ("gpt-4o", "gpt-4o-mini", "o3", "o3-mini", "o1"),
    "presence_penalty": tuple(m for m in _EVERY_MODEL if m not in _NOT_FOR["presence_penalty"]),
    "safe_prompt": ("mistral-7b",),
    "reasoning_effort": _REASONING,
    "thinking": ("claude-sonnet-4", "qwen3-14b"),
    "thinking_budget": ("qwen3-14b",),
    "documents": ("cohere-command-r-08-2024",),
    "citation_options": ("cohere-command-r-08-2024",),
    "response_format": ("cohere-command-r-08-2024",),
    "min_p": ("qwen3-14b",),
}

# Request fields the reference documents for some models only, mapped to those models.
RESERVED_PARAMS: dict[str, tuple[str, ...]] = {
    param: _in_catalog_order(allowed) for param, allowed in _RESERVED.items()
}

# Names the reference gives alongside the chat models that are not chat model ids.
_ALSO_DOCUMENTED_FOR: dict[str, tuple[str, ...]] = {"min_p": ("Qwen3-Reranker-8B",)}

_LOWER = {model_id.lower(): model_id for model_id in MODELS}

# Models served on this machine rather than by Compass (the [local] extra); known so
# that using them raises no "unknown model" warning, but not listed as Compass models.
LOCAL_MODELS: dict[str, ModelInfo] = {
    "smollm2-135m-instruct": ModelInfo(
        id="smollm2-135m-instruct",
        family="SmolLM2 (local, llama.cpp)",
        image_input=False,
        audio_input=False,
        audio_output=False,
        tools=True,
        reasoning=False,
        notes="offline default: SmolLM2-135M-Instruct on llama.cpp",
    )
}


def get(model: str) -> ModelInfo | None:
    """The catalog entry for ``model``: the exact id first, then ignoring case."""
    if not isinstance(model, str):
        return None
    info = MODELS.get(model) or LOCAL_MODELS.get(model)
    if info is not None:
        return info
    canonical = _LOWER.get(model.strip().lower())
    return MODELS[canonical] if canonical else None


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def nearest(model: str, n: int = 3) -> list[str]:
    """Up to ``n`` known ids that look like ``model``, the likeliest first."""
    query = str(model).strip().lower()
    squashed = _squash(query)
    if not query or n <= 0:
        return []
    ranked = []
    for model_id in MODELS:
        lower, id_squashed = model_id.lower(), _squash(model_id)
        ratio = difflib.SequenceMatcher(None, query, lower).ratio()
        # Ignoring punctuation catches "gpt4o" -> "gpt-4o", "llama33" -> "Llama-3.3-70B".
        same = bool(squashed) and squashed == id_squashed
        hit = bool(squashed) and len(squashed) >= 2 and (squashed in id_squashed or id_squashed in squashed)
        if same or hit or ratio >= 0.6:
            ranked.append((same, hit, ratio, model_id))
    ranked.sort(key=lambda row: (row[0], row[1], row[2]), reverse=True)
    return [row[3] for row in ranked[:n]]


def model_warnings(model: str) -> list[str]:
    """Notes about the model id itself: unknown, or known under another spelling."""
    info = get(model)
    if info is None:
        close = nearest(model)
        hint = f"nearest known: {', '.join(close)}" if close else "run %compass models to list the known ids"
        return [f"Unknown model {model!r} (not in the Compass reference); {hint}. It is sent anyway."]
    if info.id != model:
        return [
            f"Model {model!r} is spelled {info.id!r} in the Compass reference; it is sent as {model!r}. "
            f"If the server answers 404, use {info.id}."
        ]
    return []


def _describe(ids: tuple[str, ...]) -> str:
    """A readable list of model ids, the gpt-oss deployments folded into one phrase."""
    names = list(ids)
    if all(model_id in names for model_id in _GPT_OSS):
        at = names.index(_GPT_OSS[0])
        names = [model_id for model_id in names if model_id not in _GPT_OSS]
        names.insert(at, "every gpt-oss-120b-*/gpt-oss-20b-* model")
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def reserved_param_problems(model: str, fields: Mapping[str, Any]) -> list[str]:
    """One message per field in ``fields`` that the reference reserves for other models.

    An unknown model gives no messages: the catalog cannot judge what it accepts.
    """
    if model in LOCAL_MODELS:
        return []  # the reservations are Compass's; a local model is not bound by them
    info = get(model)
    if info is None:
        return []
    problems = []
    for param, allowed in RESERVED_PARAMS.items():
        if fields.get(param) is None or info.id in allowed:
            continue
        if param in _NOT_FOR:
            problems.append(
                f"{param} is documented as not applying to {_describe(_NOT_FOR[param])}; "
                f"{info.id} may ignore or reject it. Remove {param} for this model."
            )
            continue
        also = _ALSO_DOCUMENTED_FOR.get(param, ())
        extra = f" (and {', '.join(also)})" if also else ""
        target = allowed[0] if len(allowed) == 1 else "one of those models"
        problems.append(
            f"{param} is documented only for {_describe(allowed)}{extra}; "
            f"{info.id} may ignore or reject it. Remove {param}, or use {target}."
        )
    return problems


# What each mark of ``%compass models`` means: the table says what the reference documents, and
# a mark for "not said" keeps that apart from "no" (the model may well do it; nobody wrote so).
NOT_DOCUMENTED = "—"
MARKS: dict[str, str] = {
    "yes": "the reference documents it for this model",
    "no": "the reference says this model does not",
    NOT_DOCUMENTED: "not documented for this model (it may work: try it)",
}


def _flag(value: bool | None) -> str:
    return {True: "yes", False: "no", None: NOT_DOCUMENTED}[value]


def table() -> list[dict[str, str]]:
    """One row per model for ``%compass models`` (marks as in :data:`MARKS`)."""
    return [
        {
            "id": info.id,
            "family": info.family,
            "image in": _flag(info.image_input),
            "audio in": _flag(info.audio_input),
            "audio out": _flag(info.audio_output),
            "tools": _flag(info.tools),
            "reasoning": _flag(info.reasoning),
            "reserved params": ", ".join(p for p, allowed in RESERVED_PARAMS.items() if info.id in allowed),
            "notes": info.notes,
        }
        for info in MODELS.values()
    ]
