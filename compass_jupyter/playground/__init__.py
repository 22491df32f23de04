"""The widget playground: pick a model, set parameters, chat, compare, copy the settings as a cell.

``cj.Playground()`` as the last value of a cell shows it (``%compass playground``
too). It talks through the kernel's own :func:`~compass_jupyter.conversation.session`,
so a conversation started with ``%%compass`` or ``cj.chat`` continues here and
the other way round, and ``%compass history`` lists what was said here.

One job per module:

- :mod:`.controls`: the parameter controls, made from the fields table (plus a
  few hand-written ones), each with its "send" box and the catalog's verdict on
  the chosen model.
- :mod:`.panel`: :class:`Playground` itself, its layout and its buttons (Send,
  Stop, Reset, Compare, Copy as cell).
- :mod:`.transcript`: the conversation as widgets, following the session.
- :mod:`.compare`: compare mode's view inside the transcript and its request.
- :mod:`.running`: a request run off the kernel's loop, so Stop works while a
  reply streams, and the client through which Stop closes the connection at once.
- :mod:`.status`: the status line while a turn runs (waiting, who answered, writing).
- :mod:`.snapshot`: the static form of the panel (settings and conversation) that a
  saved notebook shows where the widget cannot be drawn.

Replies render with the same live view as ``%%compass``. Widget values set from
the worker thread reach the front end (ipykernel's iopub is thread-safe);
rebuilding the transcript is moved to the loop's thread.
"""

from __future__ import annotations

from .controls import AUDIO_OUTPUT_MODELS, unsupported_reason
from .panel import Playground

__all__ = ["Playground", "AUDIO_OUTPUT_MODELS", "unsupported_reason"]
