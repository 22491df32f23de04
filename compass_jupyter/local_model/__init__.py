"""The local model, offline: SmolLM2-135M on llama.cpp. ``cj.local()``, ``%compass local [stop]``.

- :mod:`.server` starts and stops the llama.cpp server (a child process on loopback);
- :mod:`.dialect` is how that server reads a request, and what SmolLM2 cannot do;
- this module routes the kernel to it: :func:`local` gives this kernel's session
  a :class:`~compass_jupyter.Client` with the llama.cpp dialect, points the
  kernel's settings at the server (openai style, the local model's id), and
  :func:`stop` puts back what was there before.

With the setting ``offline=local`` (``COMPASS_OFFLINE=local``, which ``./dev lab``
and Binder set), a kernel that has no key starts it on its first request
instead of failing (:func:`ensure_backend`). It says so once, as a
:class:`LocalModelNotice` (information, not a problem: the magics show it as a
quiet line), when that first request has been checked and is about to go, so a
request refused by validation announces nothing. :func:`will_answer` says in
words what the local model is doing for this kernel (``%compass config``).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import CompassNotice, ValidationError
from ..settings import config
from .dialect import LlamaCppDialect

if TYPE_CHECKING:
    from ..client import Client
    from ..conversation import Session
    from .server import LocalModelServer

__all__ = [
    "LocalModelNotice",
    "compass_model",
    "local",
    "stop",
    "routed",
    "ensure_backend",
    "magic_command",
    "will_answer",
]

_ROUTED_SETTINGS = ("base_url", "api_key", "api_style", "model")
_NO_KEY = "local-model-no-key"  # llama.cpp checks no key; a placeholder keeps the "no key" error away
_BY_HAND = "%compass local / cj.local()"
_NO_KEY_FALLBACK = "no key; offline=local"


class LocalModelNotice(CompassNotice):
    """Where replies come from (the local model, for want of a key): information, shown as a quiet line.

    A CompassWarning, so scripts and ``pytest.warns`` see it as before; the magics show it
    as an info line rather than a warning.
    """


class _RoutedDialect(LlamaCppDialect):
    """The route's llama.cpp dialect, which can say once, with the first request it lets through, why it answers.

    :meth:`adapt` runs after the request passed validation (and the local model's own
    refusals), right before the client sends it: the one moment the notice is true.
    """

    def __init__(self, model_id: str) -> None:
        super().__init__(model_id)
        self.notice: str | None = None

    def adapt(self, body: dict[str, Any]) -> dict[str, Any]:
        adapted = super().adapt(body)  # raises for what the local model cannot do: then nothing is said
        notice, self.notice = self.notice, None
        if notice:
            warnings.warn(notice, LocalModelNotice, stacklevel=3)
        return adapted


@dataclass
class _Route:
    """What :func:`local` put in place, and what it replaced (for :func:`stop`)."""

    settings: dict[str, tuple[Any, str]]
    client: Client | None = None
    sessions: list[tuple[Session, Client | None]] = field(default_factory=list)
    reason: str = _BY_HAND  # why the kernel is routed, as %compass config says it


_route: _Route | None = None
_lock = threading.Lock()


def local(**server_options: Any) -> LocalModelServer:
    """Start the local model (once) and route this kernel's session to it; returns the server.

    Keyword arguments go to :class:`~compass_jupyter.local_model.server.LocalModelServer`
    and count only when the server is actually started.
    """
    global _route
    from ..client import Client
    from ..conversation import session
    from .server import start_local

    server = start_local(**server_options)
    current = session()
    with _lock:
        if _route is None:
            saved = {
                name: (config.get(name) if config.is_set(name) else None, config.source(name))
                for name in _ROUTED_SETTINGS
            }
            _route = _Route(settings=saved)
        if _route.client is None or _route.client.base_url != server.base_url:
            if _route.client is not None:
                _route.client.close()  # a server that died was started again, elsewhere
            _route.client = Client(
                base_url=server.base_url,
                api_key=_NO_KEY,
                api_style="openai",
                model=server.model_id,
                dialect=_RoutedDialect(server.model_id),
            )
        if current.client is not _route.client:
            _route.sessions.append((current, current.client))
            current.client = _route.client
        # The settings too: %compass config shows where requests go, and a plain Client made now goes there.
        config.set("base_url", server.base_url, source="local")
        config.set("api_key", _NO_KEY, source="local")
        config.set("api_style", "openai", source="local")
        config.set("model", server.model_id, source="local")
    return server


def stop() -> bool:
    """Stop the local model and restore the session's client and the settings; False if it was not running."""
    global _route
    from .server import stop_local

    with _lock:
        route, _route = _route, None
        if route is not None:
            for name, (value, source) in route.settings.items():
                if value is None:
                    config.unset(name)
                else:
                    config.set(name, value, source=source)
            for session, previous in route.sessions:
                if session.client is route.client:
                    session.client = previous
            if route.client is not None:
                route.client.close()
    return stop_local()


def routed() -> bool:
    """True while :func:`local` routes this kernel to the local model."""
    return _route is not None


def compass_model() -> str:
    """The Compass model this kernel's requests name when the local model is not answering them.

    While routed, the ``model`` setting holds the local model's id, which Compass does not
    know; this is the value it had before (set in the kernel, else the environment, else
    the default), i.e. what it will be again after :func:`stop`.
    """
    from ..settings import SPECS
    from .server import LOCAL_MODEL_ID

    with _lock:
        route = _route
    if route is None:
        model = str(config.get("model"))
        if model != LOCAL_MODEL_ID:
            return model
    else:
        value, _source = route.settings.get("model", (None, ""))
        if value:
            return str(value)
    spec = SPECS["model"]
    from_env = os.environ.get(spec.env or "", "").strip()
    return str(spec.parse("model", from_env)) if from_env else str(spec.default)


def _falls_back() -> bool:
    """Whether the next request starts the local model: no key, ``offline=local``, the extra installed.

    Not while a cassette is replayed: it answers every request without a key, so starting the
    local model would cost seconds and its notice would name a model that does not answer.
    """
    if routed() or config.get("api_key") or config.get("offline") != "local":
        return False
    from ..store.exchanges import replaying_cassette
    from .server import local_available

    if replaying_cassette():
        return False
    return local_available()  # without it, the client's own "no key" error explains what to do


def ensure_backend() -> None:
    """Without a key and with ``offline=local``, start and use the local model (once).

    The notice that says so waits in the route's dialect for the first request that passes
    validation: shown before a refused request (``-t 5``), it would announce a reply that never comes.
    """
    if not _falls_back():
        return
    server = local()
    with _lock:
        route = _route
        if route is None or route.client is None:
            return
        route.reason = _NO_KEY_FALLBACK
        if isinstance(route.client.dialect, _RoutedDialect):
            route.client.dialect.notice = (
                f"No API key is set, so the local model ({server.model_id}, offline) answers in this kernel. "
                "For Compass: %compass key, then %compass local stop."
            )


def will_answer() -> str | None:
    """The local model's part in this kernel, in words: answering, or about to; None when it has none."""
    with _lock:
        route = _route
    if route is not None and route.client is not None:
        return f"the local model {route.client.model} at {route.client.base_url} ({route.reason})"
    if _falls_back():
        from .server import LOCAL_MODEL_ID

        return f"the local model {LOCAL_MODEL_ID}, started by the first request ({_NO_KEY_FALLBACK})"
    return None


def magic_command(args: list[str]) -> str:
    """``%compass local`` and ``%compass local stop``."""
    if args == ["stop"]:
        return "Local model stopped; settings restored." if stop() else "The local model was not running."
    if args:
        raise ValidationError(f"%compass local takes no argument but 'stop' (got {' '.join(args)!r}).")
    server = local()
    return f"Local model {server.model_id} is answering at {server.base_url}; this kernel's requests go there."
