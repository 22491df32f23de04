"""Routing this kernel to the local model: ``cj.local()``, ``%compass local [stop]``.

Starting the llama.cpp server is :mod:`compass_jupyter.local_model`'s job; this
module points the kernel's settings at it (openai style, the local model's id)
and puts back what was there before when it stops. With the setting
``offline=local`` (``COMPASS_OFFLINE=local``, which ``./dev lab`` and Binder set),
a kernel that has no key starts it on its first request instead of failing.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

from ._exceptions import CompassWarning
from .settings import config

__all__ = ["local", "stop", "ensure_backend", "magic_command"]

_ROUTED = ("base_url", "api_key", "api_style", "model")
_saved: dict[str, tuple[Any, str]] = {}
_lock = threading.Lock()


def llama_cpp_body(body: dict[str, Any]) -> dict[str, Any]:
    """The same request in the dialect llama.cpp's server understands.

    It reads ``seed`` (not ``random_seed``), refuses an assistant message whose
    content is null next to ``tool_calls``, and cannot join a list of text parts.
    """
    from .client import null_content_as_empty
    from .local_model import LOCAL_MODEL_ID

    _refuse_what_it_cannot_do(body)
    adapted = null_content_as_empty(body)
    if adapted.get("model") != LOCAL_MODEL_ID:
        # llama.cpp answers for any id; say which model really answered.
        adapted["model"] = LOCAL_MODEL_ID
    if "random_seed" in adapted:
        adapted["seed"] = adapted.pop("random_seed")
    messages = []
    for message in adapted.get("messages", []):
        message = dict(message)
        content = message.get("content")
        if isinstance(content, list) and all(p.get("type") == "text" for p in content):
            message["content"] = "\n".join(p.get("text", "") for p in content)
        messages.append(message)
    adapted["messages"] = messages
    return adapted


def _refuse_what_it_cannot_do(body: dict[str, Any]) -> None:
    """SmolLM2 reads and writes text only; say so before sending rather than fail obscurely."""
    from ._exceptions import ValidationError

    fix = "Remove it, or set a key (%compass key) and run %compass local stop to use Compass."
    for message in body.get("messages", []):
        content = message.get("content")
        kinds = {p.get("type") for p in content if isinstance(p, dict)} if isinstance(content, list) else set()
        if kinds & {"image_url", "input_audio"}:
            what = "images" if "image_url" in kinds else "audio"
            raise ValidationError(f"The local model (SmolLM2-135M) reads text only, not {what}. {fix}")
    if "audio" in (body.get("modalities") or []):
        raise ValidationError(f"The local model (SmolLM2-135M) cannot speak: it has no audio output (--voice). {fix}")
    if (body.get("n") or 1) > 1:
        raise ValidationError(f"The local model gives one choice per request; n={body['n']} is not possible. {fix}")


def local(**server_options: Any) -> Any:
    """Start the local model (once) and route this kernel's requests to it; returns the server."""
    from .client import register_body_adapter
    from .local_model import LOCAL_MODEL_ID, start_local

    server = start_local(**server_options)
    register_body_adapter(server.base_url, llama_cpp_body)
    with _lock:
        if not _saved:
            for name in _ROUTED:
                _saved[name] = (config.get(name) if config.is_set(name) else None, config.source(name))
        config.set("base_url", server.base_url, source="local")
        # llama.cpp checks no key; a placeholder keeps the client's "no key" error away.
        config.set("api_key", "local-model-no-key", source="local")
        config.set("api_style", "openai", source="local")
        config.set("model", LOCAL_MODEL_ID, source="local")
    return server


def stop() -> bool:
    """Stop the local model and restore the settings it replaced; False if it was not running."""
    from .client import unregister_body_adapter
    from .local_model import current_local, stop_local

    server = current_local()
    if server is not None:
        unregister_body_adapter(server.base_url)
    with _lock:
        for name, (value, source) in _saved.items():
            if value is None:
                config.unset(name)
            else:
                config.set(name, value, source=source)
        _saved.clear()
    return stop_local()


def routed() -> bool:
    return bool(_saved)


def ensure_backend() -> None:
    """Without a key and with ``offline=local``, start and use the local model (once)."""
    if routed() or config.get("api_key") or config.get("offline") != "local":
        return
    from .local_model import local_available

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
    from ._exceptions import ValidationError

    if args == ["stop"]:
        return "Local model stopped; settings restored." if stop() else "The local model was not running."
    if args:
        raise ValidationError(f"%compass local takes no argument but 'stop' (got {' '.join(args)!r}).")
    server = local()
    return f"Local model {server.model_id} is answering at {server.base_url}; this kernel's requests go there."
