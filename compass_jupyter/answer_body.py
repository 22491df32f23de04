"""What the body of a successful answer is: an event stream, or one JSON document read safely.

The client asks :func:`is_event_stream` before reading a streamed request's answer
and :func:`read_completion` for a whole one. Neither trusts the server: an
unexpected content type, a body that is not JSON, nested too deeply, not an object,
or a 200 carrying only an error becomes a typed error with advice, raised outside
any ``except`` block (a decoder's error would hold the body, where a key may be).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ._exceptions import BadRequestError, StreamError
from .shapes import describe
from .stream import Accumulator, EventReader, server_error

__all__ = ["is_event_stream", "read_completion"]


def is_event_stream(response: httpx.Response) -> bool:
    """Whether a streamed request's answer is an event stream (False: one JSON document; else a StreamError)."""
    content_type = response.headers.get("content-type", "").lower()
    if "text/event-stream" in content_type:
        return True
    # A server that ignores stream=true answers with one JSON document; read it as such.
    if "json" in content_type or not content_type:
        return False
    raise StreamError(
        f"The server answered a streamed request with {content_type!r} instead of an event stream. "
        "Check COMPASS_BASE_URL, or send with stream=False (--no-stream)."
    )


def read_completion(raw: bytes, accumulator: Accumulator) -> dict[str, Any]:
    """One JSON document's answer as a completion object; anything else is a StreamError naming it."""
    reply = accumulator.reply
    if not raw.strip() and reply.request.get("stream"):
        EventReader(accumulator).end()  # raises the "empty stream" error with its advice
    reason = None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        reason = "not JSON"
    except RecursionError:
        reason = "nested too deeply to read"
    if reason is not None:  # raised outside the except block: the decoder's error holds the body
        reply.incomplete = True
        shown = raw[:120].decode("utf-8", "replace")
        raise StreamError(
            f"The server's answer is {reason}: {shown!r}. Check COMPASS_BASE_URL; nothing was added to the history.",
            body=raw[:2000].decode("utf-8", "replace"),
            reply=reply,
            broke_off=False,
        )
    if not isinstance(data, dict):
        reply.incomplete = True
        raise StreamError(
            f"The server's answer is {describe(data)}, not a JSON object. Check COMPASS_BASE_URL; nothing was added "
            "to the history.",
            body=data,
            reply=reply,
            broke_off=False,
        )
    if data.get("error") is not None and not data.get("choices"):
        raise BadRequestError(f"Compass reported an error: {server_error(data['error'])}", body=data)
    return data
