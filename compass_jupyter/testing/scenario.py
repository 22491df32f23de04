"""Scripted behaviour for the next request(s) the stand-in server receives.

A :class:`Scenario` changes what the server does with one request (or ``times``
requests): answer with an error status, say a given text, call given tools, or
break the stream in a chosen way. Every field is optional; an empty
``Scenario()`` is the default behaviour. Scenarios are queued with
``StandInServer.enqueue(...)`` (or ``POST /_standin/enqueue`` with the same
fields as JSON, the server's ``api-key`` header and ``Content-Type:
application/json``) and consumed first in, first out, one per chat request
that carries the right key (a request refused with 401 takes none).

Stream faults count *payload chunks*: the chunks that carry a piece of the
reply (a content token, a reasoning piece, a tool-call fragment, an audio
piece), not the opening ``prompt_filter_results`` chunk, the ``role`` chunks
or the closing ``finish_reason`` chunks. ``drop_after=2`` sends two tokens and
then cuts the connection. When the reply has fewer payload chunks than the
count, the fault happens right before the closing chunks, so it always happens.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Scenario"]


@dataclass
class Scenario:
    """What the stand-in server does with the next request(s) instead of the default.

    Errors
        ``status``: an HTTP status >= 400 answers with that status and an
        OpenAI-style JSON error (``{"error": {"message", "type", "param", "code"}}``)
        before anything else is checked. ``error_message`` / ``error_type`` /
        ``error_code`` fill that error (sensible defaults per status), and also
        the error event of ``stream_error_after``. ``retry_after`` (seconds, may
        be fractional) is sent as ``Retry-After`` and ``retry-after-ms`` headers.

    Content
        ``text`` replaces the reply text of every choice. ``tokens`` makes a reply
        of exactly that many tokens (cycling through ``text`` when given, else
        through filler words) for benchmarks. ``tool_calls`` is a list of
        ``{"name": ..., "arguments": dict or str, "id"?: ...}`` the reply calls,
        whatever the request says (a string is sent verbatim, so invalid JSON
        can be tested). ``finish_reason`` replaces the finish reason of every
        choice. ``model`` replaces the model id the response names (real
        servers often answer with a dated id such as ``gpt-4o-2024-08-06``).
        ``usage`` forces the usage (a chunk when streaming) on (True) or off
        (False); None follows the request.

    Stream faults (see the module docstring for how chunks are counted)
        ``drop_after``: close the socket after N payload chunks, without the
        terminating zero-length chunk and without ``[DONE]``.
        ``malformed_after``: send ``data: {not json`` after N payload chunks,
        then carry on normally. ``stream_error_after``: send
        ``data: {"error": {...}}`` after N payload chunks, then end the body
        cleanly without ``[DONE]``. ``empty_body``: answer 200 with no body
        at all (as llama.cpp sometimes does).

    Stream shape (all valid SSE that naive parsers get wrong)
        ``delay``: seconds between chunks for this request (overrides the
        server's; a non-streamed reply waits as long as its stream would take).
        ``crlf``: CRLF line endings. ``no_space``: ``data:{...}`` without the
        space. ``keepalive``: ``: keep-alive`` comment lines
        between events. ``split_utf8``: every event that contains a multi-byte
        UTF-8 character is written in two network writes split inside that
        character; an all-ASCII reply text gets `` (café ☕)`` appended so
        there is one.

    ``times``: how many consecutive requests use this scenario (default 1).
    """

    status: int = 200
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    retry_after: float | None = None
    times: int = 1
    text: str | None = None
    tokens: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    model: str | None = None
    usage: bool | None = None
    drop_after: int | None = None
    malformed_after: int | None = None
    stream_error_after: int | None = None
    empty_body: bool = False
    delay: float | None = None
    crlf: bool = False
    no_space: bool = False
    keepalive: bool = False
    split_utf8: bool = False

    def __post_init__(self) -> None:
        _check_int("status", self.status, low=100, high=599)
        _check_int("times", self.times, low=1)
        for name in ("tokens", "drop_after", "malformed_after", "stream_error_after"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, low=0)
        for name in ("retry_after", "delay"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"Scenario.{name} must be a number of seconds, got {value!r}.")
                if value < 0 or not math.isfinite(value):
                    raise ValueError(f"Scenario.{name} must be a finite number >= 0, got {value!r}.")
        for name in ("error_message", "error_type", "error_code", "text", "finish_reason", "model"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"Scenario.{name} must be a string, got {type(value).__name__}.")
        for name in ("empty_body", "crlf", "no_space", "keepalive", "split_utf8"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Scenario.{name} must be true or false.")
        if self.usage is not None and not isinstance(self.usage, bool):
            raise ValueError("Scenario.usage must be true, false or null.")
        if self.tool_calls is not None:
            self.tool_calls = [_check_tool_call(i, call) for i, call in enumerate(self.tool_calls)]

    @property
    def is_error(self) -> bool:
        """True when this scenario answers with an HTTP error instead of a reply."""
        return self.status >= 400

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        """Build a scenario from JSON-like data, refusing unknown field names.

        Raises ``ValueError`` with a message that lists the valid fields.
        """
        if not isinstance(data, dict):
            raise ValueError(f"A scenario must be a JSON object, got {type(data).__name__}.")
        names = field_names()
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"Unknown scenario field(s): {', '.join(unknown)}. Valid fields are: {', '.join(names)}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, as JSON-ready data."""
        defaults = Scenario()
        return {name: getattr(self, name) for name in field_names() if getattr(self, name) != getattr(defaults, name)}


def field_names() -> list[str]:
    """The public field names of :class:`Scenario`, in declaration order."""
    return [f.name for f in dataclasses.fields(Scenario)]


def _check_int(name: str, value: Any, *, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"Scenario.{name} must be an integer, got {value!r}.")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"Scenario.{name} must be {bound}, got {value}.")


def _check_tool_call(index: int, call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not call["name"]:
        raise ValueError(
            f"Scenario.tool_calls[{index}] must be an object with a non-empty 'name' "
            '(e.g. {"name": "get_weather", "arguments": {"city": "Paris"}}).'
        )
    arguments = call.get("arguments", {})
    if not isinstance(arguments, (dict, str)):
        raise ValueError(
            f"Scenario.tool_calls[{index}].arguments must be an object or a string, got {type(arguments).__name__}."
        )
    if "id" in call and not isinstance(call["id"], str):
        raise ValueError(f"Scenario.tool_calls[{index}].id must be a string.")
    return {**call, "arguments": arguments}
