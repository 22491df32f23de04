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

from typing import AsyncIterable, AsyncIterator, Iterable, Iterator

__all__ = ["iter_data", "aiter_data"]


def _field(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    if colon and value.startswith(" "):
        value = value[1:]
    return name, value


def iter_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each event in ``lines``."""
    pending: list[str] = []
    for line in lines:
        if not line:
            if pending:
                yield "\n".join(pending)
                pending = []
            continue
        if line.startswith("data:"):
            # The common case, without the general split.
            pending.append(line[6:] if line.startswith("data: ") else line[5:])
            continue
        name, value = _field(line.lstrip("\ufeff"))
        if name == "data":
            pending.append(value)
    if pending:
        yield "\n".join(pending)


async def aiter_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """The async twin of :func:`iter_data`."""
    pending: list[str] = []
    async for line in lines:
        if not line:
            if pending:
                yield "\n".join(pending)
                pending = []
            continue
        if line.startswith("data:"):
            pending.append(line[6:] if line.startswith("data: ") else line[5:])
            continue
        name, value = _field(line.lstrip("\ufeff"))
        if name == "data":
            pending.append(value)
    if pending:
        yield "\n".join(pending)
