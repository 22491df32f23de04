"""Server-sent events: the ``data`` of each event from a stream of lines.

Only ``data`` matters for chat completions (``event``, ``id`` and ``retry`` fields
are ignored, as are ``:`` comments, which some servers send as keep-alives). A
field without a colon has an empty value; one space after the colon is dropped;
several ``data`` lines of one event are joined with newlines; a blank line ends
an event. An event left open when the body ends is still delivered: a server
that forgets the final blank line has sent its data all the same.

It works on ``httpx.Response.iter_lines()``, which splits CR, LF and CRLF and
decodes UTF-8 across chunk boundaries: the fewest steps between the socket and
the accumulator (this path carries every token of every reply).
"""

from __future__ import annotations

import itertools
from typing import AsyncIterable, AsyncIterator, Iterable, Iterator

__all__ = ["iter_data", "aiter_data"]


class _Events:
    """The event-stream rules, one line at a time (shared by the sync and async readers)."""

    def __init__(self) -> None:
        self.pending: list[str] = []

    def line(self, line: str) -> str | None:
        """Take one line; the data of the event it ends, if it ends one."""
        if not line:
            return self.end()
        if line.startswith("data:"):
            # The common case, without the general split.
            self.pending.append(line[6:] if line.startswith("data: ") else line[5:])
            return None
        name, colon, value = line.lstrip("\ufeff").partition(":")
        if name == "data":
            self.pending.append(value[1:] if colon and value.startswith(" ") else value)
        return None

    def end(self) -> str | None:
        """The data of the event still open, if any."""
        if not self.pending:
            return None
        data, self.pending = "\n".join(self.pending), []
        return data


def iter_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each event in ``lines``."""
    events = _Events()
    for line in itertools.chain(lines, ("",)):  # a last blank line delivers an event left open
        data = events.line(line)
        if data is not None:
            yield data


async def aiter_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """The async twin of :func:`iter_data`."""
    events = _Events()
    async for line in lines:
        data = events.line(line)
        if data is not None:
            yield data
    data = events.end()
    if data is not None:
        yield data
