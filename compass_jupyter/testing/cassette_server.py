"""Serving a cassette over HTTP: the stand-in answers every chat request with what was recorded.

``StandInServer(cassette=PATH)`` (or ``python -m compass_jupyter.testing
--cassette PATH``) replays a cassette recorded by compass_jupyter (see
:mod:`compass_jupyter.store.cassette`) to any client that speaks the Compass
wire format: our own client without a cassette setting, another language's SDK,
curl. What each request gets:

- A request is matched by its JSON body exactly as :meth:`Cassette.answer
  <compass_jupyter.store.cassette.Cassette.answer>` matches it (canonical JSON
  without ``stream`` and ``stream_options``), on either route; the same request
  recorded several times answers with its recordings in order, then repeats the
  last one.
- A recorded completion answers a streamed request (``"stream": true``) as
  ``text/event-stream``, cut into chunks by :func:`~compass_jupyter.store.records.chunks`
  (one per recorded token, ending with a usage chunk when usage was recorded)
  and closed by ``data: [DONE]``; a plain request gets the completion document.
- A recorded error with an HTTP status answers with that status and a
  Compass-shaped body (``{"error": {"message", "type", "param", "code"}}``)
  carrying the recorded message. An error recorded without a status (a stream
  that broke off or sent nonsense) is what arrived after a 200: an error event
  in a stream, or a 200 JSON body holding only ``error``.
- A request the cassette lacks is a 400 whose message is the
  :class:`~compass_jupyter.CassetteError` text, naming the nearest recorded
  request and what differs (code ``cassette_miss``). Not 404: Compass says 404
  for an unknown deployment, and clients turn it into "check the model id"
  advice that would send the reader the wrong way; a 400 is shown as "the
  request was rejected" followed by the message, and no client retries it.

What the stand-in otherwise checks about a request (the model list, the fields)
does not apply: the real server judged the request when it was recorded. The
key, the ``api-version`` of the Azure route, a JSON object body and any queued
:class:`~compass_jupyter.testing.Scenario` still do (a scripted error answers
first; a scenario's stream quirks and faults shape a replayed stream).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._exceptions import CassetteError
from ..store.cassette import Cassette
from ..store.records import chunks
from .common import error_body
from .wire import StreamEvent

__all__ = ["CassetteReplay", "ReplayAnswer", "MISS_STATUS", "MISS_CODE"]

#: The status of a request the cassette holds no answer for (see the module's docstring for why 400).
MISS_STATUS = 400
#: The ``error.code`` of that answer, so a script can tell a miss from a recorded 400.
MISS_CODE = "cassette_miss"


@dataclass(frozen=True)
class ReplayAnswer:
    """What to send for one request: pure data, so the HTTP handler only writes it.

    ``payload`` is the JSON document of a plain answer (a completion or an error
    body). ``events`` is set for a streamed answer: the SSE events to send after
    a 200 head (``[DONE]`` is the writer's to add); ``payload`` is then the
    completion they were cut from.
    """

    status: int
    payload: dict[str, Any]
    events: list[StreamEvent] | None = None


class CassetteReplay:
    """A cassette read for replay, answering request bodies for the stand-in's handler.

    Reading happens here, once: a missing, unreadable, truncated or newer file
    raises :class:`~compass_jupyter.CassetteError` before any port is bound.
    Safe to use from the handler's threads (the cassette keeps its own lock).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.cassette = Cassette(path, mode="replay")

    @property
    def path(self) -> Path:
        return self.cassette.path

    def __len__(self) -> int:
        """How many exchanges the cassette recorded."""
        return len(self.cassette.interactions)

    def __repr__(self) -> str:
        return f"<CassetteReplay {str(self.path)!r} ({len(self)} exchanges)>"

    def respond(self, body: dict[str, Any]) -> ReplayAnswer:
        """The answer to this request body, by the rules of the module's docstring."""
        try:
            response = self.cassette.answer(body)
        except CassetteError as miss:
            return ReplayAnswer(MISS_STATUS, error_body(miss.message, code=MISS_CODE))
        stream = body.get("stream") is True
        completion = response.get("completion")
        if isinstance(completion, dict):
            return self._completion(completion, stream)
        error = response.get("error")
        # The server's own words when they were recorded; the client's message wraps them with advice.
        message = (error.get("server_message") or error.get("message")) if isinstance(error, dict) else None
        if not isinstance(message, str):
            return self._unreadable("a response with neither a completion nor an error")
        status = response.get("status")
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
            return ReplayAnswer(status, _error_payload(status, message))
        return _after_200(message, stream)

    def _completion(self, completion: dict[str, Any], stream: bool) -> ReplayAnswer:
        if not stream:
            return ReplayAnswer(200, completion)
        try:
            # Cut now, not while writing: a malformed recording is then a clean 500, not half a stream.
            events = [StreamEvent(_kind(chunk), chunk) for chunk in chunks(completion)]
        except (AttributeError, TypeError, ValueError):
            return self._unreadable("a completion that cannot be cut into stream chunks")
        return ReplayAnswer(200, completion, events)

    def _unreadable(self, what: str) -> ReplayAnswer:
        # The recording is at fault, not the request: a server error, as Compass says for its own failures.
        message = (
            f"The cassette {self.path} holds {what} for this request. "
            "Record it again with COMPASS_CASSETTE_MODE=record (or %compass record PATH) against a server."
        )
        return ReplayAnswer(500, error_body(message, error_type="server_error"))


def _kind(chunk: dict[str, Any]) -> str:
    """The stand-in's name for a chunk, so a queued scenario's faults count replayed chunks as its own."""
    choices = chunk.get("choices") or []
    if not choices:
        return "usage"
    first = choices[0] if isinstance(choices[0], dict) else {}
    if "finish_reason" in first:
        return "finish"
    if (first.get("delta") or {}).get("role"):
        return "role"
    return "payload"


def _error_payload(status: int, message: str) -> dict[str, Any]:
    """The body Compass sends with ``status``: its type by the status class, the status as the code."""
    if status == 429:
        error_type = "rate_limit_error"
    elif status in (408, 504):
        error_type = "timeout"
    elif status >= 500:
        error_type = "server_error"
    else:
        error_type = "invalid_request_error"
    return error_body(message, code=str(status), error_type=error_type)


def _after_200(message: str, stream: bool) -> ReplayAnswer:
    """An error recorded without a status: the answer had begun (200) and then went wrong."""
    payload = error_body(message, error_type="server_error")
    if stream:
        return ReplayAnswer(200, payload, [StreamEvent("payload", payload)])
    return ReplayAnswer(200, payload)
