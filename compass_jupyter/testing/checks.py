"""Request checks of the stand-in server: refuse a body the way the real gateway would.

:func:`validate` raises :class:`RequestProblem` (a status and an OpenAI-style
error body) for the first problem it finds, always in the same order: the
messages, then the optional fields one by one (see ``_FIELD_RULES``). The
model is checked by the server, which knows its list. :func:`image_part_info`
and :func:`audio_part_info` also serve the reply, which reports what media it
received.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from .common import dumps, error_body

__all__ = ["RequestProblem", "audio_part_info", "image_part_info", "validate"]

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DATA_URL_RE = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)
_AUDIO_FORMATS = ("wav", "mp3", "flac", "opus", "pcm16")


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
        return error_body(self.message, param=self.param, code=self.code, error_type=self.error_type)


def _invalid(param: str, value: Any, expected: str) -> RequestProblem:
    shown = dumps(value) if not isinstance(value, str) else repr(value)
    if len(shown) > 80:
        shown = shown[:80] + "…"
    return RequestProblem(
        f"Invalid value for '{param}': {shown}. Expected {expected}.",
        param=param,
        code="invalid_value",
    )


def _one_of(allowed: Iterable[Any]) -> str:
    return "one of " + ", ".join(repr(a) for a in allowed)


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
        raise RequestProblem("The request body must be a JSON object with 'model' and 'messages'.", param=None)
    _check_messages(body.get("messages"))
    for name, check in _FIELD_RULES:
        # Real servers treat an explicit null like an absent optional field.
        if body.get(name) is not None:
            check(name, body[name], body)


# --------------------------------------------------------------------------- messages


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
            raise _invalid(f"{where}.role", role, _one_of(_ROLES))
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
                    f"Missing parameter '{where}.tool_call_id': a tool message must name the tool call it answers.",
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
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: " + ", ".join(pending),
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
                'a tool call {"id": ..., "type": "function", "function": {"name": ..., "arguments": "<JSON text>"}}',
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
            raise _invalid(f"{here}.type", kind, _one_of(allowed))
        if kind == "text" and not isinstance(part.get("text"), str):
            raise _invalid(f"{here}.text", part.get("text"), "a string")
        elif kind == "image_url":
            image_part_info(here, part)
        elif kind == "input_audio":
            audio_part_info(here, part)


def image_part_info(where: str, part: dict[str, Any]) -> tuple[str, int | None]:
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


def audio_part_info(where: str, part: dict[str, Any]) -> tuple[str, int]:
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


# --------------------------------------------------------------------------- optional fields

# A rule gets the field's name, its (non-null) value and the whole body, for the
# rules that depend on another field.
_Rule = Callable[[str, Any, dict[str, Any]], None]


def _number(low: float, high: float) -> _Rule:
    def check(name: str, value: Any, body: dict[str, Any]) -> None:
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

    return check


def _integer(low: int, high: int | None = None) -> _Rule:
    def check(name: str, value: Any, body: dict[str, Any]) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(name, value, "an integer")
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise RequestProblem(
                f"Invalid '{name}': {value}. It must be an integer {bound}.",
                param=name,
                code="integer_out_of_range",
            )

    return check


def _choice(*allowed: str) -> _Rule:
    def check(name: str, value: Any, body: dict[str, Any]) -> None:
        if value not in allowed:
            raise _invalid(name, value, _one_of(allowed))

    return check


def _flag(name: str, value: Any, body: dict[str, Any]) -> None:
    if not isinstance(value, bool):
        raise _invalid(name, value, "true or false")


def _check_top_logprobs_needs_logprobs(name: str, value: Any, body: dict[str, Any]) -> None:
    if body.get("logprobs") is not True:
        raise RequestProblem(
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )


def _check_stream_options(name: str, options: Any, body: dict[str, Any]) -> None:
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


def _check_stop(name: str, stop: Any, body: dict[str, Any]) -> None:
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


def _check_tools(name: str, tools: Any, body: dict[str, Any]) -> None:
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
        tool_name = function.get("name")
        if not isinstance(tool_name, str) or not _TOOL_NAME_RE.fullmatch(tool_name):
            raise _invalid(
                f"tools[{i}].function.name",
                tool_name,
                "a name of 1 to 64 characters from a-z, A-Z, 0-9, '_' and '-'",
            )
        if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
            raise _invalid(f"tools[{i}].function.parameters", function["parameters"], "a JSON schema object")


def _check_tool_choice(name: str, choice: Any, body: dict[str, Any]) -> None:
    if body.get("tools") is None:
        raise RequestProblem(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
            code="invalid_value",
        )
    if choice in ("none", "auto", "required"):
        return
    chosen = None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        chosen = choice["function"].get("name") if choice.get("type") == "function" else None
    if not isinstance(chosen, str):
        raise _invalid(
            "tool_choice",
            choice,
            '"none", "auto", "required" or {"type": "function", "function": {"name": ...}}',
        )
    if chosen not in [t["function"]["name"] for t in body["tools"]]:
        raise RequestProblem(
            f"Invalid value for 'tool_choice': no function named {chosen!r} was specified in the 'tools' parameter.",
            param="tool_choice",
            code="invalid_value",
        )


def _check_response_format(name: str, fmt: Any, body: dict[str, Any]) -> None:
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
                "Missing required parameter: 'response_format.json_schema' (an object with 'name' and 'schema').",
                param="response_format.json_schema",
                code="missing_required_parameter",
            )
    if fmt.get("schema") is not None and not isinstance(fmt["schema"], dict):
        raise _invalid("response_format.schema", fmt["schema"], "a JSON schema object")


def _check_audio_output(name: str, modalities: Any, body: dict[str, Any]) -> None:
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
        raise _invalid("audio.format", fmt, _one_of(_AUDIO_FORMATS))
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


def _check_documents(name: str, documents: Any, body: dict[str, Any]) -> None:
    if not isinstance(documents, list):
        raise _invalid("documents", documents, "an array of strings or document objects")
    for i, doc in enumerate(documents):
        if isinstance(doc, str):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), (dict, str)):
            raise _invalid(f"documents[{i}]", doc, 'a string or {"id": ..., "data": {"text": ...}}')
        if "id" in doc and not isinstance(doc["id"], str):
            raise _invalid(f"documents[{i}].id", doc["id"], "a string")


def _check_thinking(name: str, thinking: Any, body: dict[str, Any]) -> None:
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        raise _invalid("thinking", thinking, '{"type": "enabled", "budget_tokens": 2048} or {"type": "disabled"}')
    budget = thinking.get("budget_tokens")
    if thinking["type"] == "enabled" and budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
            raise RequestProblem(
                f"Invalid 'thinking.budget_tokens': {budget!r}. It must be an integer of at least 1024.",
                param="thinking.budget_tokens",
                code="invalid_value",
            )


# The optional fields in the order they are checked (a body with several problems always
# reports the same one first); each rule runs only when its field is given and not null.
_FIELD_RULES: tuple[tuple[str, _Rule], ...] = (
    ("temperature", _number(0, 2)),
    ("top_p", _number(0, 1)),
    ("min_p", _number(0, 1)),
    ("presence_penalty", _number(-2, 2)),
    ("frequency_penalty", _number(-2, 2)),
    ("n", _integer(1, 128)),
    ("max_tokens", _integer(1)),
    ("max_completion_tokens", _integer(1)),
    ("top_k", _integer(0)),
    ("random_seed", _integer(-(2**63), 2**64)),
    ("seed", _integer(-(2**63), 2**64)),
    ("top_logprobs", _integer(0, 20)),
    ("reasoning_effort", _choice("none", "minimal", "low", "medium", "high")),
    ("verbosity", _choice("low", "medium", "high")),
    ("stream", _flag),
    ("logprobs", _flag),
    ("top_logprobs", _check_top_logprobs_needs_logprobs),
    ("stream_options", _check_stream_options),
    ("stop", _check_stop),
    ("tools", _check_tools),
    ("tool_choice", _check_tool_choice),
    ("response_format", _check_response_format),
    ("modalities", _check_audio_output),
    ("documents", _check_documents),
    ("thinking", _check_thinking),
)
