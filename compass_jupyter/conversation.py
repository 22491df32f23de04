"""The kernel's conversation: one system message, the turns, usage totals, export/import.

A turn is committed to the history only when it ends: a finished turn adds its
user message, any tool-call rounds and the reply; a reply that broke off or was
interrupted adds the user message and the partial reply, both marked
``incomplete: true`` (kept for reading, never sent again); a turn that failed
before anything arrived adds nothing.
"""

from __future__ import annotations

import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Callable, Mapping

from ._exceptions import CompassError, ConfigError, StreamError, ToolError, ValidationError
from .client import Client
from .media import user_content
from .reply import Reply, Usage
from .settings import config
from .stream import Delta
from .turn import (
    SILENT,
    SILENT_COMPARE,
    Cancelled,
    CompareControls,
    CompareObserver,
    TurnControls,
    TurnObserver,
    watched,
)

__all__ = ["Session", "Turn", "Cancelled", "session", "default_client", "chat"]

EXPORT_FORMAT = "compass-jupyter/conversation"
_USAGE_COUNTS = tuple(f.name for f in dataclass_fields(Usage) if f.name not in ("raw", "counted"))
_API_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


@dataclass
class Turn:
    """One request's bookkeeping for ``%compass usage``."""

    model: str | None
    usage: Usage | None
    ttft: float | None = None
    total: float | None = None
    tokens_per_s: float | None = None
    finish_reason: str | None = None
    incomplete: bool = False
    interrupted: bool = False
    tool_rounds: int = 0
    kind: str = "chat"  # chat | compare | no-history
    at: float = field(default_factory=time.time)
    cached: bool = False  # answered from the replay cache: its usage shows what the original cost, not spent now

    @classmethod
    def of(cls, reply: Reply, *, kind: str = "chat", usage: Usage | None = None, tool_rounds: int = 0) -> Turn:
        return cls(
            model=reply.model,
            usage=usage if usage is not None else reply.usage,
            ttft=reply.latency.ttft,
            total=reply.latency.total,
            tokens_per_s=reply.latency.tokens_per_s,
            finish_reason=reply.finish_reason,
            incomplete=reply.incomplete,
            interrupted=reply.interrupted,
            tool_rounds=tool_rounds,
            kind=kind,
            cached=reply.cached and all(step.cached for step in reply.steps),
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["usage"] = None if self.usage is None else {k: v for k, v in asdict(self.usage).items() if k != "raw"}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Turn:
        """A turn read back from an export; a value of the wrong type (an edited file) is dropped."""

        def text(name: str, default: str | None = None) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else default

        def number(name: str) -> float | None:
            value = data.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return float(value)
            return None

        def count(value: Any) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

        usage = data.get("usage")
        counts: dict[str, Any] = {k: count(usage.get(k)) for k in _USAGE_COUNTS} if isinstance(usage, dict) else {}
        if isinstance(usage, dict):
            counts["counted"] = usage.get("counted") is True  # counted by the client, not reported
        return cls(
            model=text("model"),
            usage=Usage(**counts) if isinstance(usage, dict) else None,
            ttft=number("ttft"),
            total=number("total"),
            tokens_per_s=number("tokens_per_s"),
            finish_reason=text("finish_reason"),
            incomplete=data.get("incomplete") is True,
            interrupted=data.get("interrupted") is True,
            tool_rounds=count(data.get("tool_rounds")) or 0,
            kind=text("kind", "chat") or "chat",
            at=number("at") or 0.0,
            cached=data.get("cached") is True,
        )


def _message_problem(message: Any) -> str | None:
    """What makes an imported message unfit to be sent again, or None (an edited file must not poison the session)."""
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "tool", "developer"):
        return "has no valid role"
    content = message.get("content")
    if isinstance(content, list):
        if message["role"] != "user" or not all(
            isinstance(p, dict) and isinstance(p.get("type"), str) for p in content
        ):
            return "has content parts that are not a user message's text, image or audio parts"
    elif content is not None and not isinstance(content, str):
        return "has content that is neither text nor a list of parts"
    elif content is None and not (message["role"] == "assistant" and message.get("tool_calls")):
        return "has no content"
    calls = message.get("tool_calls")
    if calls is not None:
        for call in calls if isinstance(calls, list) else [None]:
            function = call.get("function") if isinstance(call, dict) else None
            if not (
                isinstance(function, dict)
                and isinstance(function.get("name"), str)
                and isinstance(function.get("arguments", ""), str)
            ):
                return "has a tool call without a function name and text arguments"
    return None


def _for_api(message: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k in _API_KEYS}


class Session:
    """A conversation: ``.system``, ``.messages``, ``.turns`` and ``.usage``."""

    def __init__(self, client: Client | None = None) -> None:
        self.client = client
        self.system: str | None = None
        self.messages: list[dict[str, Any]] = []
        self.turns: list[Turn] = []
        self._lock = threading.RLock()
        self._listeners: list[Callable[[Session], None]] = []

    # -- reading ----------------------------------------------------------------------
    @property
    def usage(self) -> Usage | None:
        """Tokens spent over every turn (the replay cache's answers cost none); None when none reported usage."""
        return Usage.total(turn.usage for turn in self.turns if not turn.cached)

    def api_messages(self, *, system: str | None = None, history: bool = True) -> list[dict[str, Any]]:
        """What a new request sends before its own user message."""
        system = self.system if system is None else system
        head = [{"role": "system", "content": system}] if system else []
        if not history:
            return head
        return head + [_for_api(m) for m in self.messages if not m.get("incomplete")]

    def transcript(self) -> str:
        """The conversation as readable text (incomplete entries marked)."""
        lines = []
        if self.system:
            lines.append(f"[system] {self.system}")
        for message in self.messages:
            role = message.get("role", "?")
            mark = " (incomplete)" if message.get("incomplete") else ""
            content = message.get("content")
            if isinstance(content, list):
                kinds = [p.get("type", "?") for p in content]
                texts = [p.get("text", "") for p in content if p.get("type") == "text"]
                content = " ".join(texts) + f" [{', '.join(k for k in kinds if k != 'text')}]"
            if message.get("tool_calls"):
                calls = ", ".join(
                    f"{c['function']['name']}({c['function'].get('arguments', '')})" for c in message["tool_calls"]
                )
                content = (content or "") + f" → calls {calls}"
            if role == "tool":
                role = f"tool {message.get('name') or message.get('tool_call_id')}"
            lines.append(f"[{role}]{mark} {content if content is not None else ''}")
        return "\n".join(lines)

    # -- changing -----------------------------------------------------------------------
    def on_change(self, listener: Callable[[Session], None]) -> None:
        """Call ``listener(session)`` after every change (the playground follows the magics this way)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener(self)
            except Exception:  # a broken view must not break the conversation
                pass

    def reset(self, *, keep_system: bool = True) -> None:
        """Forget the conversation (and, with keep_system=False, the system message)."""
        with self._lock:
            self.messages.clear()
            if not keep_system:
                self.system = None
        self._changed()

    def set_system(self, text: str | None) -> None:
        with self._lock:
            self.system = text or None
        self._changed()

    def _commit(self, messages: list[dict[str, Any]], turns: list[Turn], *, history: bool, system: str | None) -> None:
        with self._lock:
            if history:
                if system is not None:
                    self.system = system or None
                self.messages.extend(messages)
            self.turns.extend(turns)
        self._changed()

    def _commit_broken(self, user: dict[str, Any], reply: Reply | None, *, history: bool, system: str | None) -> None:
        if reply is None:
            return  # stopped before the request went out (a Retry-After wait): nothing happened
        reply.incomplete = True
        kind = "chat" if history else "no-history"
        if not reply.has_content:
            # Stopped before the first byte of a reply: the request is counted, the history untouched.
            self._commit([], [Turn.of(reply, kind=kind)], history=history, system=system)
            return
        partial = {**reply.first.message(), "incomplete": True}
        if reply.interrupted:
            partial["interrupted"] = True
        self._commit(
            [{**user, "incomplete": True}, partial], [Turn.of(reply, kind=kind)], history=history, system=system
        )

    # -- talking -------------------------------------------------------------------------
    def _client(self, client: Client | None) -> Client:
        if client is None and self.client is None:
            from .local_model import ensure_backend

            ensure_backend()
        return client or self.client or default_client()

    def chat(self, text: str, *, observer: TurnObserver | None = None, **kwargs: Any) -> Reply:
        """Send ``text`` as the next user turn and return the model's Reply.

        ``kwargs`` are the turn's controls (the fields of :class:`~.turn.TurnControls`:
        ``model``, ``stream``, ``system``, ``history``, ``new``, ``tools``, ``images``,
        ``audio_in``, ``name``, ``client``, ``extra_body``) and request fields by their
        documented names (``temperature``, ``logprobs``, ...), told apart in one place,
        :meth:`TurnControls.split`. ``tools`` (Python callables or tool dicts) are
        offered to the model; calls to callables are run and their results sent back
        until the model answers in text, at most ``max_tool_rounds`` times.
        ``history=False`` neither reads nor writes the conversation. ``observer`` (a
        :class:`~.turn.TurnObserver`) sees the deltas, tool rounds and tool results,
        and stops the stream when its ``cancelled()`` turns True; the partial reply
        is then kept like an interrupted one.
        """
        controls, fields = TurnControls.split(kwargs)
        return self._chat(text, controls, fields, observer if observer is not None else SILENT)

    def _chat(self, text: str, controls: TurnControls, fields: dict[str, Any], observer: TurnObserver) -> Reply:
        from .tools import resolve_tools, run_tool_calls

        c = controls
        client = self._client(c.client)
        user = self._user_message(text, c)
        schemas, functions = resolve_tools(c.tools) if c.tools else ([], {})
        if schemas:
            fields["tools"] = schemas
        prior = self.api_messages(system=c.system, history=c.history and not c.new)
        if c.new and c.history:
            # Checked before the reset, so a refused request leaves the conversation as it was.
            client.prepare(prior + [_for_api(user)], model=c.model, stream=c.stream, extra_body=c.extra_body, **fields)
            self.reset(keep_system=True)
        on_delta = watched(observer)
        max_rounds = int(config.get("max_tool_rounds"))

        pending: list[dict[str, Any]] = [user]
        steps: list[Reply] = []
        while True:
            try:
                reply = client.chat(
                    prior + [_for_api(m) for m in pending],
                    model=c.model,
                    stream=c.stream,
                    on_delta=on_delta,
                    extra_body=c.extra_body,
                    cache=c.cache,
                    **fields,
                )
            except (KeyboardInterrupt, Cancelled) as stop:
                partial = getattr(stop, "reply", None)
                if partial is not None:
                    partial.incomplete = partial.interrupted = True
                    self._commit_broken(user, partial, history=c.history, system=c.system)
                if isinstance(stop, Cancelled):
                    return partial if partial is not None else Reply(incomplete=True, interrupted=True)
                raise
            except CompassError as exc:
                # A reply that broke off is kept as incomplete; one the server sent wrong (an error
                # event, data of the wrong shape) leaves the history as it was.
                if isinstance(exc, StreamError) and exc.broke_off and exc.reply is not None:
                    self._commit_broken(user, exc.reply, history=c.history, system=c.system)
                raise
            steps.append(reply)
            calls = reply.first.tool_calls
            if not calls or not all(call.name in functions for call in calls):
                break  # a text answer, or a call to a tool we cannot run: the caller takes over
            if len(steps) > max_rounds:
                raise ToolError(
                    f"The model was still calling tools after {max_rounds} rounds, so the loop stopped and the "
                    "conversation was left unchanged. Allow more rounds with %compass set max_tool_rounds=N, or "
                    "make the tools' results answer the question more directly.",
                    reply=reply,
                )
            observer.on_round(reply)
            pending.append(reply.first.message())
            runs = run_tool_calls(functions, [(call.id, call.name, call.arguments_json) for call in calls])
            for call, run in zip(calls, runs):
                call.result, call.content, call.error, call.duration = run.result, run.content, run.error, run.duration
                pending.append({"role": "tool", "tool_call_id": call.id, "name": call.name, "content": run.content})
                observer.on_tool(call)
            # "required" or a named tool_choice would make the model call tools forever; after the
            # first round the model must be free to answer in text.
            if fields.get("tool_choice") not in (None, "none", "auto"):
                fields["tool_choice"] = "auto"

        reply.steps = steps[:-1]
        pending.append(reply.first.message())
        kind = "chat" if c.history else "no-history"
        turn = Turn.of(reply, kind=kind, usage=reply.total_usage, tool_rounds=len(steps) - 1)
        self._commit(pending, [turn], history=c.history, system=c.system)
        return reply

    @staticmethod
    def _user_message(text: str, controls: TurnControls) -> dict[str, Any]:
        user: dict[str, Any] = {
            "role": "user",
            "content": user_content(text, images=controls.images, audio=controls.audio_in),
        }
        if controls.name:
            user["name"] = controls.name
        return user

    def compare(self, text: str, *, observer: CompareObserver | None = None, **kwargs: Any) -> list[Reply]:
        """Send one turn to several models at once; the history keeps ``models[pick]``'s reply.

        ``kwargs`` are :meth:`chat`'s, without ``tools``, plus ``models`` (at least two),
        ``pick`` (the index of the reply the history keeps) and ``poll_interval``: the
        fields of :class:`~.turn.CompareControls`. Requests run in threads; ``observer``
        (a :class:`~.turn.CompareObserver`) gives one observer per model, called on those
        threads, and its ``poll()`` is called on this thread while they run (so views can
        render from the thread that owns the display).
        """
        controls, fields = CompareControls.split(kwargs)
        return self._compare(text, controls, fields, observer if observer is not None else SILENT_COMPARE)

    def _compare(
        self, text: str, controls: CompareControls, fields: dict[str, Any], observer: CompareObserver
    ) -> list[Reply]:
        c = controls
        models, pick = list(c.models), c.pick
        if len(models) < 2:
            raise ValidationError("Compare mode needs at least two models, e.g. -m gpt-4o,gpt-4.1.")
        if not 0 <= pick < len(models):
            raise ValidationError(f"pick must be between 0 and {len(models) - 1} (got {pick}).")
        if c.tools:
            raise ValidationError("Tools cannot be used in compare mode; compare the models without --tools.")
        client = self._client(c.client)
        user = self._user_message(text, c)
        messages = self.api_messages(system=c.system, history=c.history and not c.new) + [_for_api(user)]
        for model in models:  # every request is checked before any is sent (or the history reset)
            client.prepare(messages, model=model, stream=c.stream, extra_body=c.extra_body, **fields)
        if c.new and c.history:
            self.reset(keep_system=True)

        interrupted = threading.Event()
        latest: dict[str, Reply] = {}
        watchers = {model: observer.observer(model) for model in models}

        def stopped() -> bool:
            return interrupted.is_set() or observer.cancelled()

        sent_wrong: set[str] = set()  # models whose server sent an error event or data of the wrong shape

        def run(model: str) -> Reply:
            on_delta = watched(watchers[model], stop=stopped)

            def observe(delta: Delta) -> None:
                latest[model] = delta.reply
                on_delta(delta)

            try:
                return client.chat(
                    messages,
                    model=model,
                    stream=c.stream,
                    on_delta=observe,
                    extra_body=c.extra_body,
                    cache=c.cache,
                    **fields,
                )
            except Cancelled:
                partial = latest.get(model) or Reply(model=model)
                partial.incomplete = partial.interrupted = True
                return partial
            except CompassError as exc:
                if isinstance(exc, StreamError) and not exc.broke_off:
                    sent_wrong.add(model)
                failed = exc.reply or latest.get(model) or Reply(model=model)
                failed.incomplete = True
                failed.error = str(exc)
                return failed

        pool = ThreadPoolExecutor(max_workers=len(models), thread_name_prefix="compass-compare")
        futures = [pool.submit(run, m) for m in models]
        try:
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=c.poll_interval)
                observer.poll()
        except KeyboardInterrupt:
            interrupted.set()
            wait(futures)
            replies = [f.result() for f in futures]
            self._record_compare(
                user, replies, pick, history=c.history, system=c.system, keep_out=models[pick] in sent_wrong
            )
            raise
        finally:
            pool.shutdown(wait=False)
        replies = [f.result() for f in futures]
        for model, reply in zip(models, replies):
            reply.model = reply.model or model
        self._record_compare(
            user, replies, pick, history=c.history, system=c.system, keep_out=models[pick] in sent_wrong
        )
        return replies

    def _record_compare(
        self,
        user: dict[str, Any],
        replies: list[Reply],
        pick: int,
        *,
        history: bool,
        system: str | None,
        keep_out: bool = False,
    ) -> None:
        chosen = replies[pick]
        turns = [Turn.of(r, kind="compare") for r in replies]
        if keep_out:
            # The kept model's server sent nonsense: as in a single turn, the history stays as it was.
            self._commit([], turns, history=history, system=system)
            return
        if chosen.incomplete:
            self._commit_broken(user, chosen, history=history, system=system)
            with self._lock:
                self.turns.extend(turns[:pick] + turns[pick + 1 :])
            return
        self._commit([user, chosen.first.message()], turns, history=history, system=system)

    def add_tool_result(self, tool_call_id: str, content: Any, *, name: str | None = None) -> None:
        """Answer a tool call yourself (for tools given as dicts, which cannot be run here)."""
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        message = {"role": "tool", "tool_call_id": tool_call_id, "content": text}
        if name:
            message["name"] = name
        self._commit([message], [], history=True, system=None)

    # -- saving -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "format": EXPORT_FORMAT,
                "version": 1,
                "system": self.system,
                "messages": json.loads(json.dumps(self.messages, default=str)),
                "turns": [t.to_dict() for t in self.turns],
            }

    def export(self, path: str | Path) -> Path:
        """Write the conversation as JSON (no key, no settings) and return the path."""
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return target

    def load(self, path: str | Path) -> Session:
        """Replace the conversation with one written by :meth:`export`."""
        source = Path(path).expanduser()
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"No conversation file at {str(source)!r}. Export one with %compass export PATH."
            ) from None
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{source.name!r} is not JSON ({exc.msg}, line {exc.lineno}); nothing was loaded."
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"{source.name!r} is not UTF-8 text (is it the exported .json file?); nothing was loaded."
            ) from None
        except RecursionError:
            raise ConfigError(
                f"{source.name!r} is nested too deeply to be a conversation; nothing was loaded."
            ) from None
        self.load_dict(data, origin=source.name)
        return self

    def load_dict(self, data: Any, *, origin: str = "the data") -> None:
        if (
            not isinstance(data, dict)
            or data.get("format") != EXPORT_FORMAT
            or not isinstance(data.get("messages"), list)
        ):
            raise ConfigError(
                f"{origin} is not a compass-jupyter conversation (expected format {EXPORT_FORMAT!r} with a messages "
                "list); nothing was loaded."
            )
        for i, message in enumerate(data["messages"]):
            problem = _message_problem(message)
            if problem:
                raise ConfigError(f"Message {i} in {origin} {problem}; nothing was loaded.")
        if data.get("system") is not None and not isinstance(data.get("system"), str):
            raise ConfigError(f"The system message in {origin} is not text; nothing was loaded.")
        with self._lock:
            self.system = data.get("system") or None
            self.messages = list(data["messages"])
            self.turns = [Turn.from_dict(t) for t in data.get("turns") or [] if isinstance(t, dict)]
        self._changed()


_session: Session | None = None
_client: Client | None = None
_singleton_lock = threading.Lock()


def session() -> Session:
    """This kernel's Session, shared by the magics, cj.chat and the playground."""
    global _session
    with _singleton_lock:
        if _session is None:
            _session = Session()
        return _session


def default_client() -> Client:
    """The Client built from the kernel's settings (made once, settings read per request)."""
    global _client
    with _singleton_lock:
        if _client is None:
            _client = Client()
        return _client


def chat(text: str, **kwargs: Any) -> Reply:
    """Send ``text`` as the next turn of this kernel's session; see :meth:`Session.chat`."""
    return session().chat(text, **kwargs)
