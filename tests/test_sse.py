"""The SSE reader: the data of each event, as the event-stream format defines it."""

from __future__ import annotations

import asyncio

import pytest

from compass_jupyter.sse import aiter_data, iter_data

CASES = [
    pytest.param(["data: a", "", "data: b", ""], ["a", "b"], id="two-events"),
    pytest.param(["data:a", ""], ["a"], id="no-space"),
    pytest.param(["data:  a", ""], [" a"], id="only-one-space-dropped"),
    pytest.param(["data: a", "data: b", ""], ["a\nb"], id="multi-line"),
    pytest.param([": keep-alive", "", "data: a", ""], ["a"], id="comment"),
    pytest.param(["event: message", "id: 7", "retry: 10", "data: a", ""], ["a"], id="other-fields"),
    pytest.param(["data", ""], [""], id="field-without-colon"),
    pytest.param(["", "", "data: a", "", ""], ["a"], id="blank-lines"),
    pytest.param(["data: a"], ["a"], id="open-at-the-end"),
    pytest.param(["\ufeffdata: a", ""], ["a"], id="byte-order-mark"),
    pytest.param(["dat: a", "datas: b", ""], [], id="not-data"),
]


@pytest.mark.parametrize("lines, expected", CASES)
def test_iter_data(lines, expected):
    assert list(iter_data(lines)) == expected


@pytest.mark.parametrize("lines, expected", CASES)
def test_aiter_data_reads_the_same(lines, expected):
    async def lines_async():
        for line in lines:
            yield line

    async def collect():
        return [data async for data in aiter_data(lines_async())]

    assert asyncio.run(collect()) == expected
