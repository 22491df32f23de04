"""``%compass SUBCOMMAND ...``: settings, the key, the catalog and the conversation.

Subcommands live in :data:`COMMANDS` (name -> :class:`Command`); a feature module
can add its own with :func:`register` (``%compass local``, ``%compass playground``).
A handler gets a :class:`Context` and the remaining words of the line; it raises
:class:`CompassError` for anything the user can fix, which :func:`run` shows as
one paragraph without a traceback.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass
from typing import Any, Callable

from .._exceptions import CompassError, ConfigError, ValidationError
from . import display

__all__ = ["COMMANDS", "Command", "Context", "register", "run"]


@dataclass
class Context:
    """What a subcommand may use: the IPython shell and the ``Compass`` configurable (or None)."""

    shell: Any
    settings: Any = None


Handler = Callable[[Context, list[str]], Any]


@dataclass(frozen=True)
class Command:
    handler: Handler
    usage: str
    summary: str


COMMANDS: dict[str, Command] = {}


def register(name: str, handler: Handler, *, usage: str, summary: str) -> None:
    """Add (or replace) the subcommand ``%compass NAME``."""
    COMMANDS[name] = Command(handler, usage, summary)


def _command(name: str, usage: str, summary: str) -> Callable[[Handler], Handler]:
    def add(handler: Handler) -> Handler:
        register(name, handler, usage=usage, summary=summary)
        return handler

    return add


def run(ctx: Context, line: str) -> Any:
    """Dispatch one ``%compass`` line."""
    try:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise ValidationError(f"%compass cannot read its line ({exc}): close the quote.") from None
        if not words or words[0] in ("help", "-h", "--help"):
            return _help(ctx, words[1:])
        name, args = words[0], words[1:]
        command = COMMANDS.get(name)
        if command is None:
            close = difflib.get_close_matches(name, list(COMMANDS), n=2, cutoff=0.5)
            hint = f"Did you mean {' or '.join(close)}? " if close else ""
            raise ValidationError(
                f"%compass has no subcommand {name!r}. {hint}Known: {', '.join(COMMANDS)}. %compass help describes them."
            )
        return command.handler(ctx, args)
    except CompassError as exc:
        raise display.error(exc) from None


def _no_args(name: str, args: list[str]) -> None:
    if args:
        raise ValidationError(f"%compass {name} takes no arguments (got {' '.join(args)!r}).")


def _help(ctx: Context, args: list[str]) -> None:
    from ..rendering.tables import help_bundle

    rows = [[f"%compass {c.usage}".rstrip(), c.summary] for c in COMMANDS.values()]
    rows.append(["%%compass [options]", "send the cell body as the next user message (options below)"])
    display.show(help_bundle(rows))
    from .options import usage

    display.text(usage())


# -- settings ----------------------------------------------------------------------------


@_command("key", "key", "enter the API key with a hidden prompt (never shown or saved)")
def _key(ctx: Context, args: list[str]) -> None:
    import getpass

    from IPython.core.error import StdinNotImplementedError

    from ..settings import config, mask_key

    if args:
        raise ValidationError(
            "%compass key takes no value: a key typed into a cell would be saved in the notebook. "
            "Run %compass key alone and paste the key into the hidden prompt, or set COMPASS_API_KEY."
        )
    try:
        key = getpass.getpass("Compass API key (input is hidden): ")
    except StdinNotImplementedError:
        raise ConfigError(
            "This front end cannot show an input prompt, so %compass key cannot ask for the key. "
            "Set COMPASS_API_KEY in the environment that starts the kernel instead."
        ) from None
    except (KeyboardInterrupt, EOFError):
        raise ConfigError("No key was entered; the key is unchanged.") from None
    config.set("api_key", key, source="%compass key")
    display.info(f"API key set for this kernel: {mask_key(config.get('api_key'))}")


@_command("config", "config", "every effective setting, where it comes from (key masked) and what will answer")
def _config(ctx: Context, args: list[str]) -> None:
    from ..rendering.tables import config_bundle
    from ..settings import config

    _no_args("config", args)
    display.show(config_bundle([list(row) for row in config.effective()], answers=_answers()))


def _answers() -> str:
    """What the next request reaches, in words: the settings alone can say Compass while the local model answers.

    No machine paths (a cassette by its file name); a loopback server's port is the only
    part that changes from run to run.
    """
    from pathlib import Path

    from ..conversation import session
    from ..local_model import routed, will_answer
    from ..settings import DEFAULT_BASE_URL, config

    cassette = config.get("cassette")
    if cassette:
        mode = config.get("cassette_mode")
        if mode == "replay" or (mode == "auto" and Path(cassette).exists()):
            return f"the cassette {Path(cassette).name} (replayed: nothing is sent)"
    local = will_answer()
    if local is not None:
        return local
    own = session().client
    if own is not None and not routed():
        return f"{own.model} at {own.base_url} (this session's own client)"
    if not config.get("api_key"):
        return "nothing yet: no API key is set (%compass key; or COMPASS_OFFLINE=local for the local model)"
    model, base_url = config.get("model"), config.get("base_url")
    where = "Compass " if base_url.rstrip("/") == DEFAULT_BASE_URL else ""
    style = " (azure style)" if config.get("api_style") == "azure" else ""
    return f"{where}{model} at {base_url}{style}"


def _pairs(args: list[str], command: str) -> list[tuple[str, str]]:
    if not args:
        raise ValidationError(
            f"%compass {command} needs NAME=VALUE, e.g. %compass {command} model=gpt-4.1 strict=true."
        )
    pairs = []
    for arg in args:
        name, sep, value = arg.partition("=")
        if not sep or not name.strip():
            raise ValidationError(
                f"%compass {command} takes NAME=VALUE pairs (got {arg!r}), e.g. %compass {command} model=gpt-4.1."
            )
        pairs.append((name.strip(), value))
    return pairs


@_command("set", "set NAME=VALUE ...", "change settings for this kernel (model, base_url, api_style, strict, ...)")
def _set(ctx: Context, args: list[str]) -> None:
    from ..settings import SPECS, config

    pairs = _pairs(args, "set")
    parsed = []
    for name, value in pairs:  # every pair is checked before any is stored
        if name == "api_key":
            raise ValidationError(
                "%compass set does not take the API key: it would be saved in the notebook. Use %compass key (a hidden prompt) "
                "or the COMPASS_API_KEY environment variable."
            )
        if name not in SPECS:
            close = difflib.get_close_matches(name, [n for n in SPECS if n != "api_key"], n=2, cutoff=0.5)
            hint = f"Did you mean {' or '.join(close)}? " if close else ""
            known = ", ".join(n for n in SPECS if n != "api_key")
            raise ConfigError(f"Unknown setting {name!r}. {hint}Settings: {known}.")
        parsed.append((name, SPECS[name].parse(name, value)))
    for name, value in parsed:
        config.set(name, value, source="%compass set")
    display.info(
        "Set " + ", ".join(f"{name} = {_shown(config.get(name))}" for name, _ in parsed) + ".",
        detail="(this kernel, until changed)",
    )


def _shown(value: Any) -> str:
    return "off" if value is None else str(value)


@_command("unset", "unset NAME ...", "drop settings made in this kernel (back to the environment or default)")
def _unset(ctx: Context, args: list[str]) -> None:
    from ..settings import SPECS, config

    if not args:
        raise ValidationError("%compass unset needs setting names, e.g. %compass unset model.")
    for name in args:
        if name not in SPECS:
            raise ConfigError(f"Unknown setting {name!r}. Settings: {', '.join(SPECS)}.")
    for name in args:
        config.unset(name)
    shown = ", ".join(f"{n} = {'(masked)' if n == 'api_key' else config.get(n)} ({config.source(n)})" for n in args)
    display.info(f"Unset: now {shown}.")


@_command("models", "models", "the documented models and what each supports")
def _models(ctx: Context, args: list[str]) -> None:
    from .. import catalog
    from ..rendering.tables import catalog_bundle

    _no_args("models", args)
    display.show(catalog_bundle(catalog.table()))


# -- the conversation -------------------------------------------------------------------


def _session() -> Any:
    from ..conversation import session

    return session()


@_command("history", "history", "the conversation so far (incomplete turns marked)")
def _history(ctx: Context, args: list[str]) -> None:
    from ..rendering.transcript import transcript_bundle

    _no_args("history", args)
    s = _session()
    display.show(transcript_bundle(s.system, s.messages, s.transcript() or "The conversation is empty."))


@_command("reset", "reset [--all]", "forget the conversation (keeps the system message; --all drops it too)")
def _reset(ctx: Context, args: list[str]) -> None:
    drop_system = False
    for arg in args:
        if arg in ("--all", "-a", "all"):
            drop_system = True
        else:
            raise ValidationError(f"%compass reset takes only --all (got {arg!r}).")
    s = _session()
    count = len(s.messages)
    had_system = bool(s.system)
    s.reset(keep_system=not drop_system)
    if drop_system:
        kept = " and the system message" if had_system else ""
        display.info(f"Conversation reset: {count} message(s){kept} forgotten.")
    else:
        kept = " The system message is kept (%compass reset --all drops it too)." if had_system else ""
        display.info(f"Conversation reset: {count} message(s) forgotten.{kept}")


@_command("usage", "usage", "tokens and timings per request, with totals")
def _usage(ctx: Context, args: list[str]) -> None:
    from ..rendering.usage import usage_bundle

    _no_args("usage", args)
    s = _session()
    if not s.turns:
        display.info("No requests in this kernel yet, so no usage to show.")
        return
    display.show(usage_bundle(s.turns, s.usage))


def _path(args: list[str], command: str) -> str:
    if len(args) != 1:
        raise ValidationError(
            f"%compass {command} needs one file path, e.g. %compass {command} conversation.json (quote paths with spaces)."
        )
    return args[0]


@_command("export", "export PATH", "save the conversation as JSON (no key, no settings)")
def _export(ctx: Context, args: list[str]) -> None:
    path = _path(args, "export")
    s = _session()
    try:
        target = s.export(path)
    except OSError as exc:
        raise ConfigError(f"Could not write {path!r} ({exc.strerror or exc}). Choose a writable path.") from None
    display.info(f"Exported the conversation ({len(s.messages)} messages) to {target}.")


@_command("import", "import PATH", "replace the conversation with an exported one")
def _import(ctx: Context, args: list[str]) -> None:
    path = _path(args, "import")
    s = _session()
    try:
        s.load(path)
    except OSError as exc:
        raise ConfigError(f"Could not read {path!r} ({exc.strerror or exc}).") from None
    system = " with its system message" if s.system else ""
    display.info(f"Imported {len(s.messages)} messages{system} from {path}; the next %%compass cell continues it.")


# -- features that live in their own modules ----------------------------------------------


@_command("playground", "playground", "the widget playground on this kernel's session")
def _playground(ctx: Context, args: list[str]) -> Any:
    _no_args("playground", args)
    from IPython.display import display as show_object

    from ..playground import Playground

    show_object(Playground())
    return None


@_command("local", "local [stop]", "start the local model and route the session to it (stop: back to the server)")
def _local(ctx: Context, args: list[str]) -> Any:
    from ..local_model import magic_command

    message = magic_command(args)
    display.info(message)
    return None


# -- the store of exchanges and cassettes ---------------------------------------------------


def _log_parser() -> Any:
    from .options import _Parser

    parser = _Parser(prog="%compass log", add_help=False)
    parser.add_argument("-q", dest="q", metavar="TEXT", help="words that occur in the prompt or the reply")
    parser.add_argument("-m", dest="model", metavar="MODEL", help="the model asked or answering")
    parser.add_argument("-n", dest="n", type=int, default=20, metavar="N", help="how many (default 20)")
    parser.add_argument("--since", metavar="DATE", help="2026-11-25, 2026-11-25T14:00, today, yesterday, 2h, 3d")
    parser.add_argument("--notebook", action="store_true", help="only this notebook's exchanges")
    return parser


@_command(
    "log",
    "log [-q TEXT] [-m MODEL] [-n N] [--since DATE] [--notebook] | log show ID",
    "stored exchanges, newest first (full-text search); show ID: one as it was shown",
)
def _log(ctx: Context, args: list[str]) -> None:
    from ..rendering.log import log_bundle

    if args and args[0] == "show":
        _log_show(args[1:])
        return
    from ..store.search import search

    try:
        options = _log_parser().parse_args(args)
    except ValidationError as exc:
        raise ValidationError(str(exc).replace("%%compass option error", "%compass log")) from None
    rows = search(q=options.q, model=options.model, n=options.n, since=options.since, notebook=options.notebook or None)
    asked = [f"words {options.q!r}"] if options.q else []
    asked += [f"model {options.model}"] if options.model else []
    asked += [f"since {options.since}"] if options.since else []
    asked += ["this notebook"] if options.notebook else []
    what = ", ".join(asked) or "every exchange"
    if not rows:
        display.info(f"No stored exchange matches ({what}).")
        return
    display.show(log_bundle(rows, what=f"{what} ({len(rows)} shown)"))


def _log_show(args: list[str]) -> None:
    from ..rendering.log import exchange_heading
    from ..rendering.reply import reply_html_bundle
    from ..store.search import stored_reply

    if len(args) != 1 or not args[0].isdigit():
        raise ValidationError(
            "%compass log show needs one exchange id, e.g. %compass log show 12 (%compass log lists them)."
        )
    reply, row = stored_reply(int(args[0]))
    display.info(exchange_heading(row))
    display.show(reply_html_bundle(reply, error=row.get("error_message")))


@_command(
    "record",
    "record PATH | record stop",
    "record this kernel's exchanges into a cassette (replay: COMPASS_CASSETTE_MODE=replay)",
)
def _record(ctx: Context, args: list[str]) -> None:
    from ..settings import config
    from ..store.exchanges import forget_cassettes

    if args == ["stop"]:
        path = config.get("cassette")
        if not path:
            display.info("No cassette is being recorded.")
            return
        config.unset("cassette")
        config.unset("cassette_mode")
        forget_cassettes()
        display.info(f"Stopped recording; the cassette is {path}.")
        return
    path = _path(args, "record")
    config.set("cassette", path)
    config.set("cassette_mode", "record")
    forget_cassettes()  # a new recording starts empty, even on a path recorded before
    display.info(
        f"Recording every exchange of this kernel into {path} (written after each reply). "
        "%compass record stop ends it; COMPASS_CASSETTE=PATH with COMPASS_CASSETTE_MODE=replay replays it."
    )
