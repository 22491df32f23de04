"""The ``%%compass`` option line: parsing it, and turning it into Session.chat/compare arguments.

The line is split with shell quoting (``shlex``), so values with spaces are
quoted (``-s "You are terse."``) and JSON can be passed in single quotes
(``--param thinking='{"type": "enabled", "budget_tokens": 2048}'``). Parsing
never exits the kernel or prints a usage dump: a bad option is a
:class:`ValidationError` that names the option and the fix.

Only the shape of the line is checked here; ranges and the rules of the API are
the request module's job, so the magic and ``cj.chat`` refuse the same things
with the same words.
"""

from __future__ import annotations

import argparse
import difflib
import json
import keyword
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import fields
from .._exceptions import ValidationError
from ..jsonsafe import MAX_JSON_DEPTH, check_json
from ..turn import not_request_fields

__all__ = ["CellOptions", "FORMATS", "parse", "parser", "usage"]

FORMATS = ("markdown", "text", "code", "json")
TOOL_CHOICE_WORDS = ("none", "auto", "required")
_HELP_HINT = "%compass help lists the options."


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValidationError(f"%%compass option error: {message}. {_HELP_HINT}")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise ValidationError(f"%%compass option error: {message or 'cannot parse the options'}. {_HELP_HINT}")


def _typed(kind: type, what: str, example: str) -> Any:
    def convert(raw: str) -> Any:
        try:
            return kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {raw!r} (e.g. {example})") from None

    convert.__name__ = kind.__name__
    return convert


_NUMBER = _typed(float, "a number", "0.7")
_INT = _typed(int, "a whole number", "3")
_BY_KIND: dict[str, tuple[Any, str]] = {"number": (_NUMBER, "X"), "integer": (_INT, "N"), "choice": (str, "L")}


def _build_parser() -> _Parser:
    p = _Parser(
        prog="%%compass",
        description="Send the cell as the next user message of this kernel's Compass conversation. "
        "{name} in the cell is replaced by the variable's value ({{ and }} give literal braces).",
        add_help=False,
        allow_abbrev=False,
    )
    p.add_argument("-h", "--help", action="store_true", help="show this help and send nothing")
    p.add_argument(
        "-m", "--model", metavar="M", help="model id; a comma list (-m a,b,c) compares the models side by side"
    )
    p.add_argument(
        "-s", "--system", metavar="TEXT", help="the conversation's system message (replaces the previous one)"
    )
    # One option per request field the fields table gives a flag, typed by the field's kind.
    for row in fields.flagged():
        names = [name for name in (row.short, row.flag) if name]
        convert, metavar = _BY_KIND.get(row.kind, (str, "V"))
        p.add_argument(*names, dest=row.name, type=convert, metavar=metavar, help=row.option_help)
    p.add_argument(
        "--stop",
        action="append",
        metavar="S",
        help=r"a stop sequence (repeatable, at most 4); write \n and \t for newline and tab, quoted: --stop '\n\n'",
    )
    p.add_argument(
        "--stream", action=argparse.BooleanOptionalAction, default=None, help="stream the reply (default: on)"
    )
    p.add_argument(
        "--logprobs", type=_INT, metavar="K", help="logprobs with the top K alternatives (0..20), shown as a table"
    )
    p.add_argument(
        "--json", action="store_true", help='response_format {"type": "json_object"}; the reply is shown as JSON'
    )
    p.add_argument(
        "--tools", metavar="F,G", help="names of Python functions (or tool dicts) in the notebook to offer as tools"
    )
    p.add_argument("--tool-choice", metavar="CHOICE", help="none, auto, required, or the name of one tool to force")
    p.add_argument(
        "--image", action="append", metavar="PATH_OR_URL", help="attach an image (repeatable; files up to 8 MiB)"
    )
    p.add_argument("--audio", metavar="PATH", help="attach a wav or mp3 file as input audio (up to 25 MiB)")
    p.add_argument("--voice", metavar="V", help="ask for a spoken reply in this voice (e.g. alloy)")
    p.add_argument(
        "--audio-format",
        metavar="F",
        help="format of the spoken reply (wav, mp3, flac, opus, pcm16; streaming needs pcm16)",
    )
    p.add_argument("--name", metavar="NAME", help="messages[].name of this user turn")
    p.add_argument(
        "--documents",
        metavar="VAR",
        help="documents: a list (of strings or {'data': ...} dicts) in the notebook; Cohere Command R cites them",
    )
    p.add_argument(
        "--schema",
        metavar="VAR",
        help="response_format json_schema from a dict in the notebook (a JSON Schema, or {'name', 'schema'}); the reply is shown parsed",
    )
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="any other documented request field; VALUE is parsed as JSON, else kept as a string; @NAME takes the notebook variable NAME (repeatable)",
    )
    p.add_argument("--no-history", action="store_true", help="this turn neither reads nor writes the conversation")
    p.add_argument("--new", action="store_true", help="start a new conversation (keeping the system message) first")
    p.add_argument(
        "--cache",
        nargs="?",
        const="on",
        metavar="MODE",
        help="the replay cache for this cell: on (the default of --cache) answers an unchanged request from the "
        "store, refresh asks again and keeps the new answer, off sends it",
    )
    p.add_argument("-o", "--out", metavar="NAME", help="store the Reply (a list of them in compare mode) as NAME")
    p.add_argument(
        "--format",
        choices=FORMATS,
        metavar="FORMAT",
        help="markdown, text, code or json: how the reply text is shown (default markdown; json with --json)",
    )
    p.add_argument(
        "--pick", metavar="K", help="compare mode: the reply kept in the history (index from 0, or the model id)"
    )
    p.add_argument(
        "--over",
        metavar="NAME",
        help="the cell is a template sent once per row of the notebook variable NAME (a DataFrame: {column}; "
        "a list of strings: {row}), concurrently; -o stores the answers in the rows' shape",
    )
    return p


_PARSER: tuple[int, _Parser] | None = None


def parser() -> _Parser:
    """The option parser, built once (again only if the fields table changed)."""
    global _PARSER
    if _PARSER is None or _PARSER[0] != fields.version():
        _PARSER = (fields.version(), _build_parser())
    return _PARSER[1]


def usage() -> str:
    """The help text of ``%%compass``."""
    return parser().format_help()


@dataclass
class CellOptions:
    """A parsed option line: what to call and how to show the result."""

    models: list[str] = field(default_factory=list)  # empty: the default model; two or more: compare mode
    kwargs: dict[str, Any] = field(default_factory=dict)  # for Session.chat / Session.compare (not the text)
    fields: dict[str, Any] = field(default_factory=dict)  # request fields among kwargs, by option
    out: str | None = None
    fmt: str = "markdown"
    pick: int = 0
    help: bool = False
    has_media: bool = False
    over: str | None = None  # the variable whose rows the cell is sent over (cj.map)

    @property
    def compare(self) -> bool:
        return len(self.models) > 1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def _unescape(text: str) -> str:
    return re.sub(r"\\([ntr\\])", lambda m: _ESCAPES[m.group(1)], text)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise ValidationError(
            f"%%compass cannot read its option line ({exc}): a quote is not closed. "
            'Close it, e.g. -s "You are terse." or --param stop=\'["END"]\'.'
        ) from None


def _unknown(tokens: list[str]) -> ValidationError:
    known = [s for action in parser()._actions for s in action.option_strings]
    known += ["--no-stream"]
    token = tokens[0]
    if not token.startswith("-"):
        return ValidationError(
            f"%%compass got {token!r} on its first line, which takes options only. Put the message in the cell "
            "below the %%compass line, and quote option values that contain spaces "
            '(e.g. -s "You are terse."). ' + _HELP_HINT
        )
    name = token.split("=", 1)[0]
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
    hint = f"Did you mean {' or '.join(close)}? " if close else ""
    return ValidationError(f"%%compass has no option {name!r}. {hint}{_HELP_HINT}")


# Names --param must not smuggle in: the turn's controls and Session's own arguments, with what sets each.
_NOT_PARAMS = not_request_fields()


def _variable(name: str, namespace: Mapping[str, Any], option: str) -> Any:
    if name not in namespace:
        raise ValidationError(
            f"{option} names {name!r}, which is not defined in the notebook. Define it first (e.g. {name} = [...]) "
            "or check the spelling."
        )
    return namespace[name]


def _schema_format(value: Any, name: str) -> dict[str, Any]:
    """response_format json_schema from a JSON Schema dict, or from {"name": ..., "schema": ...}."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"--schema {name} must be a dict holding a JSON Schema (got {type(value).__name__}).")
    if "schema" in value and isinstance(value["schema"], Mapping):
        spec = dict(value)
    else:
        spec = {"name": str(value.get("title") or name), "schema": dict(value)}
    spec["name"] = re.sub(r"[^A-Za-z0-9_-]", "_", str(spec.get("name") or name))[:64]
    return {"type": "json_schema", "json_schema": spec}


def _param(raw: str, namespace: Mapping[str, Any] | None = None) -> tuple[str, Any]:
    key, sep, value = raw.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValidationError(
            f"--param takes KEY=VALUE (got {raw!r}). Example: --param logit_bias='{{\"50256\": -100}}' or --param user=alice."
        )
    if value.startswith("@") and value[1:].isidentifier():
        return key, _variable(value[1:], namespace or {}, f"--param {key}=@{value[1:]}")
    return key, _param_json(key, value)


def _param_json(key: str, value: str) -> Any:
    """VALUE parsed as strict JSON, else kept as the string it is; hostile JSON is refused."""

    def no_constant(word: str) -> Any:
        # Python's json reads NaN/Infinity, which are not JSON: refuse rather than send (or crash in httpx).
        raise ValidationError(
            f"--param {key} contains {word}, and JSON has no NaN or Infinity, so nothing was sent. "
            f"Use null or a finite number; to send the word as text, quote it: --param {key}='\"{word}\"'."
        )

    try:
        parsed = json.loads(value, parse_constant=no_constant)
    except json.JSONDecodeError:
        return value
    except RecursionError:  # deeper than the interpreter's stack; check_json refuses the merely deep
        raise ValidationError(
            f"--param {key} is JSON nested more than {MAX_JSON_DEPTH} levels deep, so nothing was sent; "
            "no request field needs that. Flatten the value, or pass a string."
        ) from None
    except ValueError as exc:  # e.g. an integer longer than Python's 4300-digit limit
        raise ValidationError(
            f"--param {key} could not be read as JSON ({exc}), so nothing was sent. Check the value."
        ) from None
    check_json(parsed, f"--param {key}")
    return parsed


def _models(raw: str | None) -> list[str]:
    if raw is None:
        return []
    models = [m.strip() for m in raw.split(",") if m.strip()]
    if not models:
        raise ValidationError("-m/--model needs a model id, e.g. -m gpt-4o, or several to compare: -m gpt-4o,gpt-4.1.")
    doubled = sorted({m for m in models if models.count(m) > 1})
    if doubled:
        raise ValidationError(f"-m lists {', '.join(doubled)} more than once; compare mode needs different models.")
    return models


def _tools(raw: str, namespace: Mapping[str, Any]) -> list[Any]:
    tools = []
    for name in (n.strip() for n in raw.split(",")):
        if not name:
            continue
        if name not in namespace:
            raise ValidationError(
                f"--tools names {name!r}, but the notebook has no function called {name!r}. "
                f"Define it (def {name}(...): ...) in a cell above and run that cell first."
            )
        value = namespace[name]
        if not callable(value) and not isinstance(value, Mapping):
            raise ValidationError(
                f"--tools names {name!r}, which is a {type(value).__name__}, not a function or a tool dict. "
                "Pass the names of Python functions."
            )
        tools.append(value)
    if not tools:
        raise ValidationError("--tools needs function names, e.g. --tools get_weather,convert_units.")
    return tools


def _tool_choice(raw: str) -> Any:
    if raw in TOOL_CHOICE_WORDS:
        return raw
    return {"type": "function", "function": {"name": raw}}


def _pick(raw: str | None, models: list[str]) -> int:
    if raw is None:
        return 0
    if len(models) < 2:
        raise ValidationError("--pick chooses among the replies of compare mode; use it with -m model_a,model_b.")
    if raw in models:
        return models.index(raw)
    try:
        index = int(raw)
    except ValueError:
        raise ValidationError(
            f"--pick {raw!r} is neither a position (0 to {len(models) - 1}) nor one of {', '.join(models)}."
        ) from None
    if not 0 <= index < len(models):
        raise ValidationError(f"--pick must be between 0 and {len(models) - 1} for {len(models)} models (got {index}).")
    return index


def parse(line: str, namespace: Mapping[str, Any] | None = None) -> CellOptions:
    """Parse the ``%%compass`` line; ``namespace`` (the user's) resolves --tools names."""
    namespace = namespace if namespace is not None else {}
    args, rest = parser().parse_known_args(_split(line))
    if rest:
        raise _unknown(rest)
    options = CellOptions(help=bool(args.help))
    if options.help:
        return options

    options.models = _models(args.model)
    request: dict[str, Any] = {}
    by_option = {row.name: getattr(args, row.name) for row in fields.flagged()}
    request.update({k: v for k, v in by_option.items() if v is not None})
    if args.stop:
        request["stop"] = [_unescape(s) for s in args.stop]
    if args.logprobs is not None:
        request["logprobs"] = True
        request["top_logprobs"] = args.logprobs
    if args.json and args.schema is not None:
        raise ValidationError("--json and --schema both set response_format; keep one (--schema also asks for JSON).")
    if args.json:
        request["response_format"] = {"type": "json_object"}
    if args.schema is not None:
        request["response_format"] = _schema_format(_variable(args.schema, namespace, "--schema"), args.schema)
    if args.documents is not None:
        request["documents"] = _variable(args.documents, namespace, "--documents")
    if args.tool_choice is not None:
        request["tool_choice"] = _tool_choice(args.tool_choice)
    stream = True if args.stream is None else bool(args.stream)
    if args.voice is not None or args.audio_format is not None:
        request["modalities"] = ["text", "audio"]
        # A stream can only carry pcm16; asking for another format while streaming is the request's error to explain.
        fmt = args.audio_format or ("pcm16" if stream else "wav")
        request["audio"] = {"voice": args.voice or "alloy", "format": fmt}

    for raw in args.param or []:
        key, value = _param(raw, namespace)
        if key in _NOT_PARAMS:
            raise ValidationError(f"--param cannot set {key!r}: use {_NOT_PARAMS[key]} instead.")
        if key in request or (key == "tools" and args.tools is not None):
            raise ValidationError(
                f"{key} is given twice: by --param and by its own option (or another --param). Keep one of them."
            )
        request[key] = value

    kwargs: dict[str, Any] = {"stream": stream, **request}
    if len(options.models) == 1:
        kwargs["model"] = options.models[0]
    if args.system is not None:
        kwargs["system"] = args.system
    if args.no_history:
        kwargs["history"] = False
    if args.new:
        kwargs["new"] = True
    if args.cache is not None:
        if args.cache.lower() not in ("on", "off", "refresh"):
            raise ValidationError(f"--cache takes on, off or refresh (got {args.cache!r}); --cache alone means on.")
        kwargs["cache"] = args.cache.lower()
    if args.name is not None:
        kwargs["name"] = args.name
    if args.image:
        kwargs["images"] = list(args.image)
    if args.audio is not None:
        kwargs["audio_in"] = args.audio
    if args.tools is not None:
        kwargs["tools"] = _tools(args.tools, namespace)

    if args.out is not None and (not args.out.isidentifier() or keyword.iskeyword(args.out)):
        raise ValidationError(f"-o/--out needs a Python variable name (got {args.out!r}), e.g. -o answer.")
    if args.over is not None:
        if not args.over.isidentifier() or keyword.iskeyword(args.over):
            raise ValidationError(f"--over needs the name of a notebook variable (got {args.over!r}), e.g. --over df.")
        if args.stream is None:
            del kwargs["stream"]  # rows are not streamed unless --stream asks (as in cj.map)
        options.over = args.over
    options.kwargs = kwargs
    options.fields = request
    options.out = args.out
    options.fmt = args.format or ("json" if args.json or args.schema is not None else "markdown")
    options.pick = _pick(args.pick, options.models)
    options.has_media = bool(args.image) or args.audio is not None
    return options
