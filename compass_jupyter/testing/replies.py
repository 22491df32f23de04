"""Deterministic replies of the stand-in server: request checks, content, wire shapes.

Everything here is a pure function of the request body, the model id and the
scenario: the same request always gives byte-for-byte the same answer, ids
included (they are derived from a hash of the body; ``created`` is a constant).

What the stand-in answers (first rule that applies, per choice):

1. ``Scenario.tool_calls``: those calls.
2. ``Scenario.text`` / ``Scenario.tokens``: that text.
3. The last message is a ``tool`` message: one line per trailing tool result,
   ``Based on <tool name>: <result>``.
4. ``tools`` are offered, ``tool_choice`` is not ``"none"`` and the last message
   is a user message: a forced ``tool_choice`` calls that tool; otherwise the
   tools whose names appear in the user text are called, in order of
   appearance, in parallel (``"required"`` falls back to the first tool).
   Arguments are synthesised from each tool's JSON schema (see
   :func:`value_for_schema`).
5. ``response_format`` ``json_object`` -> ``{"model": ..., "echo": ...}``;
   ``json_schema`` (or Cohere's ``json_object`` with ``schema``) -> an object
   built from the schema.
6. ``documents`` (Cohere) -> a sentence quoting the first document, with
   ``citations``.
7. Otherwise ``Stand-in <model> here. You said: “<first 200 characters of the
   last user message>”``, plus what media was received. With a ``temperature``
   above 0 the opening sentence varies (by ``random_seed`` when given, else by
   the body); ``temperature`` 0 or absent keeps it fixed. Choice ``i`` > 0 ends
   with `` (choice i+1)``.

Then ``stop`` cuts the text before the first stop sequence, ``max_tokens`` /
``max_completion_tokens`` cut the tokens (finish reason ``length``), and audio
output (``modalities`` with ``"audio"``) turns the text into a transcript with
a synthetic tone. Tokens are ``re.findall(r"\\s*\\S+", text)``, trailing
whitespace kept on the last token so that the tokens always join to the text.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
import json
import math
import re
import string
import sys
import wave
from array import array
from dataclasses import dataclass, field
from typing import Any

from .scenario import Scenario

__all__ = [
    "CREATED",
    "Completion",
    "RequestProblem",
    "StreamEvent",
    "build",
    "completion_json",
    "dumps",
    "stream_events",
    "tokenize",
    "validate",
    "value_for_schema",
]

#: The fixed ``created`` timestamp of every response (the one in the API guide).
CREATED = 1741094330
SAMPLE_RATE = 24000
_TOKEN_RE = re.compile(r"\s*\S+")
_ALNUM = string.ascii_letters + string.digits
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DATA_URL_RE = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)
_AUDIO_FORMATS = ("wav", "mp3", "flac", "opus", "pcm16")
_OPENINGS = (
    "Stand-in {model} here.",
    "This is the stand-in {model}.",
    "Stand-in {model} answering.",
    "Hello from the stand-in {model}.",
)
_FILLER = (
    "the stand-in streams words at a steady pace so that a benchmark can measure "
    "how fast a client parses events and renders text without any model in the loop"
).split()
_ALTERNATIVES = (
    "the a an and to of it is that in this you for on with as be at by we or so "
    "but not are was can will one all"
).split()
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-oss")
_EFFORT_FACTOR = {"none": 0.25, "minimal": 0.25, "low": 1, "medium": 2, "high": 4}


# --------------------------------------------------------------------------- helpers


def dumps(obj: Any) -> str:
    """Compact JSON with raw UTF-8 (as real servers send it)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def tokenize(text: str) -> list[str]:
    """Split text into the stand-in's tokens; they always join back to ``text``."""
    tokens = _TOKEN_RE.findall(text)
    if not tokens:
        return [text] if text else []
    rest = text[sum(map(len, tokens)) :]
    if rest:
        tokens[-1] += rest
    return tokens


def _count(text: str) -> int:
    return len(_TOKEN_RE.findall(text))


def _hash_int(*parts: Any) -> int:
    data = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _ident(*parts: Any, length: int = 24) -> str:
    data = "\x1f".join(str(p) for p in parts).encode("utf-8")
    number = int.from_bytes(hashlib.sha256(data).digest(), "big")
    chars = []
    for _ in range(length):
        number, rem = divmod(number, len(_ALNUM))
        chars.append(_ALNUM[rem])
    return "".join(chars)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def _given(body: dict[str, Any], name: str) -> bool:
    # Real servers treat an explicit null like an absent optional field.
    return body.get(name) is not None


# --------------------------------------------------------------------------- checks


class RequestProblem(Exception):
    """A request the stand-in refuses, with the status and OpenAI-style error body."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        status: int = 400,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status
        self.code = code
        self.error_type = error_type

    def to_json(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


def _invalid(param: str, value: Any, expected: str) -> RequestProblem:
    shown = dumps(value) if not isinstance(value, str) else repr(value)
    if len(shown) > 80:
        shown = shown[:80] + "…"
    return RequestProblem(
        f"Invalid value for '{param}': {shown}. Expected {expected}.",
        param=param,
        code="invalid_value",
    )


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    if not _given(body, name):
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _invalid(name, value, f"a number between {low:g} and {high:g}")
    if value < low:
        raise RequestProblem(
            f"Invalid '{name}': decimal below minimum value. Expected a value >= {low:g}, "
            f"but got {value:g} instead.",
            param=name,
            code="decimal_below_min_value",
        )
    if value > high:
        raise RequestProblem(
            f"Invalid '{name}': decimal above maximum value. Expected a value <= {high:g}, "
            f"but got {value:g} instead.",
            param=name,
            code="decimal_above_max_value",
        )


def _check_int(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    if not _given(body, name):
        return
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, value, "an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise RequestProblem(
            f"Invalid '{name}': {value}. It must be an integer {bound}.",
            param=name,
            code="integer_out_of_range",
        )


def _check_choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> None:
    if _given(body, name) and body[name] not in allowed:
        raise _invalid(name, body[name], "one of " + ", ".join(repr(a) for a in allowed))


def validate(body: Any) -> None:
    """Refuse a request body the way a real server would (raises :class:`RequestProblem`).

    Checks the messages (roles, content parts, data URLs, base64 audio, tool
    messages answering a preceding assistant ``tool_calls``), the ranges of the
    sampling parameters, ``top_logprobs`` without ``logprobs``, ``stream_options``
    without ``stream``, tools and ``tool_choice``, ``response_format``, audio
    output (the stand-in produces ``wav`` and ``pcm16``; streaming needs
    ``pcm16``), ``documents`` and ``thinking``. The model is checked by the server.
    """
    if not isinstance(body, dict):
        raise RequestProblem(
            "The request body must be a JSON object with 'model' and 'messages'.", param=None
        )
    _check_messages(body.get("messages"))
    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    _check_number(body, "min_p", 0, 1)
    _check_number(body, "presence_penalty", -2, 2)
    _check_number(body, "frequency_penalty", -2, 2)
    _check_int(body, "n", 1, 128)
    _check_int(body, "max_tokens", 1)
    _check_int(body, "max_completion_tokens", 1)
    _check_int(body, "top_k", 0)
    _check_int(body, "random_seed", -(2**63), 2**64)
    _check_int(body, "seed", -(2**63), 2**64)
    _check_int(body, "top_logprobs", 0, 20)
    _check_choice(body, "reasoning_effort", ("none", "minimal", "low", "medium", "high"))
    _check_choice(body, "verbosity", ("low", "medium", "high"))
    for flag in ("stream", "logprobs"):
        if _given(body, flag) and not isinstance(body[flag], bool):
            raise _invalid(flag, body[flag], "true or false")
    if _given(body, "top_logprobs") and body.get("logprobs") is not True:
        raise RequestProblem(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )
    if _given(body, "stream_options"):
        options = body["stream_options"]
        if not isinstance(options, dict):
            raise _invalid("stream_options", options, 'an object such as {"include_usage": true}')
        if body.get("stream") is not True:
            raise RequestProblem(
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
                code="invalid_value",
            )
        if "include_usage" in options and not isinstance(options["include_usage"], bool):
            raise _invalid("stream_options.include_usage", options["include_usage"], "true or false")
    _check_stop(body)
    _check_tools(body)
    _check_response_format(body)
    _check_audio_output(body)
    _check_documents(body)
    _check_thinking(body)


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise RequestProblem(
            "'messages' is required and must be a non-empty array of message objects, "
            'e.g. [{"role": "user", "content": "Hi"}].',
            param="messages",
            code="invalid_value" if messages is not None else "missing_required_parameter",
        )
    pending: dict[str, None] = {}
    answered_ids: set[str] = set()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid(where, message, 'a message object such as {"role": "user", "content": "Hi"}')
        role = message.get("role")
        if role not in _ROLES:
            raise _invalid(f"{where}.role", role, "one of " + ", ".join(repr(r) for r in _ROLES))
        if role != "tool":
            if pending:
                raise _unanswered(pending)
            answered_ids = set()
        content = message.get("content")
        if role == "assistant":
            calls = message.get("tool_calls")
            if content is None and not calls and not message.get("function_call"):
                raise RequestProblem(
                    f"Missing parameter '{where}.content': an assistant message needs "
                    "'content' unless it has 'tool_calls'.",
                    param=f"{where}.content",
                    code="missing_required_parameter",
                )
            if calls is not None:
                pending = {cid: None for cid in _check_assistant_calls(where, calls)}
                answered_ids = set(pending)
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise RequestProblem(
                    f"Missing parameter '{where}.tool_call_id': a tool message must name the "
                    "tool call it answers.",
                    param=f"{where}.tool_call_id",
                    code="missing_required_parameter",
                )
            if call_id not in answered_ids:
                raise RequestProblem(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    f"preceding message with 'tool_calls' (no call with id {call_id!r}).",
                    param=f"{where}.role",
                    code=None,
                )
            pending.pop(call_id, None)
        elif content is None:
            raise RequestProblem(
                f"Missing required parameter: '{where}.content'.",
                param=f"{where}.content",
                code="missing_required_parameter",
            )
        if content is not None:
            _check_content(where, role, content)
    if pending:
        raise _unanswered(pending)


def _unanswered(pending: dict[str, None]) -> RequestProblem:
    return RequestProblem(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(pending),
        param="messages",
        code=None,
    )


def _check_assistant_calls(where: str, calls: Any) -> list[str]:
    if not isinstance(calls, list):
        raise _invalid(f"{where}.tool_calls", calls, "an array of tool calls")
    ids = []
    for j, call in enumerate(calls):
        here = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or not isinstance(call.get("id"), str)
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise _invalid(
                here,
                call,
                'a tool call {"id": ..., "type": "function", "function": {"name": ..., '
                '"arguments": "<JSON text>"}}',
            )
        ids.append(call["id"])
    return ids


def _check_content(where: str, role: str, content: Any) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid(f"{where}.content", content, "a string or an array of content parts")
    allowed = ("text", "image_url", "input_audio") if role == "user" else ("text", "refusal")
    for j, part in enumerate(content):
        here = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            raise _invalid(f"{here}.type", kind, "one of " + ", ".join(repr(a) for a in allowed))
        if kind == "text" and not isinstance(part.get("text"), str):
            raise _invalid(f"{here}.text", part.get("text"), "a string")
        elif kind == "image_url":
            _image_info(here, part)
        elif kind == "input_audio":
            _audio_info(here, part)


def _image_info(where: str, part: dict[str, Any]) -> tuple[str, int | None]:
    """(mime type or URL, byte count or None) of an image part; 400 when malformed."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        raise _invalid(f"{where}.image_url", image, 'an object {"url": "data:image/png;base64,..."}')
    if url.startswith(("http://", "https://")):
        return url, None
    match = _DATA_URL_RE.fullmatch(url)
    if not match or not match.group(1).startswith("image/"):
        raise RequestProblem(
            f"Invalid image URL in '{where}.image_url.url': expected an http(s) URL or a data URL "
            "of the form data:image/<type>;base64,<data>.",
            param=f"{where}.image_url.url",
            code="invalid_image_url",
        )
    data = _b64(match.group(2), f"{where}.image_url.url", "image data")
    return match.group(1), len(data)


def _audio_info(where: str, part: dict[str, Any]) -> tuple[str, int]:
    """(format, byte count) of an input_audio part; 400 when malformed."""
    audio = part.get("input_audio")
    if not isinstance(audio, dict):
        raise _invalid(f"{where}.input_audio", audio, 'an object {"data": "<base64>", "format": "wav"}')
    if audio.get("format") not in ("wav", "mp3"):
        raise _invalid(f"{where}.input_audio.format", audio.get("format"), "'wav' or 'mp3'")
    data = _b64(audio.get("data"), f"{where}.input_audio.data", "audio data")
    return audio["format"], len(data)


def _b64(text: Any, param: str, what: str) -> bytes:
    if not isinstance(text, str) or not text:
        raise RequestProblem(f"Missing {what} in '{param}'.", param=param, code="invalid_value")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestProblem(
            f"Invalid base64 {what} in '{param}': the text is not valid base64.",
            param=param,
            code="invalid_base64",
        ) from None


def _check_stop(body: dict[str, Any]) -> None:
    if not _given(body, "stop"):
        return
    stop = body["stop"]
    if isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _invalid("stop", stop, "a string or an array of up to 4 strings")
    if len(stop) > 4:
        raise RequestProblem(
            f"Invalid 'stop': {len(stop)} sequences given, at most 4 are allowed.",
            param="stop",
            code="array_above_max_length",
        )


def _tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools") or []]


def _check_tools(body: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list) or not tools:
            raise _invalid("tools", tools, "a non-empty array of tools")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
                raise _invalid(
                    f"tools[{i}]",
                    tool,
                    '{"type": "function", "function": {"name": ..., "parameters": {...}}}',
                )
            name = function.get("name")
            if not isinstance(name, str) or not _TOOL_NAME_RE.fullmatch(name):
                raise _invalid(
                    f"tools[{i}].function.name",
                    name,
                    "a name of 1 to 64 characters from a-z, A-Z, 0-9, '_' and '-'",
                )
            if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
                raise _invalid(
                    f"tools[{i}].function.parameters", function["parameters"], "a JSON schema object"
                )
    choice = body.get("tool_choice")
    if choice is None:
        return
    if tools is None:
        raise RequestProblem(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
            code="invalid_value",
        )
    if choice in ("none", "auto", "required"):
        return
    name = None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name") if choice.get("type") == "function" else None
    if not isinstance(name, str):
        raise _invalid(
            "tool_choice",
            choice,
            '"none", "auto", "required" or {"type": "function", "function": {"name": ...}}',
        )
    if name not in _tool_names(body):
        raise RequestProblem(
            f"Invalid value for 'tool_choice': no function named {name!r} was specified in the "
            "'tools' parameter.",
            param="tool_choice",
            code="invalid_value",
        )


def _check_response_format(body: dict[str, Any]) -> None:
    if not _given(body, "response_format"):
        return
    fmt = body["response_format"]
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise _invalid(
            "response_format",
            fmt,
            '{"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema": {...}}',
        )
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise RequestProblem(
                "Missing required parameter: 'response_format.json_schema' (an object with "
                "'name' and 'schema').",
                param="response_format.json_schema",
                code="missing_required_parameter",
            )
    if fmt.get("schema") is not None and not isinstance(fmt["schema"], dict):
        raise _invalid("response_format.schema", fmt["schema"], "a JSON schema object")


def _check_audio_output(body: dict[str, Any]) -> None:
    modalities = body.get("modalities")
    if modalities is None:
        return
    if not isinstance(modalities, list) or any(m not in ("text", "audio") for m in modalities):
        raise _invalid("modalities", modalities, 'an array such as ["text", "audio"]')
    if "audio" not in modalities:
        return
    audio = body.get("audio")
    if not isinstance(audio, dict):
        raise RequestProblem(
            "Missing required parameter: 'audio'. Audio output (modalities with \"audio\") needs "
            '\'audio\': {"voice": "alloy", "format": "wav"}.',
            param="audio",
            code="missing_required_parameter",
        )
    if not isinstance(audio.get("voice"), str) or not audio["voice"]:
        raise RequestProblem(
            "Missing required parameter: 'audio.voice'.",
            param="audio.voice",
            code="missing_required_parameter",
        )
    fmt = audio.get("format")
    if fmt not in _AUDIO_FORMATS:
        raise _invalid("audio.format", fmt, "one of " + ", ".join(repr(f) for f in _AUDIO_FORMATS))
    if body.get("stream") is True and fmt != "pcm16":
        raise RequestProblem(
            f"Invalid value for 'audio.format': {fmt!r} cannot be streamed; with 'stream': true "
            "the only supported audio format is 'pcm16'.",
            param="audio.format",
            code="invalid_value",
        )
    if fmt not in ("wav", "pcm16"):
        raise RequestProblem(
            f"Unsupported value for 'audio.format': {fmt!r}. The stand-in server only produces "
            "'wav' and 'pcm16' audio; use one of those in tests.",
            param="audio.format",
            code="unsupported_value",
        )


def _check_documents(body: dict[str, Any]) -> None:
    if not _given(body, "documents"):
        return
    documents = body["documents"]
    if not isinstance(documents, list):
        raise _invalid("documents", documents, "an array of strings or document objects")
    for i, doc in enumerate(documents):
        if isinstance(doc, str):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), (dict, str)):
            raise _invalid(f"documents[{i}]", doc, 'a string or {"id": ..., "data": {"text": ...}}')
        if "id" in doc and not isinstance(doc["id"], str):
            raise _invalid(f"documents[{i}].id", doc["id"], "a string")


def _check_thinking(body: dict[str, Any]) -> None:
    if not _given(body, "thinking"):
        return
    thinking = body["thinking"]
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        raise _invalid(
            "thinking", thinking, '{"type": "enabled", "budget_tokens": 2048} or {"type": "disabled"}'
        )
    budget = thinking.get("budget_tokens")
    if thinking["type"] == "enabled" and budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
            raise RequestProblem(
                f"Invalid 'thinking.budget_tokens': {budget!r}. It must be an integer of at least 1024.",
                param="thinking.budget_tokens",
                code="invalid_value",
            )


# --------------------------------------------------------------------------- reading the request


def _last_user(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message
    return None


def _media_summary(message: dict[str, Any] | None) -> tuple[str, int, int]:
    """('1 image (image/png, 12 bytes) and ...', image count, prompt audio tokens)."""
    if message is None or not isinstance(message.get("content"), list):
        return "", 0, 0
    images: list[str] = []
    clips: list[str] = []
    audio_tokens = 0
    for part in message["content"]:
        if part.get("type") == "image_url":
            kind, size = _image_info("", part)
            images.append(kind if size is None else f"{kind}, {size} bytes")
        elif part.get("type") == "input_audio":
            fmt, size = _audio_info("", part)
            clips.append(f"{fmt}, {size} bytes")
            # About 10 tokens per second of 24 kHz 16-bit audio.
            audio_tokens += max(1, size // 4800)
    groups = []
    if images:
        groups.append(f"{len(images)} image{'s' if len(images) > 1 else ''} ({'; '.join(images)})")
    if clips:
        groups.append(f"{len(clips)} audio clip{'s' if len(clips) > 1 else ''} ({'; '.join(clips)})")
    return " and ".join(groups), len(images), audio_tokens


def _proper_phrases(text: str) -> list[str]:
    """Runs of capitalised words that do not start a sentence ("San Francisco", "Paris")."""
    phrases: list[str] = []
    current: list[str] = []
    previous_end = 0
    sentence_start = True
    for match in re.finditer(r"[^\W\d_][\w'’-]*", text):
        between = text[previous_end : match.start()]
        if re.search(r"[.!?:\n]", between):
            sentence_start = True
        word = match.group()
        capital = word[0].isupper() and word != "I" and not sentence_start
        if capital and current and between.strip() == "":
            current.append(word)
        else:
            if current:
                phrases.append(" ".join(current))
            current = [word] if capital else []
        sentence_start = False
        previous_end = match.end()
    if current:
        phrases.append(" ".join(current))
    return phrases


# --------------------------------------------------------------------------- schema values


def value_for_schema(schema: Any, hints: list[str] | None = None, *, suffix: str = "") -> Any:
    """A value that satisfies ``schema`` by type, the way the stand-in fills arguments.

    ``enum`` -> first value; ``const`` / ``default`` -> that value; string -> the
    next of ``hints`` (capitalised phrases from the user text) or ``"example"``
    (``format`` date / date-time / email / uri get a valid sample); integer -> 1,
    number -> 1.5 (moved into ``minimum``/``maximum``); boolean -> true; array ->
    one item; object -> its required properties plus optional ones that have an
    ``enum``, ``const`` or ``default``. ``$ref`` to ``#/$defs/...`` and
    ``anyOf``/``oneOf`` (first non-null branch) are followed. ``suffix`` is
    appended to free strings so that several choices differ.
    """
    hints = hints or []
    used = [0]  # how many hints the strings took so far

    def walk(node: Any, depth: int) -> Any:
        if not isinstance(node, dict) or depth > 12:
            return "example"
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = schema
            for key in ref[2:].split("/"):
                target = target.get(key, {}) if isinstance(target, dict) else {}
            return walk(target, depth + 1)
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return node["enum"][0]
        if "default" in node:
            return node["default"]
        for key in ("anyOf", "oneOf", "allOf"):
            branches = node.get(key)
            if isinstance(branches, list) and branches:
                usable = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
                return walk((usable or branches)[0], depth + 1)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in node else "array" if "items" in node else "string"
        if kind == "object":
            required = node.get("required") or []
            return {
                name: walk(sub, depth + 1)
                for name, sub in (node.get("properties") or {}).items()
                if name in required
                or (isinstance(sub, dict) and ("enum" in sub or "const" in sub or "default" in sub))
            }
        if kind == "array":
            item = walk(node.get("items", {}), depth + 1)
            count = node.get("minItems", 1)
            return [item] * (count if isinstance(count, int) and count > 0 else 1)
        if kind == "integer":
            return int(_bounded(node, 1))
        if kind == "number":
            return _bounded(node, 1.5)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string_for(node, hints, used, suffix)

    return walk(schema, 0)


def _bounded(schema: dict[str, Any], value: float) -> float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if isinstance(low, (int, float)) and value <= low:
        value = low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if isinstance(high, (int, float)) and value >= high:
        value = high - (1 if "exclusiveMaximum" in schema and "maximum" not in schema else 0)
    return value


def _string_for(schema: dict[str, Any], hints: list[str], state: list[int], suffix: str) -> str:
    samples = {
        "date": "2025-01-01",
        "date-time": "2025-01-01T00:00:00Z",
        "time": "12:00:00",
        "email": "user@example.com",
        "uri": "https://example.com",
        "url": "https://example.com",
        "uuid": "00000000-0000-4000-8000-000000000000",
    }
    if schema.get("format") in samples:
        return samples[schema["format"]]
    if hints:
        value = hints[state[0] % len(hints)]
        state[0] += 1
    else:
        value = "example"
    value += suffix
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and max_length >= 0:
        value = value[:max_length]
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(value) < min_length:
        value = value.ljust(min_length, "x")
    return value


# --------------------------------------------------------------------------- the reply


@dataclass
class ToolCall:
    """One function call of a reply; ``arguments`` is JSON text (or scripted text)."""

    id: str
    name: str
    arguments: str


@dataclass
class AudioReply:
    """Synthetic speech: ``pieces`` of 16-bit mono 24 kHz PCM, one per transcript token."""

    id: str
    format: str
    transcript: str
    expires_at: int
    pieces: list[bytes]

    @property
    def pcm(self) -> bytes:
        return b"".join(self.pieces)

    @property
    def tokens(self) -> int:
        # About 10 audio tokens per second.
        return max(1, math.ceil(len(self.pcm) / 2 / (SAMPLE_RATE / 10)))

    def data(self) -> str:
        """Base64 of a WAV file (format ``wav``) or of the raw samples (``pcm16``)."""
        raw = wav_bytes(self.pcm) if self.format == "wav" else self.pcm
        return base64.b64encode(raw).decode("ascii")


@dataclass
class ChoiceReply:
    """One choice: its content tokens (None when content is null) and everything else."""

    index: int
    tokens: list[str] | None
    finish_reason: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning: list[str] | None = None
    reasoning_tokens: int = 0
    audio: AudioReply | None = None
    citations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None

    @property
    def content(self) -> str | None:
        return None if self.tokens is None else "".join(self.tokens)

    @property
    def completion_tokens(self) -> int:
        count = len(self.tokens or ()) + self.reasoning_tokens
        if self.audio is not None:
            count += len(tokenize(self.audio.transcript)) + self.audio.tokens
        for call in self.tool_calls:
            count += 2 + _count(call.arguments.replace('"', " ").replace(",", " "))
        return count


@dataclass
class Completion:
    """A whole reply, ready to be shaped as a JSON response or as stream events."""

    id: str
    created: int
    model: str
    fingerprint: str
    choices: list[ChoiceReply]
    usage: dict[str, Any]
    include_usage: bool
    stream_usage: bool


def build(body: dict[str, Any], model: str, scenario: Scenario | None = None) -> Completion:
    """The reply to a validated request for ``model`` (see the module docstring)."""
    scenario = scenario or Scenario()
    # Content comes from the body without its transport fields, so that the streamed and the
    # whole reply to the same question agree; the id still tells the two requests apart.
    content_body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    key = hashlib.sha256((model + "\x1f" + dumps_sorted(content_body)).encode("utf-8")).hexdigest()
    request_key = hashlib.sha256((model + "\x1f" + dumps_sorted(body)).encode("utf-8")).hexdigest()
    messages: list[dict[str, Any]] = body["messages"]
    user = _last_user(messages)
    user_text = _text_of(user.get("content")) if user else ""
    media, image_count, prompt_audio = _media_summary(user)
    choices = [
        _build_choice(body, model, scenario, key, i, user_text, media)
        for i in range(body.get("n") or 1)
    ]
    prompt = _prompt_tokens(body) + 85 * image_count + prompt_audio
    completion = sum(c.completion_tokens for c in choices)
    usage = {
        "completion_tokens": completion,
        "completion_tokens_details": {
            "accepted_prediction_tokens": 0,
            "audio_tokens": sum(c.audio.tokens for c in choices if c.audio),
            "reasoning_tokens": sum(c.reasoning_tokens for c in choices),
            "rejected_prediction_tokens": 0,
        },
        "prompt_tokens": prompt,
        "prompt_tokens_details": {"audio_tokens": prompt_audio, "cached_tokens": 0},
        "total_tokens": prompt + completion,
    }
    options = body.get("stream_options") or {}
    return Completion(
        id="chatcmpl-" + _ident(request_key, "id", length=29),
        created=CREATED,
        model=scenario.model or model,
        fingerprint="fp_" + hashlib.sha256(model.encode("utf-8")).hexdigest()[:10],
        choices=choices,
        usage=usage,
        include_usage=scenario.usage is not False,
        stream_usage=scenario.usage if scenario.usage is not None else options.get("include_usage") is True,
    )


def dumps_sorted(obj: Any) -> str:
    """Canonical JSON of a request body (the input of every id and variation)."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _build_choice(
    body: dict[str, Any],
    model: str,
    scenario: Scenario,
    key: str,
    index: int,
    user_text: str,
    media: str,
) -> ChoiceReply:
    messages = body["messages"]
    finish = "stop"
    calls: list[ToolCall] = []
    citations: list[dict[str, Any]] | None = None
    text: str | None = None
    if scenario.tool_calls:
        calls = [
            ToolCall(
                id=c.get("id") or "call_" + _ident(key, "call", index, k),
                name=c["name"],
                arguments=c["arguments"] if isinstance(c["arguments"], str) else dumps(c["arguments"]),
            )
            for k, c in enumerate(scenario.tool_calls)
        ]
    elif scenario.text is not None or scenario.tokens is not None:
        text = _scripted_text(scenario)
    elif messages[-1].get("role") == "tool":
        text = _tool_results_text(messages)
    else:
        calls = _auto_tool_calls(body, key, index, user_text)
        if not calls:
            text, citations = _generated_text(body, model, key, index, user_text, media)

    reasoning, reasoning_count = _reasoning(body, model, key, user_text)
    if calls:
        choice = ChoiceReply(index, None, "tool_calls", tool_calls=calls)
    else:
        assert text is not None
        if scenario.split_utf8 and text.isascii():
            text += " (café ☕)"
        text, stopped = _apply_stop(text, body.get("stop"))
        tokens = tokenize(text)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit and len(tokens) > limit:
            tokens = tokens[:limit]
            finish = "length"
        content = "".join(tokens)
        if citations:
            citations = [c for c in citations if c["end"] <= len(content)] or None
        choice = ChoiceReply(index, tokens, finish, citations=citations)
        if "audio" in (body.get("modalities") or []):
            audio = body["audio"]
            choice.tokens = None
            choice.audio = AudioReply(
                id="audio_" + _ident(key, "audio", index),
                format=audio["format"],
                transcript=content,
                expires_at=CREATED + 3600,
                pieces=synth_speech(tokens, audio["voice"]),
            )
        elif body.get("logprobs") is True:
            choice.logprobs = [
                _token_logprob(key, index, position, token, body.get("top_logprobs") or 0)
                for position, token in enumerate(tokens)
            ]
    choice.reasoning = reasoning
    choice.reasoning_tokens = reasoning_count
    if scenario.finish_reason is not None:
        choice.finish_reason = scenario.finish_reason
    return choice


def _scripted_text(scenario: Scenario) -> str:
    if scenario.tokens is None:
        return scenario.text or ""
    base = tokenize(scenario.text) if scenario.text else None
    words = []
    for i in range(scenario.tokens):
        if base:
            word = base[i % len(base)]
            if i >= len(base) and not word[:1].isspace():
                word = " " + word
        else:
            position = i % len(_FILLER)
            word = _FILLER[position] + ("." if position == len(_FILLER) - 1 else "")
            if position == 0:
                word = word.capitalize()
            word = word if i == 0 else " " + word
        words.append(word)
    return "".join(words)


def _tool_results_text(messages: list[dict[str, Any]]) -> str:
    results = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.append(message)
    results.reverse()
    names: dict[str, str] = {}
    for message in messages:
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                names[call["id"]] = call["function"]["name"]
    lines = []
    for message in results:
        name = message.get("name") or names.get(message.get("tool_call_id", ""), "the tool")
        lines.append(f"Based on {name}: {_one_line(_text_of(message.get('content')), 300)}")
    return "\n".join(lines)


def _auto_tool_calls(body: dict[str, Any], key: str, index: int, user_text: str) -> list[ToolCall]:
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or "auto"
    if not tools or choice == "none" or body["messages"][-1].get("role") != "user":
        return []
    by_name = {t["function"]["name"]: t["function"] for t in tools}
    if isinstance(choice, dict):
        chosen = [by_name[choice["function"]["name"]]]
    else:
        positions = []
        for name, function in by_name.items():
            found = re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", user_text, re.IGNORECASE)
            if found:
                positions.append((found.start(), function))
        chosen = [function for _, function in sorted(positions, key=lambda p: p[0])]
        if not chosen and choice == "required":
            chosen = [tools[0]["function"]]
    hints = _proper_phrases(user_text)
    suffix = f" ({index + 1})" if index else ""
    return [
        ToolCall(
            id="call_" + _ident(key, "call", index, k),
            name=function["name"],
            arguments=dumps(
                value_for_schema(function.get("parameters") or {"type": "object"}, hints, suffix=suffix)
            ),
        )
        for k, function in enumerate(chosen)
    ]


def _opening(body: dict[str, Any], model: str, key: str, index: int) -> str:
    temperature = body.get("temperature")
    variant = 0
    if temperature is not None and temperature > 0:
        seed = body.get("random_seed", body.get("seed"))
        variant = _hash_int("seed", seed, index) if seed is not None else _hash_int(key, "variant", index)
    return _OPENINGS[variant % len(_OPENINGS)].format(model=model)


def _generated_text(
    body: dict[str, Any], model: str, key: str, index: int, user_text: str, media: str
) -> tuple[str, list[dict[str, Any]] | None]:
    snippet = _one_line(user_text, 200)
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_object" else None
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
    if schema is not None:
        suffix = f" ({index + 1})" if index else ""
        return dumps(value_for_schema(schema, _proper_phrases(user_text), suffix=suffix)), None
    if fmt.get("type") == "json_object":
        value: dict[str, Any] = {"model": model, "echo": snippet}
        if index:
            value["choice"] = index + 1
        return dumps(value), None
    parts = [_opening(body, model, key, index)]
    citations = None
    documents = body.get("documents")
    if documents:
        quote, doc_id = _document_quote(documents[0], 0)
        head = " ".join(parts) + " The documents say: “"
        start = len(head)
        citations = [{"start": start, "end": start + len(quote), "text": quote, "document_ids": [doc_id]}]
        parts.append(f"The documents say: “{quote}”")
    elif snippet:
        parts.append(f"You said: “{snippet}”")
    if media:
        parts.append(f"I received {media}.")
    if not snippet and not media and not documents:
        parts.append("There was no user message to answer.")
    text = " ".join(parts)
    if index:
        text += f" (choice {index + 1})"
    return text, citations


def _document_quote(doc: Any, position: int) -> tuple[str, str]:
    doc_id = f"doc_{position}"
    if isinstance(doc, dict):
        doc_id = doc.get("id") or doc_id
        data = doc.get("data")
        if isinstance(data, dict):
            text = next(
                (data[k] for k in ("text", "snippet", "content", "title") if isinstance(data.get(k), str)),
                None,
            )
            if text is None:
                text = next((v for v in data.values() if isinstance(v, str)), dumps(data))
        else:
            text = str(data)
    else:
        text = doc
    return _one_line(text, 200), doc_id


def _apply_stop(text: str, stop: Any) -> tuple[str, bool]:
    sequences = [stop] if isinstance(stop, str) else stop or []
    cuts = [text.find(s) for s in sequences if s and s in text]
    if not cuts:
        return text, False
    return text[: min(cuts)], True


def _reasoning(body: dict[str, Any], model: str, key: str, user_text: str) -> tuple[list[str] | None, int]:
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        words = _count(user_text)
        thought = (
            f"The user wrote {words} word{'' if words == 1 else 's'}. A short, friendly answer "
            f"from the stand-in {model} will do."
        )
        tokens = tokenize(thought)
        return tokens, len(tokens)
    if model.lower().startswith(_REASONING_PREFIXES):
        base = 8 + _hash_int(key, "reasoning") % 24
        factor = _EFFORT_FACTOR.get(body.get("reasoning_effort") or "medium", 2)
        return None, max(1, int(base * factor))
    return None, 0


def _prompt_tokens(body: dict[str, Any]) -> int:
    count = 3
    for message in body["messages"]:
        count += 3 + _count(_text_of(message.get("content")))
        if message.get("name"):
            count += 1
        if message.get("role") == "assistant":
            for call in message.get("tool_calls") or []:
                count += 3 + _count(dumps(call["function"]))
    if body.get("tools"):
        count += _count(dumps(body["tools"]).replace('"', " "))
    for doc in body.get("documents") or []:
        count += 3 + _count(doc if isinstance(doc, str) else dumps(doc))
    return count


# --------------------------------------------------------------------------- logprobs


def _token_logprob(key: str, index: int, position: int, token: str, top: int) -> dict[str, Any]:
    """Deterministic logprobs for one token; the chosen token is the most likely one."""
    seed = _hash_int(key, "logprob", index, position)
    chosen = -(1 + seed % 15000) / 10000  # in [-1.5, -0.0001]
    entry: dict[str, Any] = {"token": token, "logprob": chosen, "bytes": list(token.encode("utf-8"))}
    alternatives = [{"token": token, "logprob": chosen, "bytes": entry["bytes"]}] if top else []
    prefix = token[: len(token) - len(token.lstrip())]
    start = seed % len(_ALTERNATIVES)
    words = [
        prefix + w
        for w in _ALTERNATIVES[start:] + _ALTERNATIVES[:start]
        if prefix + w != token
    ]
    values = sorted(
        (
            round(chosen - (3 + chosen) * (0.05 + 0.95 * (_hash_int(seed, j) % 10000) / 10000), 4)
            for j in range(max(0, top - 1))
        ),
        reverse=True,
    )
    for word, value in zip(words, values):
        alternatives.append({"token": word, "logprob": value, "bytes": list(word.encode("utf-8"))})
    entry["top_logprobs"] = alternatives
    return entry


# --------------------------------------------------------------------------- audio


_SEGMENT = 1440  # 0.06 s at 24 kHz per transcript word
_PERIODS = (40, 45, 48, 60, 72, 80, 90, 96)  # each divides the segment: phase-continuous tones
_MIN_SAMPLES = SAMPLE_RATE // 2


@functools.lru_cache(maxsize=None)
def _tone(period: int) -> bytes:
    one = array("h", (round(8000 * math.sin(2 * math.pi * k / period)) for k in range(period)))
    if sys.byteorder == "big":
        one.byteswap()
    return one.tobytes() * (_SEGMENT // period)


def synth_speech(tokens: list[str], voice: str) -> list[bytes]:
    """One tone per word (pitch from the voice and the word), padded to 0.5 s with silence."""
    pieces = [_tone(_PERIODS[_hash_int(voice, t.strip()) % len(_PERIODS)]) for t in tokens]
    samples = sum(len(p) for p in pieces) // 2
    if samples < _MIN_SAMPLES:
        pieces.append(b"\x00\x00" * (_MIN_SAMPLES - samples))
    return pieces


def wav_bytes(pcm: bytes) -> bytes:
    """A WAV file around 16-bit mono 24 kHz little-endian samples."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm)
    return buffer.getvalue()


# --------------------------------------------------------------------------- wire shapes


def completion_json(c: Completion) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` response."""
    choices = []
    for choice in c.choices:
        message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": None}
        if choice.reasoning is not None:
            message["reasoning_content"] = "".join(choice.reasoning)
        if choice.tool_calls:
            message["tool_calls"] = [
                {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
                for t in choice.tool_calls
            ]
        if choice.audio is not None:
            message["audio"] = {
                "id": choice.audio.id,
                "data": choice.audio.data(),
                "expires_at": choice.audio.expires_at,
                "transcript": choice.audio.transcript,
            }
        if choice.citations:
            message["citations"] = choice.citations
        choices.append(
            {
                "index": choice.index,
                "message": message,
                "logprobs": (
                    None if choice.logprobs is None else {"content": choice.logprobs, "refusal": None}
                ),
                "finish_reason": choice.finish_reason,
            }
        )
    response: dict[str, Any] = {
        "id": c.id,
        "object": "chat.completion",
        "created": c.created,
        "model": c.model,
        "system_fingerprint": c.fingerprint,
        "choices": choices,
    }
    if c.include_usage:
        response["usage"] = c.usage
    return response


@dataclass
class StreamEvent:
    """One SSE event: ``kind`` is prelude, role, payload, finish or usage."""

    kind: str
    data: dict[str, Any]


_FILTER_OK = {"filtered": False, "severity": "safe"}


def stream_events(c: Completion) -> list[StreamEvent]:
    """The ``chat.completion.chunk`` events of a streamed reply, without ``[DONE]``.

    Order: a ``choices: []`` chunk with ``prompt_filter_results``; per choice a
    ``role`` delta, reasoning pieces, then content tokens (with their logprobs),
    tool-call fragments or audio pieces, then a chunk with ``finish_reason``
    (and ``citations``); choices interleave round-robin; last, when usage is
    asked for, a ``choices: []`` chunk with ``usage``.
    """

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": c.id,
            "object": "chat.completion.chunk",
            "created": c.created,
            "model": c.model,
            "system_fingerprint": c.fingerprint,
            "choices": choices,
        }
        if c.stream_usage:
            data["usage"] = None
        data.update(extra)
        return data

    def delta(
        index: int, body: dict[str, Any], logprobs: Any = None, finish: str | None = None
    ) -> dict[str, Any]:
        return {"index": index, "delta": body, "logprobs": logprobs, "finish_reason": finish}

    prelude = {
        "id": c.id,
        "object": "chat.completion.chunk",
        "created": c.created,
        "model": c.model,
        "choices": [],
        "prompt_filter_results": [
            {
                "prompt_index": 0,
                "content_filter_results": {
                    "hate": _FILTER_OK,
                    "jailbreak": {"filtered": False, "detected": False},
                    "self_harm": _FILTER_OK,
                    "sexual": _FILTER_OK,
                    "violence": _FILTER_OK,
                },
            }
        ],
    }
    per_choice: list[list[StreamEvent]] = []
    for choice in c.choices:
        i = choice.index
        opening = {"role": "assistant", "content": "" if choice.tokens is not None else None, "refusal": None}
        events = [StreamEvent("role", chunk([delta(i, opening)]))]
        for piece in choice.reasoning or ():
            events.append(StreamEvent("payload", chunk([delta(i, {"reasoning_content": piece})])))
        for position, token in enumerate(choice.tokens or ()):
            logprobs = None
            if choice.logprobs is not None:
                logprobs = {"content": [choice.logprobs[position]], "refusal": None}
            events.append(StreamEvent("payload", chunk([delta(i, {"content": token}, logprobs)])))
        for k, call in enumerate(choice.tool_calls):
            function = {"name": call.name, "arguments": ""}
            first = {"index": k, "id": call.id, "type": "function", "function": function}
            events.append(StreamEvent("payload", chunk([delta(i, {"tool_calls": [first]})])))
            for piece in _argument_pieces(call.arguments):
                fragment = {"index": k, "function": {"arguments": piece}}
                events.append(StreamEvent("payload", chunk([delta(i, {"tool_calls": [fragment]})])))
        if choice.audio is not None:
            for piece in _audio_deltas(choice.audio):
                events.append(StreamEvent("payload", chunk([delta(i, {"audio": piece})])))
        final: dict[str, Any] = {"citations": choice.citations} if choice.citations else {}
        events.append(StreamEvent("finish", chunk([delta(i, final, None, choice.finish_reason)])))
        per_choice.append(events)

    ordered = [StreamEvent("prelude", prelude)]
    for step in range(max(len(e) for e in per_choice)):
        ordered.extend(events[step] for events in per_choice if step < len(events))
    if c.stream_usage:
        ordered.append(StreamEvent("usage", chunk([], usage=c.usage)))
    return ordered


def _argument_pieces(arguments: str) -> list[str]:
    """The arguments JSON in several pieces, as real servers stream it (>= 3 when longer than 6)."""
    if len(arguments) <= 6:
        return [arguments] if arguments else []
    count = max(3, math.ceil(len(arguments) / 8))
    size = math.ceil(len(arguments) / count)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def _audio_deltas(audio: AudioReply) -> list[dict[str, Any]]:
    words = tokenize(audio.transcript)
    deltas: list[dict[str, Any]] = [{"id": audio.id}]
    for position, piece in enumerate(audio.pieces):
        if position < len(words):
            deltas.append({"transcript": words[position]})
        deltas.append({"data": base64.b64encode(piece).decode("ascii")})
    deltas.append({"expires_at": audio.expires_at})
    return deltas
