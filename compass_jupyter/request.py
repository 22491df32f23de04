"""Options -> a validated chat-completions request body, before anything is sent.

Every rule here is one the Compass reference states (a range, a type, a shape, a
field that needs another). The simple ones (a number's range, a choice's words)
are read from the fields table (:mod:`compass_jupyter.fields`); this module
holds the rules of the fields whose shape is richer. A broken rule raises :class:`ValidationError` naming the
field, what it got, what is allowed and how to fix it, so a typo costs no request.
Every value must also be strict JSON (no NaN, no sets, not nested over 64 deep):
:func:`compass_jupyter.jsonsafe.check_json` runs first.
Fields the reference reserves for some models are the catalog's business: they
become warnings (or errors with ``strict=True``), never silent changes.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Callable, Mapping, NoReturn

from . import catalog
from ._exceptions import ValidationError
from .fields import FIELDS
from .jsonsafe import check_json

__all__ = ["MESSAGE_ROLES", "build_body", "validate_fields", "validate_messages"]

MESSAGE_ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool", "developer")
INPUT_AUDIO_FORMATS: tuple[str, ...] = ("wav", "mp3")
TOOL_CHOICES: tuple[str, ...] = ("none", "auto", "required")
CITATION_MODES: tuple[str, ...] = ("FAST", "ACCURATE", "OFF")
RESPONSE_FORMATS: tuple[str, ...] = ("text", "json_object", "json_schema")
MAX_STOP_SEQUENCES = 4
MIN_THINKING_BUDGET = 1024
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOKEN_ID = re.compile(r"^[0-9]+$")

# Set through their own arguments of build_body, never through ``fields``.
_OWN_ARGUMENTS = {
    "model": "the model= argument (-m/--model)",
    "messages": "the messages= argument",
    "stream": "the stream= argument (--stream/--no-stream)",
}


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a value nested thousands deep (check_json normally refuses it first)
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(message: str) -> NoReturn:
    raise ValidationError(message)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_number(name: str, value: Any) -> None:
    row = FIELDS[name]
    low, high, example, allowed = row.low, row.high, row.example, row.range_text
    if not _is_number(value) or not math.isfinite(value):
        _fail(f"{name} must be a number {allowed} (got {_show(value)}). Use e.g. {name}={example:g}.")
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(f"{name} must be {allowed} (got {_show(value)}). Use e.g. {name}={example:g}.")


def _check_integer(name: str, value: Any) -> None:
    row = FIELDS[name]
    low, high, example, allowed = row.low, row.high, row.example, row.range_text
    if not _is_int(value):
        _fail(f"{name} must be a whole number {allowed} (got {_show(value)}). Use e.g. {name}={example}.")
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(f"{name} must be a whole number {allowed} (got {value}). Use e.g. {name}={example}.")


def _check_boolean(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _fail(f"{name} must be true or false (got {_show(value)}). Use e.g. {name}=True.")


def _check_string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        _fail(f"{name} must be a string (got {_show(value)}). Use e.g. {name}={FIELDS[name].example!r}.")


def _check_choice(name: str, value: Any) -> None:
    row = FIELDS[name]
    if value not in row.choices:
        _fail(f"{name} must be {row.range_text} (got {_show(value)}). Use e.g. {name}={row.example!r}.")


def _check_logit_bias(name: str, value: Any) -> None:
    example = "Use e.g. logit_bias={'50256': -100} to ban token 50256."
    if not isinstance(value, Mapping):
        _fail(f"logit_bias must map token ids to a bias between -100 and 100 (got {_show(value)}). {example}")
    for token, bias in value.items():
        if not ((_is_int(token) and token >= 0) or (isinstance(token, str) and _TOKEN_ID.match(token))):
            _fail(
                f"logit_bias keys must be token ids, whole numbers from the model's tokenizer "
                f"(got key {_show(token)}). {example}"
            )
        if not _is_number(bias) or not math.isfinite(bias) or not -100 <= bias <= 100:
            _fail(
                f"logit_bias values must be numbers between -100 and 100 (got {_show(bias)} for token {token}). {example}"
            )


def _check_stop(name: str, value: Any) -> None:
    example = "Use e.g. stop=['\\n\\n', 'END'] (--stop, repeatable)."
    if isinstance(value, str):
        if not value:
            _fail(f"stop cannot be an empty string. {example}")
        return
    if not isinstance(value, (list, tuple)) or not value:
        _fail(f"stop must be a string or a list of 1 to {MAX_STOP_SEQUENCES} strings (got {_show(value)}). {example}")
    if len(value) > MAX_STOP_SEQUENCES:
        _fail(
            f"stop takes at most {MAX_STOP_SEQUENCES} sequences (got {len(value)}: {_show(list(value))}). "
            f"Keep the {MAX_STOP_SEQUENCES} that matter most."
        )
    for item in value:
        if not isinstance(item, str) or not item:
            _fail(f"stop sequences must be non-empty strings (got {_show(item)} in {_show(list(value))}). {example}")


def _tool_names(tools: Any) -> list[str]:
    if not isinstance(tools, (list, tuple)):
        return []
    return [
        t["function"]["name"]
        for t in tools
        if isinstance(t, Mapping)
        and isinstance(t.get("function"), Mapping)
        and isinstance(t["function"].get("name"), str)
    ]


def _check_tools(name: str, value: Any) -> None:
    example = (
        "Each tool looks like {'type': 'function', 'function': {'name': 'get_weather', "
        "'description': '...', 'parameters': {'type': 'object', 'properties': {...}}}}."
    )
    if not isinstance(value, (list, tuple)):
        _fail(f"tools must be a list of tools (got {_show(value)}). {example}")
    if not value:
        _fail("tools is an empty list. Leave tools out to send none, or list at least one tool.")
    seen: set[str] = set()
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, Mapping):
            _fail(f"{where} must be a tool object (got {_show(tool)}). {example}")
        if tool.get("type") != "function":
            _fail(
                f"{where}.type must be 'function', the only tool type Compass supports "
                f"(got {_show(tool.get('type'))}). {example}"
            )
        function = tool.get("function")
        if not isinstance(function, Mapping):
            _fail(f"{where}.function must be an object with a name (got {_show(function)}). {example}")
        fname = function.get("name")
        if not isinstance(fname, str) or not _TOOL_NAME.match(fname):
            _fail(
                f"{where}.function.name must be 1 to 64 characters of a-z, A-Z, 0-9, underscores and dashes "
                f"(got {_show(fname)}). Rename it, e.g. 'get_weather'."
            )
        if fname in seen:
            _fail(f"tools has two functions named {fname!r}. Give each tool its own name.")
        seen.add(fname)
        if (
            "description" in function
            and function["description"] is not None
            and not isinstance(function["description"], str)
        ):
            _fail(f"{where}.function.description must be a string (got {_show(function['description'])}).")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            _fail(
                f"{where}.function.parameters must be a JSON Schema object (got {_show(parameters)}). "
                "Use e.g. {'type': 'object', 'properties': {'city': {'type': 'string'}}}, or leave it out for no parameters."
            )
        strict = function.get("strict")
        if strict is not None and not isinstance(strict, bool):
            _fail(f"{where}.function.strict must be true, false or null (got {_show(strict)}).")


def _check_tool_choice(name: str, value: Any, fields: Mapping[str, Any]) -> None:
    names = _tool_names(fields.get("tools"))
    forced = "{'type': 'function', 'function': {'name': 'NAME'}}"
    if isinstance(value, str):
        if value not in TOOL_CHOICES:
            _fail(
                f"tool_choice must be none, auto, required or {forced} (got {_show(value)}). "
                f"To force one tool use tool_choice={forced} (--tool-choice NAME)."
            )
        if value != "none" and not fields.get("tools"):
            _fail(
                f"tool_choice={value!r} needs tools, and none were given. "
                "Pass tools=[...] (--tools f,g) or drop tool_choice."
            )
        return
    if (
        not isinstance(value, Mapping)
        or value.get("type") != "function"
        or not isinstance(value.get("function"), Mapping)
    ):
        _fail(f"tool_choice must be none, auto, required or {forced} (got {_show(value)}).")
    chosen = value["function"].get("name")
    if not fields.get("tools"):
        _fail(
            f"tool_choice names the tool {chosen!r}, but no tools were given. "
            "Pass tools=[...] (--tools f,g) or drop tool_choice."
        )
    if chosen not in names:
        _fail(
            f"tool_choice names the tool {_show(chosen)}, which is not among the tools "
            f"({', '.join(names)}). Use one of those names."
        )


def _check_modalities(name: str, value: Any) -> None:
    if not isinstance(value, (list, tuple)) or not value or any(m not in ("text", "audio") for m in value):
        _fail(
            f"modalities must be a list of 'text' and/or 'audio' (got {_show(value)}). "
            "Use e.g. modalities=['text', 'audio'] with audio={'voice': 'alloy', 'format': 'wav'}."
        )


def _check_audio(name: str, value: Any) -> None:
    example = "Use e.g. audio={'voice': 'alloy', 'format': 'wav'} (--voice, --audio-format)."
    if not isinstance(value, Mapping):
        _fail(f"audio must be an object with voice and format (got {_show(value)}). {example}")
    voice, fmt = value.get("voice"), value.get("format")
    if voice not in catalog.VOICES:
        _fail(f"audio.voice must be one of {', '.join(catalog.VOICES)} (got {_show(voice)}). {example}")
    if fmt not in catalog.AUDIO_FORMATS:
        _fail(f"audio.format must be one of {', '.join(catalog.AUDIO_FORMATS)} (got {_show(fmt)}). {example}")


def _check_thinking(name: str, value: Any, fields: Mapping[str, Any]) -> None:
    example = f"Use e.g. thinking={{'type': 'enabled', 'budget_tokens': 2048}} (at least {MIN_THINKING_BUDGET})."
    if not isinstance(value, Mapping):
        _fail(f"thinking must be an object (got {_show(value)}). {example}")
    kind = value.get("type")
    if kind not in ("enabled", "disabled"):
        _fail(f"thinking.type must be 'enabled' or 'disabled' (got {_show(kind)}). {example}")
    budget = value.get("budget_tokens")
    if budget is None:
        # qwen3-14b takes its budget as the separate thinking_budget field.
        if kind == "enabled" and fields.get("thinking_budget") is None:
            _fail(
                "thinking is enabled but has no budget_tokens; the reference requires a budget "
                f"of at least {MIN_THINKING_BUDGET} tokens. {example}"
            )
        return
    if not _is_int(budget) or budget < MIN_THINKING_BUDGET:
        _fail(
            f"thinking.budget_tokens must be a whole number of at least {MIN_THINKING_BUDGET} "
            f"(got {_show(budget)}). {example}"
        )


def _check_citation_options(name: str, value: Any) -> None:
    example = "Use e.g. citation_options={'mode': 'ACCURATE'}."
    if not isinstance(value, Mapping):
        _fail(f"citation_options must be an object (got {_show(value)}). {example}")
    mode = value.get("mode")
    if mode is not None and (not isinstance(mode, str) or mode.upper() not in CITATION_MODES):
        _fail(f"citation_options.mode must be one of {', '.join(CITATION_MODES)} (got {_show(mode)}). {example}")


def _check_documents(name: str, value: Any) -> None:
    example = "Use e.g. documents=['text one', {'id': 'doc2', 'data': {'title': '...', 'snippet': '...'}}]."
    if not isinstance(value, (list, tuple)):
        _fail(f"documents must be a list of strings or document objects (got {_show(value)}). {example}")
    for i, doc in enumerate(value):
        if isinstance(doc, str):
            continue
        if not isinstance(doc, Mapping) or "data" not in doc:
            _fail(f"documents[{i}] must be a string or an object with 'data' (got {_show(doc)}). {example}")
        if doc.get("id") is not None and not isinstance(doc["id"], str):
            _fail(f"documents[{i}].id must be a string (got {_show(doc['id'])}). {example}")


def _check_response_format(name: str, value: Any) -> None:
    example = (
        "Use e.g. response_format={'type': 'json_object'} (--json), or {'type': 'json_schema', "
        "'json_schema': {'name': 'answer', 'schema': {'type': 'object', ...}}}."
    )
    if not isinstance(value, Mapping) or value.get("type") not in RESPONSE_FORMATS:
        got = value.get("type") if isinstance(value, Mapping) else value
        _fail(f"response_format.type must be one of {', '.join(RESPONSE_FORMATS)} (got {_show(got)}). {example}")
    if value["type"] == "json_schema":
        spec = value.get("json_schema")
        complete = (
            isinstance(spec, Mapping) and isinstance(spec.get("name"), str) and isinstance(spec.get("schema"), Mapping)
        )
        if not complete:
            _fail(
                "response_format of type json_schema needs a 'json_schema' object with a 'name' "
                f"and a 'schema' (got {_show(spec)}). {example}"
            )


def _check_stream_options(name: str, value: Any, stream: bool) -> None:
    if not isinstance(value, Mapping):
        _fail(
            f"stream_options must be an object (got {_show(value)}). Use e.g. stream_options={{'include_usage': True}}."
        )
    if not stream:
        _fail(
            "stream_options only applies to streamed requests, and this one is not streamed. "
            "Drop stream_options or stream the reply (--stream)."
        )
    include = value.get("include_usage")
    if include is not None and not isinstance(include, bool):
        _fail(f"stream_options.include_usage must be true or false (got {_show(include)}).")


def _check_model(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        _fail(
            f"model must be a non-empty model id (got {_show(value)}). "
            "Use e.g. model='gpt-4o' (-m gpt-4o); %compass models lists them."
        )


_HINTS: dict[str, str] = {
    "system": (
        "The system message is not a field: pass system=... (-s/--system) "
        "or put {'role': 'system', 'content': ...} first in messages. "
    ),
    "api_key": "The key is not a request field: set COMPASS_API_KEY or run %compass key. ",
}


def _suggest_fields(name: str) -> list[str]:
    # Names people reach for from other APIs are listed in the fields table as aliases.
    candidates = [row.name for row in FIELDS.values() if name.lower() in row.aliases]
    for field in difflib.get_close_matches(name.lower(), sorted(FIELDS), n=3, cutoff=0.6):
        if field not in candidates:
            candidates.append(field)
    # A word of the field's name ("seed" in random_seed) is as good a clue as spelling.
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if len(w) >= 3]
    for field in sorted(FIELDS):
        if field not in candidates and any(w in field.split("_") for w in words):
            candidates.append(field)
    return candidates[:3]


def _or_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _check_unknown(name: str) -> None:
    hint = _HINTS.get(name.lower(), "")
    suggestions = _suggest_fields(name)
    if not hint and suggestions:
        hint = f"Did you mean {_or_list(suggestions)}? "
    _fail(
        f"Unknown request field {name!r}: the Compass reference does not list it. {hint}"
        f"To send a field the reference does not list, pass it in extra_body={{{name!r}: ...}}."
    )


# The rule of each kind of row in the fields table; json rows have rules of their own below.
_BY_KIND: dict[str, Callable[[str, Any], None]] = {
    "number": _check_number,
    "integer": _check_integer,
    "boolean": _check_boolean,
    "string": _check_string,
    "choice": _check_choice,
}

_SIMPLE: dict[str, Callable[[str, Any], None]] = {
    "logit_bias": _check_logit_bias,
    "stop": _check_stop,
    "tools": _check_tools,
    "modalities": _check_modalities,
    "audio": _check_audio,
    "citation_options": _check_citation_options,
    "documents": _check_documents,
    "response_format": _check_response_format,
    "model": _check_model,
}


def _check_cross_field(fields: Mapping[str, Any], stream: bool) -> None:
    """Rules that tie one field to another."""
    top = fields.get("top_logprobs")
    if top is not None and fields.get("logprobs") is not True:
        _fail(
            f"top_logprobs={top} needs logprobs=True as well (got logprobs={_show(fields.get('logprobs'))}). "
            "Set both (the --logprobs K option does)."
        )
    modalities = fields.get("modalities") or ()
    if "audio" in modalities:
        audio = fields.get("audio")
        if not isinstance(audio, Mapping):
            _fail(
                "modalities includes 'audio', which needs audio={'voice': ..., 'format': ...}. "
                "Add e.g. audio={'voice': 'alloy', 'format': 'wav'} (--voice alloy --audio-format wav)."
            )
        if stream and audio.get("format") != "pcm16":
            _fail(
                f"Streaming audio output forces audio format pcm16 (got format {_show(audio.get('format'))}). "
                "Use --audio-format pcm16 (audio={..., 'format': 'pcm16'}), or --no-stream (stream=False) to keep that format."
            )


def validate_fields(fields: Mapping[str, Any], *, stream: bool) -> None:
    """Check request fields against the reference; raise ValidationError on the first broken rule.

    ``None`` values are skipped (they are not sent).
    """
    present = {name: value for name, value in fields.items() if value is not None}
    for name in present:
        if name not in FIELDS:
            _check_unknown(name)
    if isinstance(present.get("stream"), bool):
        stream = present["stream"]
    for name, value in present.items():
        rule = _SIMPLE.get(name) or _BY_KIND.get(FIELDS[name].kind)
        if rule is not None:
            rule(name, value)
        elif name == "tool_choice":
            _check_tool_choice(name, value, present)
        elif name == "thinking":
            _check_thinking(name, value, present)
        elif name == "stream_options":
            _check_stream_options(name, value, stream)
        elif name == "messages":
            validate_messages(value)
    _check_cross_field(present, stream)


def _check_content_part(where: str, part: Any) -> None:
    kinds = "text, image_url or input_audio"
    if not isinstance(part, Mapping):
        _fail(f"{where} must be a content part object (got {_show(part)}). Use e.g. {{'type': 'text', 'text': 'Hi'}}.")
    kind = part.get("type")
    if kind == "text":
        if not isinstance(part.get("text"), str):
            _fail(
                f"{where}.text must be a string (got {_show(part.get('text'))}). Use e.g. {{'type': 'text', 'text': 'Hi'}}."
            )
    elif kind == "image_url":
        image = part.get("image_url")
        if not isinstance(image, Mapping) or not isinstance(image.get("url"), str) or not image["url"]:
            _fail(
                f"{where}.image_url must be an object with a url (got {_show(image)}). "
                "Use e.g. {'type': 'image_url', 'image_url': {'url': 'https://...'}} (--image PATH_OR_URL)."
            )
    elif kind == "input_audio":
        audio = part.get("input_audio")
        example = (
            "Use e.g. {'type': 'input_audio', 'input_audio': {'data': '<base64>', 'format': 'wav'}} (--audio PATH)."
        )
        if not isinstance(audio, Mapping) or not isinstance(audio.get("data"), str):
            _fail(f"{where}.input_audio must be an object with base64 data (got {_show(audio)}). {example}")
        if audio.get("format") not in INPUT_AUDIO_FORMATS:
            _fail(
                f"{where}.input_audio.format must be wav or mp3 (got {_show(audio.get('format'))}). "
                f"Convert the file first. {example}"
            )
    else:
        _fail(f"{where}.type must be {kinds} (got {_show(kind)}).")


def validate_messages(messages: Any) -> None:
    """Check the conversation's shape; raise ValidationError on the first broken rule."""
    example = "Use e.g. messages=[{'role': 'user', 'content': 'Hi'}]."
    if not isinstance(messages, (list, tuple)) or not messages:
        _fail(f"messages must be a non-empty list of messages (got {_show(messages)}). {example}")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            _fail(f"{where} must be a message object (got {_show(message)}). {example}")
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            _fail(f"{where}.role must be one of {', '.join(MESSAGE_ROLES)} (got {_show(role)}). {example}")
        content = message.get("content")
        if content is None:
            # An assistant turn that only called tools (or only spoke) has no text content.
            if role != "assistant":
                _fail(f"{where} (role {role!r}) needs content: a string or a list of content parts. {example}")
        elif isinstance(content, str):
            pass
        elif isinstance(content, (list, tuple)):
            if not content:
                _fail(
                    f"{where}.content is an empty list. "
                    "Give at least one content part, e.g. {'type': 'text', 'text': 'Hi'}."
                )
            for j, part in enumerate(content):
                _check_content_part(f"{where}.content[{j}]", part)
        else:
            _fail(f"{where}.content must be a string or a list of content parts (got {_show(content)}). {example}")
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            _fail(f"{where}.name must be a string (got {_show(name)}). Use e.g. 'name': 'alice' (--name alice).")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                _fail(
                    f"{where} is a tool result without a tool_call_id (got {_show(call_id)}). "
                    "Set tool_call_id to the id of the assistant's tool call it answers."
                )


def build_body(
    *,
    model: str,
    messages: list[dict],
    stream: bool,
    fields: Mapping[str, Any],
    strict: bool = False,
    extra_body: Mapping[str, Any] | None = None,
) -> tuple[dict, list[str]]:
    """The JSON body to send, and the warnings to show with it.

    ``extra_body`` is merged last, checked only for being strict JSON (as is every
    value, see :mod:`compass_jupyter.jsonsafe`): it is the way to send what the
    reference does not list. With ``strict=True`` a field reserved for other models
    is an error instead of a warning.
    """
    if extra_body is not None and not isinstance(extra_body, Mapping):
        kind = type(extra_body).__name__
        _fail(
            f"extra_body must be a dict of field names to values (got a {kind}). Use e.g. extra_body={{'my_field': 1}}."
        )
    for name, argument in _OWN_ARGUMENTS.items():
        if name in fields:
            _fail(f"{name} is not a request field here: set it with {argument}.")
        if extra_body and name in extra_body:
            _fail(f"extra_body cannot set {name}: set it with {argument}.")
    # Strict JSON first: the checks below repr() values (a deep one overflows the stack), and httpx
    # would otherwise fail on NaN or a set only while sending, with a bare ValueError or TypeError.
    for name, value in {"model": model, "stream": stream, **fields}.items():
        check_json(value, name)
    check_json(dict(extra_body or {}), "extra_body")
    check_json(messages, "messages")
    _check_model("model", model)
    _check_boolean("stream", stream)
    validate_fields(fields, stream=stream)
    validate_messages(messages)

    problems = catalog.reserved_param_problems(model, fields)
    if strict and problems:
        _fail(" ".join(problems) + " Turn this into a warning with %compass set strict=false.")

    body: dict[str, Any] = {"model": model, "messages": list(messages), "stream": stream}
    body.update((name, value) for name, value in fields.items() if value is not None)
    if stream and "stream_options" not in body:
        # Without it a streamed reply carries no token usage at all.
        body["stream_options"] = {"include_usage": True}
    if extra_body:
        body.update(extra_body)
    return body, catalog.model_warnings(model) + problems
