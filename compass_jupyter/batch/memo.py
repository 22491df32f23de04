"""The answers of earlier runs in this kernel, so that running a call again sends only what is left.

A run's rows are keyed by what they ask: the call (route, model, every request
field, the system message, attached media) and the row's own prompt. Running
the same call again, after an interrupt, a failure or on more rows, finds the
rows answered before and sends the others. Only answers are kept (a failed row
is asked again), and only for the last :data:`CALLS` calls, so a kernel that
maps many times does not keep every answer forever. A row whose JSON reply did
not parse is marked to be asked again past the replay cache, which would give
the same reply.

Across a kernel restart this memory is gone; the store of every exchange and
its replay cache take over (see :func:`compass_jupyter.batch.map`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Mapping

__all__ = ["ASK_AGAIN", "CALLS", "call_key", "forget", "row_key", "table"]

CALLS = 16  # calls remembered; their answers are the rows' texts, which the results share
ASK_AGAIN = object()  # a row answered with something unusable: send it again, bypassing the replay cache

_DELIVERY = ("messages", "stream", "stream_options")  # what a row adds, or how an answer travels
_calls: OrderedDict[bytes, dict[bytes, Any]] = OrderedDict()
_lock = threading.Lock()


def call_key(url: str, body: Mapping[str, Any], head: list[dict[str, Any]], user: Mapping[str, Any]) -> bytes:
    """What every row of a call shares: where it goes, the fields, the messages before the row's, the rest of its message."""
    asked = {name: value for name, value in body.items() if name not in _DELIVERY}
    shared = {"url": url, "body": asked, "head": head, "user": user}
    text = json.dumps(shared, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).digest()


def row_key(call: bytes, prompt: str) -> bytes:
    return hashlib.blake2b(prompt.encode("utf-8", "surrogatepass"), digest_size=16, key=call[:32]).digest()


def table(call: bytes) -> dict[bytes, Any]:
    """The answers of ``call`` so far (made empty the first time); the latest calls are kept."""
    with _lock:
        answers = _calls.pop(call, None)
        if answers is None:
            answers = {}
        _calls[call] = answers
        while len(_calls) > CALLS:
            _calls.popitem(last=False)
        return answers


def forget() -> None:
    """Forget every answer (as a kernel restart does)."""
    with _lock:
        _calls.clear()
