"""Where an exchange happened: this kernel's session id and the notebook's path.

Kept apart from the store itself so the magics can name the notebook at
``%load_ext`` time without importing SQLite.
"""

from __future__ import annotations

import os
import uuid
from typing import Callable

__all__ = ["SESSION_ID", "set_notebook_resolver", "notebook_path"]

# This process's id in the store: the exchanges of one kernel run share it.
SESSION_ID = uuid.uuid4().hex[:12]

_resolver: Callable[[], str | None] | None = None


def set_notebook_resolver(resolver: Callable[[], str | None] | None) -> None:
    """How to learn the notebook's path (the magics know the kernel; the engine does not)."""
    global _resolver
    _resolver = resolver


def notebook_path() -> str | None:
    """The running notebook's path where the kernel knows it, else None."""
    if _resolver is not None:
        try:
            found = _resolver()
        except Exception:  # a resolver is a nicety: it never costs a turn
            found = None
        if found:
            return str(found)
    return os.environ.get("JPY_SESSION_NAME") or None
