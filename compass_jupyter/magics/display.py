"""Every message the magics show goes through here, in HTML and plain renderings.

- :func:`show` displays a mime bundle (tables, transcripts, confirmations).
- :func:`info` is a short confirmation line.
- :func:`warning` is a stderr line: the cell goes on (an unknown model, a reserved parameter).
- :func:`error` turns a :class:`CompassError` into IPython's ``UsageError``, the one
  exception IPython shows as its message alone, without a traceback.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

from IPython.core.error import UsageError

__all__ = ["error", "info", "show", "text", "warning"]


def show(bundle: Mapping[str, Any], *, metadata: Mapping[str, Any] | None = None) -> None:
    """Display a ready mime bundle as one output."""
    from IPython.display import display

    display(dict(bundle), raw=True, metadata=dict(metadata) if metadata else None)


def info(message: str, *, detail: str | None = None) -> None:
    """A one-line confirmation (HTML with a plain-text twin)."""
    from ..rendering.notices import message_bundle

    show(message_bundle(message, detail=detail))


def text(message: str) -> None:
    """Preformatted text such as a help page."""
    from ..rendering.notices import preformatted_bundle

    show(preformatted_bundle(message))


def warning(message: str) -> None:
    """A warning: one stderr line, the cell carries on."""
    sys.stderr.write(f"Warning: {message}\n")
    sys.stderr.flush()


def error(exc: BaseException | str) -> UsageError:
    """The exception to raise for a problem the user can fix: shown as its message, without a traceback."""
    return UsageError(str(exc))
