"""Settings -> the text that reproduces them: a ``%%compass`` cell or a Python call.

Pure functions, no widgets and no IPython: the playground's "Copy as cell" shows
their output, and a test parses it back with the magic's own option parser.

Why the cell looks the way it does:

- Option values are shell-quoted (``shlex.quote``), because the magic splits its
  line with ``shlex``. A value that starts with ``-`` is written ``--opt=VALUE`` so
  that argparse does not take it for an option.
- ``--stop`` values have newline, tab, carriage return and backslash escaped
  (``\\n``, ``\\t``, ``\\r``, ``\\\\``), which the magic turns back.
- Braces in the message are doubled: the magic fills ``{name}`` from the notebook.
- A field without an option of its own goes through ``--param key=JSON``.
- The option line is one line, so a system message with line breaks cannot be on
  it: :func:`magic_cells` then puts it in a Python cell to run first.
- The local model's id is written as the Compass model it stands in for
  (:func:`compass_jupyter.local_model.compass_model`): Compass does not know the
  local id, and a cell without a key runs on the local model whatever it names.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, Mapping, Sequence

from .fields import flagged

__all__ = ["magic_cell", "magic_cells", "python_snippet", "system_cell", "escape_stop", "parse_stop", "stop_text"]

# What a value must be for a field's own %%compass option to carry it (the option parses by kind);
# anything else goes by --param, which keeps the type.
_FITS: dict[str, Any] = {
    "number": lambda v: _is_number(v),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "choice": lambda v: isinstance(v, str) and _fits(v),
}
# Short options whose value could start with "-" need their long spelling for the "=" form.
_LONG = {"-t": "--temperature", "-s": "--system", "-m": "--model"}
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
_TOOL_CHOICE_WORDS = ("none", "auto", "required")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> str:
    # repr keeps every digit of a float, so the parsed value is the same float.
    return repr(value) if isinstance(value, float) else str(value)


def _option(flag: str, value: str) -> str:
    if value.startswith("-"):
        if flag in _LONG or flag.startswith("--"):
            return f"{_LONG.get(flag, flag)}={shlex.quote(value)}"
        return f"{flag}{shlex.quote(value)}"  # -n-1: argparse reads the rest of a short option as its value
    return f"{flag} {shlex.quote(value)}"


def escape_stop(text: str) -> str:
    """A stop sequence as ``--stop`` (and the playground's stop box) writes it."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def parse_stop(text: str) -> list[str]:
    """Stop sequences from the playground's box: separated by commas or newlines.

    Spaces around each are dropped; ``\\n``, ``\\t``, ``\\r`` and ``\\\\`` are
    newline, tab, carriage return and a backslash (as in ``--stop``), and ``\\,``
    is a comma that does not separate.
    """
    items: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("," if ch == "," else _UNESCAPES.get(ch, "\\" + ch))
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",\n":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    items.append("".join(current))
    return [item.strip(" ") for item in items if item.strip(" ")]


def stop_text(stops: Sequence[str]) -> str:
    """Stop sequences as the playground's box shows them (what :func:`parse_stop` reads back)."""
    return ", ".join(escape_stop(stop).replace(",", "\\,") for stop in stops)


def _json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    # Characters Python counts as line breaks would split the option line; JSON can escape them.
    return text.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _param(key: str, value: Any) -> str:
    return "--param " + shlex.quote(f"{key}={_json(value)}")


def _options(fields: Mapping[str, Any]) -> list[str]:
    """The option words for ``fields`` (request fields by their API names)."""
    rest = {k: v for k, v in fields.items() if v is not None}
    words: list[str] = []

    for row in flagged():
        value = rest.get(row.name)
        fits = _FITS.get(row.kind)
        # A value the option would parse differently (a float for an int option) goes by --param.
        if value is not None and fits is not None and fits(value):
            words.append(_option(row.short or row.flag or "", _text(value)))
            del rest[row.name]

    stop = rest.get("stop")
    if (
        isinstance(stop, list)
        and 0 < len(stop)
        and all(isinstance(s, str) and s and _fits(escape_stop(s)) for s in stop)
    ):
        words += [_option("--stop", escape_stop(s)) for s in stop]
        del rest["stop"]

    if (
        rest.get("logprobs") is True
        and isinstance(rest.get("top_logprobs"), int)
        and not isinstance(rest["top_logprobs"], bool)
    ):
        words.append(f"--logprobs {rest['top_logprobs']}")
        del rest["logprobs"], rest["top_logprobs"]

    if rest.get("response_format") == {"type": "json_object"}:
        words.append("--json")
        del rest["response_format"]

    audio = rest.get("audio")
    if (
        rest.get("modalities") == ["text", "audio"]
        and isinstance(audio, Mapping)
        and set(audio) == {"voice", "format"}
        and all(isinstance(audio[k], str) and audio[k] and _fits(audio[k]) for k in ("voice", "format"))
    ):
        words += [_option("--voice", audio["voice"]), _option("--audio-format", audio["format"])]
        del rest["modalities"], rest["audio"]

    choice = rest.get("tool_choice")
    if isinstance(choice, str) and choice in _TOOL_CHOICE_WORDS:
        words.append(f"--tool-choice {choice}")
        del rest["tool_choice"]
    elif (
        isinstance(choice, Mapping)
        and choice.get("type") == "function"
        and set(choice) == {"type", "function"}
        and isinstance(choice["function"], Mapping)
        and set(choice["function"]) == {"name"}
        and isinstance(choice["function"]["name"], str)
        and choice["function"]["name"] not in _TOOL_CHOICE_WORDS
    ):
        words.append(_option("--tool-choice", choice["function"]["name"]))
        del rest["tool_choice"]

    words += [_param(key, value) for key, value in rest.items()]
    return words


def _models(model: str | Sequence[str]) -> list[str]:
    """The models to write: the local model's id becomes the Compass model it stands in for."""
    from .local_model.server import LOCAL_MODEL_ID

    models = [model] if isinstance(model, str) else list(model)
    if LOCAL_MODEL_ID in models:
        from .local_model import compass_model

        models = [compass_model() if m == LOCAL_MODEL_ID else m for m in models]
    return models


def _body(message: str) -> str:
    # The magic fills {name} from the notebook; doubled braces come out single.
    return message.replace("{", "{{").replace("}", "}}")


def _line_break(text: str) -> bool:
    return any(ch in text for ch in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _fits(value: str) -> bool:
    """Whether an option can carry ``value``: one line, and not argparse's own ``--`` (it drops that)."""
    return value != "--" and not _line_break(value)


def magic_cell(
    model: str | Sequence[str],
    fields: Mapping[str, Any],
    system: str | None,
    message: str,
    *,
    stream: bool = True,
) -> str:
    """The ``%%compass`` cell that sends ``message`` to ``model`` with ``fields``.

    ``model`` may be a list of models (compare mode, ``-m a,b``). ``system``
    None or empty leaves the conversation's system message as it is. A system
    message with line breaks cannot go on the option line: use
    :func:`magic_cells`, which puts it in a Python cell first (here it is a
    ValueError).
    """
    words = ["%%compass", _option("-m", ",".join(_models(model)))]
    if system:
        if not _fits(system):
            raise ValueError(
                "A system message with line breaks (or exactly '--') cannot be written on the %%compass "
                "option line; use magic_cells(), which sets it in a Python cell first."
            )
        words.append(_option("-s", system))
    if not stream:
        words.append("--no-stream")
    words += _options(fields)
    line = " ".join(words)
    if _line_break(line):
        raise ValueError(
            "An option value has a line break (other than in --stop or --param values, which are escaped), "
            "so it cannot be written on the %%compass option line."
        )
    return line + "\n" + _body(message)


def system_cell(system: str) -> str:
    """A Python cell that makes ``system`` the conversation's system message."""
    return f"import compass_jupyter as cj\n\ncj.session().set_system({system!r})"


def magic_cells(
    model: str | Sequence[str],
    fields: Mapping[str, Any],
    system: str | None,
    message: str,
    *,
    stream: bool = True,
) -> list[str]:
    """The cells to run in order: the ``%%compass`` cell, after a Python cell when the system has line breaks."""
    if system and not _fits(system):
        return [system_cell(system), magic_cell(model, fields, None, message, stream=stream)]
    return [magic_cell(model, fields, system, message, stream=stream)]


def python_snippet(
    model: str | Sequence[str],
    fields: Mapping[str, Any],
    system: str | None,
    message: str,
    *,
    stream: bool = True,
) -> str:
    """Python that sends the same turn: ``cj.chat(...)``, or ``cj.session().compare(...)`` for several models."""
    models = _models(model)
    compare = len(models) > 1
    arguments = [repr(message)]
    arguments.append(f"models={models!r}" if compare else f"model={models[0]!r}")
    if system:
        arguments.append(f"system={system!r}")
    if not stream:
        arguments.append("stream=False")
    arguments += [f"{key}={value!r}" for key, value in fields.items() if value is not None]
    call = "replies = cj.session().compare(" if compare else "reply = cj.chat("
    result = "replies" if compare else "reply"
    lines = ["import compass_jupyter as cj", "", call] + [f"    {a}," for a in arguments] + [")", result]
    return "\n".join(lines)
