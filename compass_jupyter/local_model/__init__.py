"""The local model, offline: SmolLM2-135M on llama.cpp. ``cj.local()``, ``%compass local [stop]``.

- :mod:`.server` starts and stops the llama.cpp server (a child process on loopback);
- :mod:`.dialect` is how that server reads a request, and what SmolLM2 cannot do;
- this module routes the kernel to it: :func:`local` gives this kernel's session
  a :class:`~compass_jupyter.Client` with the llama.cpp dialect, points the
  kernel's settings at the server (openai style, the local model's id), and
  :func:`stop` puts back what was there before.

With the setting ``offline=local`` (``COMPASS_OFFLINE=local``, which ``./dev lab``
and Binder set), a kernel that has no key starts it on its first request
instead of failing (:func:`ensure_backend`).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import CompassWarning, ValidationError
from ..settings import config

if TYPE_CHECKING:
    from ..client import Client
    from ..conversation import Session
    from .server import LocalModelServer

__all__ = ["local", "stop", "routed", "ensure_backend", "magic_command"]

_ROUTED_SETTINGS = ("base_url", "api_key", "api_style", "model")
_NO_KEY = "local-model-no-key"  # llama.cpp checks no key; a placeholder keeps the "no key" error away


@dataclass
class _Route:
    """What :func:`local` put in place, and what it replaced (for :func:`stop`)."""

    settings: dict[str, tuple[Any, str]]
    client: Client | None = None
    sessions: list[tuple[Session, Client | None]] = field(default_factory=list)


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
    from .dialect import LlamaCppDialect
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
                dialect=LlamaCppDialect(server.model_id),
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


def ensure_backend() -> None:
    """Without a key and with ``offline=local``, start and use the local model (once)."""
    if routed() or config.get("api_key") or config.get("offline") != "local":
        return
    from .server import local_available

    if not local_available():
        return  # the client's own "no key" error explains what to do
    warnings.warn(
        "No COMPASS_API_KEY is set, so this kernel uses the local model (SmolLM2-135M on llama.cpp, offline). "
        "Set a key (%compass key) and run %compass local stop to talk to Compass.",
        CompassWarning,
        stacklevel=3,
    )
    local()


def magic_command(args: list[str]) -> str:
    """``%compass local`` and ``%compass local stop``."""
    if args == ["stop"]:
        return "Local model stopped; settings restored." if stop() else "The local model was not running."
    if args:
        raise ValidationError(f"%compass local takes no argument but 'stop' (got {' '.join(args)!r}).")
    server = local()
    return f"Local model {server.model_id} is answering at {server.base_url}; this kernel's requests go there."
