"""compass_jupyter: Core42 Compass chat models in Jupyter.

``%load_ext compass_jupyter`` registers ``%%compass`` and ``%compass``. The
Python API (``cj.chat``, ``cj.session``, ``cj.Client``, ...) uses the same
engine. Names are imported on first use so that loading the extension stays
cheap: httpx, ipywidgets and the rest load when a request or a widget needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "CompassError": "._exceptions",
    "ConfigError": "._exceptions",
    "ValidationError": "._exceptions",
    "ToolError": "._exceptions",
    "StoreError": "._exceptions",
    "CassetteError": "._exceptions",
    "APIError": "._exceptions",
    "AuthenticationError": "._exceptions",
    "NotFoundError": "._exceptions",
    "BadRequestError": "._exceptions",
    "RateLimitError": "._exceptions",
    "ServerError": "._exceptions",
    "APIConnectionError": "._exceptions",
    "APITimeoutError": "._exceptions",
    "StreamError": "._exceptions",
    "CompassWarning": "._exceptions",
    "Client": ".client",
    "Reply": ".reply",
    "Choice": ".reply",
    "Usage": ".reply",
    "TokenLogprob": ".reply",
    "ToolCall": ".reply",
    "Audio": ".reply",
    "Latency": ".reply",
    "Session": ".conversation",
    "session": ".conversation",
    "chat": ".conversation",
    "config": ".settings",
    "local": ".local_model",
    "Playground": ".playground",
    "map": ".batch",
    "RowError": ".batch",
    "log": ".store",
}

__all__ = sorted(_EXPORTS) + ["load_ipython_extension", "unload_ipython_extension", "__version__"]

if TYPE_CHECKING:
    from ._exceptions import *  # noqa: F403
    from .batch import RowError, map
    from .client import Client
    from .conversation import Session, chat, session
    from .local_model import local
    from .reply import Audio, Choice, Latency, Reply, TokenLogprob, ToolCall, Usage
    from .settings import config
    from .store import log


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'compass_jupyter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext compass_jupyter``: register the magics and the ``Compass`` configurable."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)
