"""One request's passage through the store: asked before sending, told after.

The client makes a :class:`Passage` for each request. Before anything is sent,
:meth:`Passage.answer` gives the recorded response when a cassette is being
replayed or the replay cache holds the same request; the client then builds the
reply from it without touching the network. After a request reached a server,
:meth:`Passage.keep` writes it to the store and to a cassette being recorded.

Keeping never costs a reply: a store that cannot be written (read-only, full,
locked for too long, corrupt, a foreign file) gives one warning per problem and
the turn goes on. Everything written is scrubbed of the key first (the request
body never holds it; a server may echo it into a reply).
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._exceptions import CassetteError, CompassError, CompassWarning, StoreError
from ..reply import Reply
from ..settings import config, redact_value
from ..shapes import error_text
from .cassette import Cassette
from .context import SESSION_ID, notebook_path
from .db import Store
from .records import canonical, completion_doc, request_key

__all__ = [
    "Passage",
    "current_store",
    "current_cassette",
    "replaying_cassette",
    "forget_cassettes",
    "store_path",
    "default_store_path",
]

STORE_FILE = "exchanges.db"

_lock = threading.Lock()
_stores: dict[Path, Store] = {}
_cassettes: dict[tuple[Path, str], Cassette] = {}
_warned: set[str] = set()


def default_store_path() -> Path:
    """The per-user data directory of this platform (``~/.local/share/compass-jupyter`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("compass-jupyter", appauthor=False)) / STORE_FILE


def store_path() -> Path | None:
    """Where the store is by the ``store`` setting; None when it is off."""
    setting = config.get("store")
    if setting == "off":
        return None
    if setting == "default":
        return default_store_path()
    return Path(setting)


def current_store() -> Store | None:
    """The store of the current setting (one per file per process), or None when it is off."""
    path = store_path()
    if path is None:
        return None
    with _lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = Store(path)
        return store


def current_cassette() -> Cassette | None:
    """The cassette of the ``cassette`` setting in its mode; 'auto' replays a file that exists, else records."""
    setting = config.get("cassette")
    if not setting:
        return None
    path = Path(setting)
    mode = config.get("cassette_mode")
    with _lock:
        for (known, known_mode), cassette in _cassettes.items():
            if known == path and mode in (known_mode, "auto"):
                return cassette
        if mode == "auto":
            mode = "replay" if path.exists() else "record"
        cassette = _cassettes[(path, mode)] = Cassette(path, mode=mode)
        return cassette


def replaying_cassette() -> bool:
    """Whether a cassette answers every request now (then no key and no network are needed)."""
    cassette = current_cassette()
    return cassette is not None and cassette.mode == "replay"


def forget_cassettes() -> None:
    """Drop the open cassettes (``%compass record stop``): the next run reads the files afresh."""
    with _lock:
        _cassettes.clear()


def _warn_once(problem: CompassError) -> None:
    message = str(problem)
    with _lock:
        if message in _warned:
            return
        _warned.add(message)
    warnings.warn(f"{message} The reply is kept; only its record is missing.", CompassWarning, stacklevel=4)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("text"))
    return ""


def _prompt(body: dict[str, Any]) -> str:
    """The last user message's text: what this request asked (a tool round asks the same question)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def _first_text(doc: Any) -> str | None:
    """The first choice's text as stored (scrubbed), for the listing and the search index.

    A reply that only calls tools reads as its calls, ``→ weather({"city": "Paris"})``.
    """
    try:
        message = doc["choices"][0]["message"]
    except (TypeError, KeyError, IndexError):
        return None
    text = str(message.get("content") or "")
    calls = message.get("tool_calls") or []
    if not text and calls:
        text = " ".join(f"→ {c['function']['name']}({c['function']['arguments']})" for c in calls)
    return text


class Passage:
    """One request: the cache and cassette asked before it is sent, the store told after."""

    def __init__(
        self, *, route: str, body: dict[str, Any], asked: dict[str, Any] | None = None, cache: str | None = None
    ) -> None:
        # ``body`` is what goes to the server (in its dialect), ``asked`` the request before the dialect
        # rewrote it: cassettes match what was asked, so one recorded against the local model's
        # server replays for a kernel talking to any other.
        self.route, self.body = route, body
        self.asked = asked if asked is not None else body
        self.cache = cache or config.get("cache")
        self.cassette = current_cassette()
        self.started = time.perf_counter()
        self.at = _now()
        self._key: str | None = None

    @property
    def key(self) -> str:
        if self._key is None:
            self._key = request_key(self.body, self.route)
        return self._key

    @property
    def replaying(self) -> bool:
        """A cassette answers every request: no key and no network are needed."""
        return self.cassette is not None and self.cassette.mode == "replay"

    # -- before sending -------------------------------------------------------------------
    def answer(self) -> tuple[dict[str, Any], str] | None:
        """(recorded response, 'cassette' or 'cache') to answer from instead of sending, or None."""
        if self.cassette is not None and self.cassette.mode == "replay":
            return self.cassette.answer(self.asked), "cassette"
        if self.cache != "on":
            return None
        try:
            store = current_store()
            row = store.cached(self.key) if store is not None else None
        except StoreError as problem:
            _warn_once(problem)
            return None
        if row is None or not row.get("reply"):
            return None
        try:
            completion = json.loads(row["reply"])
        except json.JSONDecodeError:
            return None  # an edited row: ask the server instead
        latency = {"ttft": row.get("ttft"), "total": row.get("latency"), "tokens_per_s": row.get("tokens_per_s")}
        response = {"status": 200, "completion": completion, "latency": latency, "stored_id": row["id"]}
        return response, "cache"

    # -- after the server answered ------------------------------------------------------------
    def keep(self, reply: Reply | None, error: BaseException | None = None) -> None:
        """Record what the server said (a reply, or the error it ended in); never raises."""
        complete = reply is not None and error is None and not reply.incomplete
        body = redact_value(self.body)
        doc = redact_value(completion_doc(reply)) if reply is not None and reply.choices else None
        if self.cassette is not None and self.cassette.mode == "record":
            self._record(redact_value(self.asked), reply, doc, error, complete)
        try:
            store = current_store()
            if store is not None:
                store.add(self._row(body, reply, doc, error, complete))
        except StoreError as problem:
            _warn_once(problem)

    def _record(
        self, body: dict[str, Any], reply: Reply | None, doc: Any, error: BaseException | None, complete: bool
    ) -> None:
        assert self.cassette is not None
        if complete and doc is not None:
            assert reply is not None
            latency = {name: getattr(reply.latency, name) for name in ("ttft", "total", "tokens_per_s")}
            response: dict[str, Any] = {
                "status": 200,
                "streamed": bool(body.get("stream")),
                "latency": latency,
                "completion": doc,
            }
        elif isinstance(error, CompassError) and not isinstance(error, KeyboardInterrupt):
            status = getattr(error, "status_code", None)
            recorded: dict[str, Any] = {"class": type(error).__name__, "message": error.message}
            said = getattr(error, "body", None)  # what the server sent, parsed
            server_message = error_text(said.get("error", said) if isinstance(said, dict) else said)
            if server_message:
                recorded["server_message"] = server_message  # what a server replaying the cassette says
            response = {"status": status or 0, "error": recorded}
        else:
            return  # an interrupt is the person's doing, not the server's: nothing to replay
        try:
            self.cassette.add(body, redact_value(response))
        except CassetteError as problem:
            _warn_once(problem)

    def _row(
        self, body: dict[str, Any], reply: Reply | None, doc: Any, error: BaseException | None, complete: bool
    ) -> dict[str, Any]:
        usage = reply.usage if reply is not None else None
        first = reply.first if reply is not None and reply.choices else None
        message = None
        if error is not None:
            message = str(redact_value(getattr(error, "message", None) or str(error) or type(error).__name__))
        return {
            "at": self.at,
            "session": SESSION_ID,
            "notebook": notebook_path(),
            "model": body.get("model"),
            "answered_by": reply.model if reply is not None else None,
            "route": self.route,
            "request_key": self.key,
            "request": canonical(body),
            "prompt": _prompt(body),
            "reply": json.dumps(doc, ensure_ascii=False, separators=(",", ":")) if doc is not None else None,
            "text": _first_text(doc),
            "finish_reason": first.finish_reason if first is not None else None,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "total_tokens": usage.total_tokens if usage else None,
            "ttft": reply.latency.ttft if reply is not None else None,
            "latency": reply.latency.total if reply is not None and reply.latency.total else self._elapsed(),
            "tokens_per_s": reply.latency.tokens_per_s if reply is not None else None,
            "streamed": int(bool(body.get("stream"))),
            "complete": int(complete),
            "incomplete": int(bool(reply is not None and reply.incomplete)),
            "interrupted": int(bool(reply is not None and reply.interrupted or isinstance(error, KeyboardInterrupt))),
            "error_class": type(error).__name__ if error is not None else None,
            "error_message": message,
        }

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started
