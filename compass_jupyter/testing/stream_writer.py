"""Writing a streamed reply to the socket: chunked SSE, with a scenario's quirks and faults.

The events come from :func:`~compass_jupyter.testing.wire.stream_events`; the
handler has already sent the response head. :class:`StreamWriter` sends each
event as ``data: <JSON>`` in its own HTTP chunk, then ``data: [DONE]`` and the
zero-length chunk, and on the way applies the scenario's shape (``crlf``,
``no_space``, ``keepalive``, ``split_utf8``, ``delay``) and faults
(``malformed_after``, ``stream_error_after``, ``drop_after``; see
:mod:`~compass_jupyter.testing.scenario` for how payload chunks are counted).
"""

from __future__ import annotations

import functools
import operator
import socket
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from .common import dumps
from .scenario import Scenario
from .wire import StreamEvent

__all__ = ["StreamDropped", "StreamWriter"]


class StreamDropped(Exception):
    """The stream was cut on purpose (``Scenario.drop_after``); the connection is gone."""


class StreamWriter:
    """Writes stream events as chunked SSE, with the scenario's quirks and faults.

    ``error_event`` is the JSON a ``stream_error_after`` fault sends (the
    handler fills it from the scenario, like a scripted 500).
    """

    def __init__(
        self,
        handler: BaseHTTPRequestHandler,
        scenario: Scenario,
        delay: float,
        error_event: dict[str, Any],
    ) -> None:
        self.handler = handler
        self.scenario = scenario
        self.delay = delay
        self.error_event = error_event
        self.eol = b"\r\n" if scenario.crlf else b"\n"
        self.prefix = b"data:" if scenario.no_space else b"data: "
        self.sent_any = False
        faults = [
            (scenario.malformed_after, "malformed"),
            (scenario.stream_error_after, "error"),
            (scenario.drop_after, "drop"),
        ]
        self.faults = [(count, kind) for count, kind in faults if count is not None]

    def send(self, events: list[StreamEvent]) -> None:
        """Write the body; raises :class:`StreamDropped` when a ``drop_after`` fault cut it."""
        payloads = 0
        for event in events:
            if event.kind == "payload":
                if self._faults(functools.partial(operator.ge, payloads)):  # a fault due at or before this count
                    return
                payloads += 1
            elif event.kind in ("finish", "usage"):
                # A count beyond the reply's payloads still fires, right before the closing chunks.
                if self._faults(lambda count: True):
                    return
            self._event(dumps(event.data))
        self._event("[DONE]")
        self._chunk(b"")

    def _faults(self, due: Callable[[int], bool]) -> bool:
        """Fire the faults that are due; True when the stream has ended."""
        fired = [fault for fault in self.faults if due(fault[0])]
        for fault in fired:
            self.faults.remove(fault)
            kind = fault[1]
            if kind == "malformed":
                self._event("{not json")
            elif kind == "error":
                self._event(dumps(self.error_event))
                self._chunk(b"")
                return True
            else:
                self._drop()
        return False

    def _event(self, data: str) -> None:
        if self.sent_any:
            if self.delay:
                time.sleep(self.delay)
            if self.scenario.keepalive:
                self._chunk(b": keep-alive" + self.eol + self.eol)
        self.sent_any = True
        encoded = self.prefix + data.encode("utf-8") + self.eol + self.eol
        if self.scenario.split_utf8:
            cut = next((i for i, byte in enumerate(encoded) if byte >= 0xC0), None)
            if cut is not None:
                self._chunk(encoded[: cut + 1])
                # A pause, so that the halves travel as separate network writes.
                time.sleep(0.005)
                self._chunk(encoded[cut + 1 :])
                return
        self._chunk(encoded)

    def _chunk(self, data: bytes) -> None:
        self.handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))

    def _drop(self) -> None:
        handler = self.handler
        handler.close_connection = True
        try:
            handler.wfile.flush()
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise StreamDropped
