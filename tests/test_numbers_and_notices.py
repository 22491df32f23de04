"""Numbers that agree and notices that are true.

- Usage a server does not report is counted from what arrived and marked as counted
  (``Scenario(usage=False)`` plays such a server, as llama.cpp is in streams); the
  usage table keeps its columns, bars and totals.
- The live first-token time is the one the finished reply keeps.
- ``%compass models`` explains its marks instead of showing "?".
- The no-key notice of the local route is one quiet line, shown only before a request
  that really goes (the stand-in plays the local model's server).
- ``%compass config`` says what will answer.

Everything goes through real sockets to the stand-in server, and the magics run in a
real IPython shell.
"""

from __future__ import annotations

import json
import math
import re
import time
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from test_magics import Cell, ok, run  # the shell harness: what a cell showed

import compass_jupyter as cj
from compass_jupyter import catalog, magics
from compass_jupyter.client import Client
from compass_jupyter.conversation import Turn
from compass_jupyter.counting import CHARS_PER_TOKEN, estimate_prompt_tokens
from compass_jupyter.local_model import LocalModelNotice, routed, stop
from compass_jupyter.local_model.server import LOCAL_MODEL_ID
from compass_jupyter.rendering import status, usage
from compass_jupyter.reply import Usage
from compass_jupyter.settings import config
from compass_jupyter.stream import Delta
from compass_jupyter.testing import Scenario, StandInServer
from compass_jupyter.views.widget import LiveReplyView

ASK = [{"role": "user", "content": "Plan a short trip to the sea, please."}]


def text_of(html_value: str) -> str:
    """What a reader sees of some HTML."""
    return unescape(re.sub(r"<[^>]+>", "", html_value))


# --------------------------------------------------------------------------- a shell running the magics


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    sh = InteractiveShell.instance()
    magics.load(sh)
    yield sh
    magics.unload(sh)


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInServer]:
    """No key, ``offline=local``, and the stand-in in the local model's place (any key, a model id it knows)."""
    from compass_jupyter.local_model import server as server_module

    with StandInServer(key="") as standin:
        fake = SimpleNamespace(base_url=standin.base_url, model_id="gpt-4o")
        monkeypatch.setattr(server_module, "start_local", lambda **options: fake)
        monkeypatch.setattr(server_module, "stop_local", lambda: True)
        monkeypatch.setattr(server_module, "local_available", lambda: True)
        monkeypatch.setenv("COMPASS_OFFLINE", "local")
        try:
            yield standin
        finally:
            stop()


# --------------------------------------------------------------------------- usage counted from the stream


@pytest.fixture(scope="module")
def server() -> Iterator[StandInServer]:
    with StandInServer() as running:
        yield running


@pytest.fixture
def client(server: StandInServer) -> Iterator[Client]:
    with Client(base_url=server.base_url, api_key=server.key, max_retries=0) as made:
        yield made


def test_a_stream_without_usage_is_counted_token_by_token_and_marked(client: Client, server: StandInServer) -> None:
    pieces: list[str] = []
    server.enqueue(Scenario(usage=False))
    reply = client.chat(ASK, on_delta=lambda d: pieces.append(d.text) if d.text else None)
    counted = reply.usage
    assert counted is not None and counted.counted
    assert counted.completion_tokens == len(pieces) > 3  # one token an event, as such servers send them
    assert counted.prompt_tokens == estimate_prompt_tokens(server.last_request.body)
    assert counted.total_tokens == counted.prompt_tokens + counted.completion_tokens
    # The same request with usage reported: the same completion count, no mark.
    reported = client.chat(ASK).usage
    assert reported is not None and not reported.counted
    assert reported.completion_tokens == counted.completion_tokens
    assert "counted" not in reported.summary() and "≈" not in reported.summary()
    # The estimate is in the reported count's range for a short English prompt.
    assert reported.prompt_tokens is not None and 0.5 < counted.prompt_tokens / reported.prompt_tokens < 2


def test_logprobs_entries_count_exactly_and_a_whole_answer_by_its_length(client: Client, server: StandInServer) -> None:
    server.enqueue(Scenario(usage=False))
    reply = client.chat(ASK, logprobs=True, top_logprobs=2)
    assert reply.logprobs and reply.usage is not None and reply.usage.counted
    assert reply.usage.completion_tokens == len(reply.logprobs)
    server.enqueue(Scenario(usage=False))
    whole = client.chat(ASK, stream=False)
    assert whole.usage is not None and whole.usage.counted
    assert whole.usage.completion_tokens == math.ceil(len(whole.text) / CHARS_PER_TOKEN)


def test_a_reply_that_broke_off_counts_what_arrived(client: Client, server: StandInServer) -> None:
    server.enqueue(Scenario(usage=False, drop_after=3))
    with pytest.raises(cj.StreamError) as caught:
        client.chat(ASK)
    partial = caught.value.reply
    assert partial is not None and partial.usage is not None and partial.usage.counted
    assert partial.usage.completion_tokens == 3


def test_a_record_of_counted_usage_reads_back_counted() -> None:
    from compass_jupyter.reply import Reply
    from compass_jupyter.stream import Accumulator

    accumulator = Accumulator(Reply(request={"messages": ASK}))
    usage_doc = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "counted": True}
    accumulator.feed_completion({"choices": [{"message": {"content": "Hi"}}], "usage": usage_doc})
    kept = accumulator.finish().usage
    assert kept == Usage(12, 3, 15, raw=usage_doc, counted=True)


def test_the_prompt_estimate_is_the_documented_one() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "x" * 40},
            {"role": "user", "content": [{"type": "text", "text": "y" * 7}, {"type": "image_url", "image_url": {}}]},
        ]
    }
    assert estimate_prompt_tokens(body) == math.ceil(47 / 4) + 2 * 4
    assert estimate_prompt_tokens({}) == 0 and estimate_prompt_tokens({"messages": "nonsense"}) == 0


def test_counted_usage_reads_the_same_in_every_status_line(client: Client, server: StandInServer) -> None:
    server.enqueue(Scenario(usage=False))
    reply = client.chat(ASK)
    u = reply.usage
    assert u is not None
    line = reply.status_line()
    assert (
        f"≈ {u.prompt_tokens} in · {u.completion_tokens} out · {u.total_tokens} total (counted, not reported)" in line
    )
    html = status.status_html(reply)
    assert "≈ counted, not reported" in text_of(html) and f"prompt {u.prompt_tokens}" in text_of(html)
    assert 'title="The server reported no usage' in html and "usage not reported" not in text_of(html)
    bundle = reply._repr_mimebundle_()
    assert all("counted, not reported" in bundle[mime] for mime in ("text/markdown", "text/plain"))


def test_a_sum_with_a_counted_part_is_marked_counted() -> None:
    assert (Usage(1, 2, 3) + Usage(4, 5, 9, counted=True)).counted
    assert Usage.total([Usage(4, 5, 9, counted=True), Usage(1, 2, 3)]).counted  # type: ignore[union-attr]
    assert not (Usage(1, 2, 3) + Usage(1, 2, 3)).counted
    assert Usage(counted=None).counted is False  # type: ignore[arg-type]  # an unreadable mark, read back


def test_usage_in_the_shell_keeps_its_columns_bars_and_totals(
    shell: InteractiveShell, compass_server: StandInServer
) -> None:
    compass_server.enqueue(Scenario(usage=False))
    ok(shell, "%%compass\nWhat is a list comprehension?")
    ok(shell, "%%compass\nAnd a generator?")
    compass_server.enqueue(Scenario(usage=False))
    ok(shell, "%%compass\nAnd a set comprehension?")
    bundle = ok(shell, "%compass usage").visible[-1]
    turns = cj.session().turns
    rows = usage.usage_rows(turns, cj.session().usage)
    assert [r[3:6] for r in rows[:3]] == [
        [f"≈{t.usage.prompt_tokens}", f"≈{t.usage.completion_tokens}", f"≈{t.usage.total_tokens}"]
        if t.usage.counted
        else [str(t.usage.prompt_tokens), str(t.usage.completion_tokens), str(t.usage.total_tokens)]
        for t in turns
        if t.usage is not None
    ]
    assert [t.usage.counted for t in turns if t.usage is not None] == [True, False, True]
    total = rows[-1]
    assert total[0] == "total" and all(v.startswith("≈") and v[1:].isdigit() for v in total[3:6])
    assert int(total[5][1:]) == sum(t.usage.total_tokens for t in turns if t.usage is not None)
    header = bundle["text/plain"].splitlines()[1]
    assert re.split(r"\s{2,}", header) == list(usage.USAGE_COLUMNS)
    assert "n/a" not in bundle["text/plain"]
    page = bundle["text/html"]
    assert page.count('class="compass-usage-bar"') == 3 and "bars:" in page
    note = "≈ counted, not reported: 2 request(s) got no usage from the server"
    assert all(note in shown for shown in (bundle["text/plain"], bundle["text/markdown"], text_of(page)))


def test_a_table_without_any_usage_says_n_a_and_shows_no_empty_legend() -> None:
    turns = [Turn(model="m", usage=None, finish_reason="stop"), Turn(model="m", usage=None, finish_reason="stop")]
    rows = usage.usage_rows(turns, None)
    assert rows[-1][:6] == ["total", "2 requests", "", "n/a", "n/a", "n/a"]
    page = usage.usage_html(turns, None)
    assert "compass-usage-bar" not in page and "bars:" not in page
    cached = [Turn(model="m", usage=Usage(1, 2, 3), cached=True)]
    assert usage.usage_rows(cached, None)[-1][3:6] == ["0", "0", "0"]  # nothing was spent


# --------------------------------------------------------------------------- one first-token time


def test_the_live_first_token_time_is_the_final_one(client: Client, server: StandInServer) -> None:
    with capture_output():
        view = LiveReplyView()
        time.sleep(0.4)  # what happens between the view's start and the request: checks, starting a local model
        seen: list[str] = []

        def observe(delta: Delta) -> None:
            view.on_delta(delta)
            seen.append(text_of(view._status.value))

        server.enqueue(Scenario(delay=0.02))
        reply = client.chat(ASK, on_delta=observe)
        view.finish(reply)
    ttft, total = reply.latency.ttft, reply.latency.total
    assert ttft is not None and total is not None and total < 0.4
    live = [re.search(r"first token (\d+\.\d\d)s · (\d+\.\d)s", line) for line in seen]
    found = [m for m in live if m]
    assert found, seen
    assert {m.group(1) for m in found} == {f"{ttft:.2f}"}
    assert all(float(m.group(2)) <= total + 0.05 for m in found)  # elapsed from the request's start too
    assert f"first token {ttft:.2f}s" in text_of(view._status.value)


def test_each_round_of_a_turn_is_timed_on_its_own(client: Client, server: StandInServer) -> None:
    with capture_output():
        view = LiveReplyView()
        first = client.chat(ASK, on_delta=view.on_delta)
        time.sleep(0.3)  # a tool running between two rounds
        seen: list[str] = []

        def observe(delta: Delta) -> None:
            view.on_delta(delta)
            seen.append(text_of(view._status.value))

        second = client.chat(ASK, on_delta=observe)
        view.finish(second)
    assert first is not second
    timed = [m for m in (re.search(r"first token (\d+\.\d\d)s · (\d+\.\d)s", line) for line in seen) if m]
    assert timed and {m.group(1) for m in timed} == {f"{second.latency.ttft:.2f}"}
    assert all(float(m.group(2)) < 0.3 for m in timed)  # not counting the first round and the tool's time


# --------------------------------------------------------------------------- the catalog's legend


def test_compass_models_has_a_legend_instead_of_question_marks(shell: InteractiveShell) -> None:
    bundle = ok(shell, "%compass models").visible[-1]
    rows = catalog.table()
    flags = {row[c] for row in rows for c in ("image in", "audio in", "audio out", "tools", "reasoning")}
    assert flags == set(catalog.MARKS) == {"yes", "no", "—"}
    for shown in (bundle["text/plain"], bundle["text/markdown"], text_of(bundle["text/html"])):
        assert "?" not in shown
        for mark, meaning in catalog.MARKS.items():
            assert f"{mark} = {meaning}" in shown
    assert "— = not documented for this model" in bundle["text/plain"].splitlines()[-2]


# --------------------------------------------------------------------------- the local model's notice


def test_the_no_key_notice_is_one_quiet_line_and_waits_for_a_request_that_goes(
    shell: InteractiveShell, fallback: StandInServer
) -> None:
    refused = run(shell, "%%compass -t 5\nHi")
    assert not refused.success and "temperature" in refused.stderr
    assert "local model" not in refused.stderr + refused.text
    assert fallback.requests == []

    fallback.enqueue(Scenario(usage=False))
    cell = ok(shell, "%%compass\nHi")
    assert len(fallback.requests) == 1
    notice, reply = cell.visible
    assert "local model" in notice["text/plain"] and "\n" not in notice["text/plain"]
    assert "compass-message" in notice["text/html"] and "compass-warning" not in notice["text/html"]
    assert "local model" not in cell.stderr and "Warning" not in cell.stderr
    assert "(counted, not reported)" in reply["text/plain"]

    again = ok(shell, "%%compass\nAnd again")
    assert "local model" not in again.text + again.stderr  # said once


def test_a_replayed_cassette_answers_without_starting_the_local_model(
    shell: InteractiveShell, fallback: StandInServer, tmp_path: Path
) -> None:
    cassette = tmp_path / "answers.cassette.json"
    ok(shell, f"%compass record {cassette}")
    config.set("api_key", "sk-recording-key-0000", source="test")  # recorded from a server that wants a key
    config.set("base_url", fallback.base_url, source="test")
    ok(shell, "%%compass\nHi")
    ok(shell, "%compass record stop")
    config.unset("api_key")
    config.unset("base_url")
    ok(shell, f"%compass set cassette={cassette} cassette_mode=replay")
    assert _answers(ok(shell, "%compass config")) == "the cassette answers.cassette.json (replayed: nothing is sent)"
    cell = ok(shell, "%%compass --new\nHi")
    assert not routed() and "local model" not in cell.text + cell.stderr
    assert len(fallback.requests) == 1  # the recording only


def test_the_notice_waits_for_validation_in_python_too(fallback: StandInServer) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(cj.ValidationError):
            cj.chat("Hi", temperature=5)
        assert routed() and not caught and fallback.requests == []
    with pytest.warns(LocalModelNotice, match="local model"):
        cj.chat("Hi")
    assert issubclass(LocalModelNotice, cj.CompassWarning)  # scripts that watch CompassWarning still see it


# --------------------------------------------------------------------------- %compass config says what answers


def _answers(cell: Cell) -> str:
    bundle = cell.visible[-1]
    lines = bundle["text/plain"].splitlines()
    assert lines[0] == "Compass settings" and lines[1].startswith("Will answer: ")
    assert f"Will answer: **{lines[1][13:]}**" in bundle["text/markdown"].replace("&gt;", ">")
    # The table keeps its shape: the same three columns, one row a setting, in order.
    assert re.split(r"\s{2,}", lines[2]) == ["setting", "value", "source"]
    names = [row[0] for row in config.effective()]
    assert [line.split(" ")[0] for line in lines[4 : 4 + len(names)]] == names
    return lines[1][len("Will answer: ") :]


def test_config_names_the_local_model_before_and_after_it_starts(
    shell: InteractiveShell, fallback: StandInServer
) -> None:
    before = _answers(ok(shell, "%compass config"))
    assert before == f"the local model {LOCAL_MODEL_ID}, started by the first request (no key; offline=local)"
    ok(shell, "%%compass\nHi")
    after = _answers(ok(shell, "%compass config"))
    assert after == f"the local model gpt-4o at {fallback.base_url} (no key; offline=local)"
    stop()
    ok(shell, "%compass local")
    assert (
        _answers(ok(shell, "%compass config"))
        == f"the local model gpt-4o at {fallback.base_url} (%compass local / cj.local())"
    )


def test_config_names_compass_the_server_or_the_missing_key(
    shell: InteractiveShell, compass_server: StandInServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cell = ok(shell, "%compass config")
    assert _answers(cell) == f"gpt-4o at {compass_server.base_url}"
    assert compass_server.key not in json.dumps(cell.visible)
    monkeypatch.delenv("COMPASS_BASE_URL")
    ok(shell, "%compass set model=gpt-4.1")
    assert _answers(ok(shell, "%compass config")) == "Compass gpt-4.1 at https://api.core42.ai"
    monkeypatch.delenv("COMPASS_API_KEY")
    assert _answers(ok(shell, "%compass config")).startswith("nothing yet: no API key is set")
    cassette = tmp_path / "recorded.cassette.json"
    cassette.write_text('{"format": "compass-jupyter/cassette", "version": 1, "interactions": []}')
    ok(shell, f"%compass set cassette={cassette} cassette_mode=replay")
    answer = _answers(ok(shell, "%compass config"))
    assert answer == "the cassette recorded.cassette.json (replayed: nothing is sent)"
    assert str(tmp_path) not in answer
