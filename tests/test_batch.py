"""cj.map against the stand-in server, through real sockets: shape, bad input, failures, budgets, resume.

The server (``batch_server.TimedServer``) keeps every request's arrival time, can
answer late and can refuse given rows: budgets are checked on what the server
saw, never on the client's own account of what it sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
from batch_server import fresh_memo, interrupt_after, last_user, max_in_window, quiet, timed  # noqa: F401

import compass_jupyter as cj
from compass_jupyter.batch import budget
from compass_jupyter.batch.budget import Budget, Gate, TokenEstimate
from compass_jupyter.settings import config
from compass_jupyter.testing import Scenario

# -- shape ------------------------------------------------------------------------------------


def test_a_list_of_strings_gives_a_list_in_the_same_order(compass_server):
    rows = [f"word {i}" for i in range(12)]
    result = quiet("Echo {row}", rows)
    assert isinstance(result, list) and len(result) == 12
    for row, answer in zip(rows, result):
        assert answer.endswith(f"“Echo {row}”")
    assert len(compass_server.requests) == 12
    body = compass_server.requests[0].body
    assert body["stream"] is False and len(body["messages"]) == 1  # no history, no system message
    summary = result.summary
    assert (summary.total, summary.answered, summary.failed, summary.requests) == (12, 12, 0, 12)
    assert summary.tokens_in > 0 and summary.tokens_out > 0


def test_a_dataframe_gives_a_series_aligned_with_its_index_even_when_rows_finish_out_of_order(timed):
    # Earlier rows answer later: the answers arrive in reverse and must still land on their rows.
    server = timed(latency=lambda body: 0.05 * (9 - int(last_user(body).split()[-1][1:])))
    frame = pd.DataFrame(
        {"text": [f"t{i}" for i in range(10)], "n": range(10)}, index=[f"id-{9 - i}" for i in range(10)]
    )
    result = quiet("Ticket {text} number {n:02d}", frame, concurrency=10)
    assert isinstance(result, pd.Series) and result.name == "reply"
    assert list(result.index) == list(frame.index)
    for label in frame.index:
        row = frame.loc[label]
        assert result[label].endswith(f"“Ticket {row.text} number {row.n:02d}”")
    merged = frame.assign(reply=result.sample(frac=1, random_state=1))  # shuffled: pandas aligns by label
    assert all(f"Ticket {row.text} " in row.reply for row in merged.itertuples())
    assert result.attrs["summary"].answered == 10
    assert len(server.arrivals) == 10


def test_iterables_dicts_series_and_folders_keep_their_shape(compass_server, tmp_path):
    generator = ({"name": n, "city": c} for n, c in [("Ada", "Paris"), ("Lin", "Oslo")])
    listed = quiet("{name} lives in {city}", generator)
    assert isinstance(listed, list) and listed[1].endswith("“Lin lives in Oslo”")

    keyed = quiet("Capital of {row}?", {"fr": "France", "no": "Norway"})
    assert isinstance(keyed, dict) and list(keyed) == ["fr", "no"]
    assert keyed["no"].endswith("“Capital of Norway?”")

    series = pd.Series(["red", "blue"], index=[7, 3], name="colour")
    coloured = quiet("{index}: {colour} / {row}", series)
    assert list(coloured.index) == [7, 3] and coloured[3].endswith("“3: blue / blue”")

    (tmp_path / "b.txt").write_text("second file", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first file", encoding="utf-8")
    (tmp_path / ".hidden").write_text("not a row", encoding="utf-8")
    folder = quiet("Summarise {name}: {text}", tmp_path)
    assert list(folder) == ["a.txt", "b.txt"]
    assert folder["a.txt"].endswith("“Summarise a.txt: first file”")


def test_json_replies_become_columns_aligned_with_the_index(compass_server):
    schema = {
        "name": "ticket",
        "schema": {
            "type": "object",
            "properties": {"product": {"type": "string"}, "urgent": {"type": "boolean"}},
            "required": ["product", "urgent"],
        },
    }
    frame = pd.DataFrame({"text": ["printer on fire", "cannot log in"]}, index=["T-2", "T-1"])
    with pytest.warns(cj.CompassWarning):  # the reference documents response_format for another model
        fields = quiet("Extract from: {text}", frame, response_format={"type": "json_schema", "json_schema": schema})
    assert isinstance(fields, pd.DataFrame)
    assert list(fields.index) == ["T-2", "T-1"] and {"product", "urgent"} <= set(fields.columns)
    assert "error" not in fields.columns

    with pytest.warns(cj.CompassWarning):
        parsed = quiet("Give JSON for {row}", ["a", "b"], response_format={"type": "json_object"})
    assert all(isinstance(value, dict) for value in parsed)


def test_system_message_name_and_images_go_with_every_row(compass_server):
    cj.session().set_system("You sort tickets.")  # the conversation's system message applies, its history not
    image = Path(__file__).resolve().parents[1] / "notebooks" / "assets" / "circle.png"
    quiet("Look: {row}", ["a", "b"], images=[image], name="analyst")
    texts = set()
    for request in compass_server.requests:  # in the order they arrived, not necessarily the rows'
        system, user = request.body["messages"]
        assert system == {"role": "system", "content": "You sort tickets."}
        assert user["name"] == "analyst" and user["content"][0]["type"] == "text"
        texts.add(user["content"][0]["text"])
        assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert texts == {"Look: a", "Look: b"}
    assert cj.session().messages == []


def test_replies_true_keeps_whole_replies(compass_server):
    result = quiet("Hi {row}", ["x", "y"], replies=True, temperature=0)
    assert all(isinstance(reply, cj.Reply) for reply in result)
    assert result[0].usage.total_tokens > 0 and compass_server.requests[0].body["temperature"] == 0


# -- bad input: one paragraph, nothing sent -----------------------------------------------------


EMPTY_FRAME = pd.DataFrame({"text": []})
FRAME = pd.DataFrame({"text": ["a"], "category": ["b"]})


@pytest.mark.parametrize(
    ("template", "rows", "options", "words"),
    [
        ("{text}", EMPTY_FRAME, {}, "empty DataFrame"),
        ("{row}", [], {}, "empty collection"),
        ("{txt}", FRAME, {}, "no column 'txt'"),
        ("{categry}", FRAME, {}, "Did you mean {category}"),
        ("{name}", [{"name": "a"}, {"nom": "b"}], {}, "row 1 has no 'name'"),
        ("{row}", 42, {}, "int, which is not a collection of rows"),
        ("{row}", "some text", {}, "Wrap it in a list"),
        ("{row}", ["a"], {"concurrency": 0}, "concurrency must be between 1 and 256"),
        ("{row}", ["a"], {"rpm": -1}, "rpm must be between 0"),
        ("{row}", ["a"], {"tpm": -5}, "tpm must be between 0"),
        ("{row", ["a"], {}, "brace that does not pair up"),
        ("{row.__class__}", ["a"], {}, "starts with an underscore"),
        ("{row:.2f}", ["a"], {}, "Row 0: The format spec"),
        ("   ", ["a"], {}, "The template is empty"),
        ("{row}", ["a"], {"tools": [len]}, "tools cannot be used"),
        ("{row}", ["a"], {"temperature": 5}, "temperature"),
        ("{row}", ["a" * 4000], {"tpm": 100, "max_tokens": 10}, "more than the tpm budget of 100"),
    ],
)
def test_bad_input_is_one_paragraph_and_nothing_is_sent(compass_server, template, rows, options, words):
    with pytest.raises(cj.CompassError) as caught:
        quiet(template, rows, **options)
    message = str(caught.value)
    assert words in message
    assert "\n" not in message
    assert compass_server.requests == []


def test_a_missing_key_is_one_error_before_anything_is_sent(compass_server, monkeypatch):
    monkeypatch.delenv("COMPASS_API_KEY")
    with pytest.raises(cj.ConfigError):
        quiet("{row}", ["a", "b"])
    assert compass_server.requests == []


# -- failures -----------------------------------------------------------------------------------


def test_a_failing_row_keeps_its_error_and_the_others_finish(timed):
    refused = Scenario(status=400, error_message="This row breaks the content policy.")
    server = timed(refuse=lambda body: refused if "row 3" in last_user(body) else None)
    result = quiet("Say {row}", [f"row {i}" for i in range(8)], concurrency=4)
    failed = result[3]
    assert isinstance(failed, cj.RowError) and failed.row == 3
    assert "content policy" in str(failed) and "content policy" in repr(failed)
    assert isinstance(failed.error, cj.BadRequestError)
    assert [i for i, value in enumerate(result) if not isinstance(value, str)] == [3]
    assert result.errors == {3: failed}
    summary = result.summary
    assert (summary.answered, summary.failed, summary.pending) == (7, 1, 0)
    text = str(summary)
    assert "1 × BadRequestError" in text and "content policy" in text and "(row 3)" in text
    assert len(server.arrivals) == 8  # a 400 is not retried


def test_a_server_that_fails_halfway_keeps_the_finished_rows_and_sums_up_the_errors(compass_server):
    config.set("max_retries", 0)
    compass_server.enqueue(Scenario(times=10), Scenario(status=500, times=100))
    result = quiet("Say {row}", [f"row {i}" for i in range(20)], concurrency=4)
    answered = [value for value in result if isinstance(value, str)]
    failed = [value for value in result if isinstance(value, cj.RowError)]
    assert len(answered) == 10 and len(failed) == 10
    assert all(isinstance(value.error, cj.ServerError) for value in failed)
    summary = result.summary
    assert summary.failed == 10 and summary.errors[0].count == 10
    text = str(summary)
    assert "10 × ServerError" in text and "Run the same call again and only the 10 failed rows will be sent" in text
    # Running it again (the server works again) sends only the failed rows.
    compass_server.reset()
    again = quiet("Say {row}", [f"row {i}" for i in range(20)], concurrency=4)
    assert len(compass_server.requests) == 10
    assert all(isinstance(value, str) for value in again) and again.summary.reused == 10


def test_an_error_every_row_would_meet_stops_the_run(compass_server):
    compass_server.enqueue(Scenario(status=401, times=100))
    with pytest.raises(cj.AuthenticationError) as caught:
        quiet("Say {row}", [f"row {i}" for i in range(50)], concurrency=2)
    assert len(compass_server.requests) <= 2  # not fifty refusals
    assert caught.value.summary.stopped and len(caught.value.result) == 50
    assert compass_server.key not in str(caught.value) and compass_server.key not in str(caught.value.summary)


def test_a_server_echoing_the_key_never_shows_it(compass_server):
    compass_server.enqueue(Scenario(status=400, error_message=f"bad request from {compass_server.key}"))
    result = quiet("Say {row}", ["a"])
    assert isinstance(result[0], cj.RowError)
    for text in (str(result[0]), repr(result[0]), str(result.summary)):
        assert compass_server.key not in text


# -- budgets and rate limits ------------------------------------------------------------------


def test_the_request_budget_is_never_exceeded_and_is_used_fully(timed, monkeypatch):
    monkeypatch.setattr(budget, "WINDOW_SECONDS", 1.0)  # a budget of 5 per second, proved in seconds
    server = timed(latency=0.02)
    result = quiet("Say {row}", [f"row {i}" for i in range(16)], rpm=5, concurrency=8)
    assert result.summary.answered == 16
    times = [at for at, _ in server.arrivals]
    assert max_in_window(times, 1.0) == 5  # held exactly: reached, never exceeded
    assert times[-1] - times[0] >= 3 * 1.0  # 16 requests at 5 a second


def test_the_token_budget_holds_on_the_servers_own_counts(timed, monkeypatch):
    monkeypatch.setattr(budget, "WINDOW_SECONDS", 1.0)
    server = timed()
    rows = [f"row number {i} with a few more words in it" for i in range(12)]
    result = quiet("Say {row}", rows, tpm=120, max_tokens=12, replies=True)
    used = {last_user(reply.request): reply.usage.total_tokens for reply in result}
    arrivals = [(at, used[last_user(body)]) for at, body in server.arrivals]
    for start, _ in arrivals:
        assert sum(tokens for at, tokens in arrivals if start <= at < start + 1.0) <= 120
    assert arrivals[-1][0] - arrivals[0][0] >= 1.0  # the budget made it wait


def test_a_429_pauses_every_worker_for_its_retry_after_then_speed_comes_back(timed):
    latency = 0.1
    server = timed(latency=latency)
    server.enqueue(Scenario(times=6), Scenario(status=429, retry_after=1.0))
    result = quiet("Say {row}", [f"row {i}" for i in range(40)], concurrency=4)
    assert result.summary.answered == 40 and result.summary.failed == 0
    assert result.summary.rate_limited == 1
    times = [at for at, _ in server.arrivals]
    limited = times[6]  # the seventh request got the 429, answered `latency` later
    told = limited + latency
    assert not [t for t in times if told + 0.05 < t < told + 1.0 - 0.05], "a worker sent during the pause"
    assert len(times) == 41  # the 429'd row was sent once more, after the pause
    after = [t for t in times if t > told + 0.9]

    def in_flight(t: float) -> int:
        return sum(1 for u in after if t - latency < u <= t)

    assert max(in_flight(t) for t in after[-12:]) == 4  # back to the full concurrency


def test_budget_spacing_window_and_pause_on_a_fake_clock():
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    import asyncio

    async def scenario() -> list[float]:
        limited = Budget(rpm=3, tpm=100, window=6.0, clock=lambda: now[0], sleep=sleep)
        times = []
        for tokens in (10, 10, 10, 10, 95):
            await limited.acquire(tokens)
            times.append(now[0])
        limited.pause(4.0)
        assert limited.wait(1) >= 4.0
        return times

    times = asyncio.run(scenario())
    spacing = 6.0 / 3 * (1 + budget.SAFETY)
    assert times[1] - times[0] == pytest.approx(spacing) and times[2] - times[1] == pytest.approx(spacing)
    assert times[3] - times[0] >= 6.0 + budget.MARGIN  # the fourth waits for the first to leave the window
    assert times[4] - times[3] >= spacing  # and 95 tokens wait until the window has room


def test_the_gate_halves_on_a_429_and_grows_back():
    gate = Gate(8)
    gate.slow_down()
    assert gate.limit == 4
    for _ in range(4):
        gate.succeeded()
    assert gate.limit == 5
    for _ in range(5 + 6 + 7):
        gate.succeeded()
    assert gate.limit == 8


def test_the_token_estimate_learns_from_usage():
    estimate = TokenEstimate(completion=None)
    first = estimate.request(300)
    estimate.learn(300, prompt_tokens=150, completion_tokens=900)
    assert estimate.request(300) > first and estimate.chars_per_token == 2.0 and estimate.longest == 900
    assert TokenEstimate(completion=50, choices=2).request(30) == 10 + 8 + 100


# -- interrupt and resume ------------------------------------------------------------------------


def test_an_interrupt_keeps_finished_rows_and_the_same_call_sends_only_the_rest(timed):
    server = timed(latency=0.2)
    rows = [f"row {i}" for i in range(40)]
    thread = interrupt_after(server, 12, 0.1)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt) as caught:
        quiet("Say {row}", rows, concurrency=4)
    stopped = time.monotonic()
    thread.join()
    partial = caught.value.result
    finished = {rows[i] for i, value in enumerate(partial) if value is not None}
    assert 0 < len(finished) < 40 and all(isinstance(v, str) for v in partial if v is not None)
    assert caught.value.summary.interrupted and caught.value.summary.pending == 40 - len(finished)
    assert stopped - started < 4.0  # at once, not after the 40 rows (2 s at this pace would be the best case)
    sent_before = server.prompts()

    result = quiet("Say {row}", rows, concurrency=4)
    resent = server.prompts()[len(sent_before) :]
    assert set(resent) == {f"Say {row}" for row in rows} - {f"Say {row}" for row in finished}
    assert len(resent) == len(set(resent))  # each row left is sent once
    assert all(isinstance(value, str) for value in result) and result.summary.reused == len(finished)
    # Every row answered exactly once across the two runs: what was answered first was never sent again.
    assert not {f"Say {row}" for row in finished} & set(resent)


def test_running_the_same_call_again_sends_nothing_and_resume_false_sends_everything(compass_server):
    rows = ["a", "b", "c"]
    first = quiet("Say {row}", rows)
    again = quiet("Say {row}", rows)
    assert list(again) == list(first) and len(compass_server.requests) == 3
    assert again.summary.reused == 3 and again.summary.requests == 0
    more = quiet("Say {row}", rows + ["d"])  # a row added: only it is sent
    assert len(compass_server.requests) == 4 and more[3].endswith("“Say d”")
    quiet("Say {row}", rows, resume=False)
    assert len(compass_server.requests) == 7
    quiet("Say {row}", rows, temperature=0.5)  # another call: its own answers
    assert len(compass_server.requests) == 10


def test_a_fresh_process_on_the_same_store_sends_nothing_for_answered_rows(compass_server):
    quiet("Say {row}", [f"row {i}" for i in range(6)])
    assert len(compass_server.requests) == 6
    code = textwrap.dedent(
        """
        import compass_jupyter as cj
        result = cj.map("Say {row}", [f"row {i}" for i in range(9)], progress=False)
        print(result.summary.reused, result.summary.answered, result.summary.requests)
        """
    )
    env = {**os.environ}  # the stand-in's URL and key, and the store of this test (see conftest)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["6", "3", "3"]
    assert len(compass_server.requests) == 9  # only the three new rows reached the server


# -- the public surface ---------------------------------------------------------------------------


def test_map_is_public_and_the_engine_imports_no_front_end():
    assert "map" in cj.__all__ and "RowError" in cj.__all__ and cj.map.__module__ == "compass_jupyter.batch"
    code = textwrap.dedent(
        """
        import sys
        import compass_jupyter as cj
        from compass_jupyter.batch import budget, memo, plan, progress, results, rows, runner
        from compass_jupyter.rendering import progress as rendered
        cj.map
        print(sorted(m for m in ("IPython", "ipywidgets", "pandas") if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


def test_the_summary_reads_well(compass_server):
    result = quiet("Say {row}", ["a"])
    text = str(result.summary)
    assert text.startswith("1 row: 1 answered by gpt-4o, 0 failed · 1 request · ")
