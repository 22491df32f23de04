"""The store of every exchange, the replay cache and cassettes, through the client and real sockets.

Each test talks to the stand-in server (``compass_server``) with the store in a
fresh temporary file (tests/conftest.py) and looks at what a user would notice:
the rows ``cj.log`` returns, how many requests the server received, what a
broken store or cassette says, and whether the key reached any file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

import compass_jupyter as cj
from compass_jupyter._exceptions import CassetteError, CompassWarning, RateLimitError, StoreError
from compass_jupyter.settings import config
from compass_jupyter.store import db as store_db
from compass_jupyter.store.exchanges import current_store, forget_cassettes, store_path
from compass_jupyter.store.records import chunks, completion_doc
from compass_jupyter.store.search import parse_since, search, stored_reply
from compass_jupyter.testing import Scenario, StandInServer

USER = [{"role": "user", "content": "Name three rivers of Africa."}]


def ask(client: cj.Client | None = None, messages: list[dict[str, Any]] | None = None, **kwargs: Any) -> cj.Reply:
    return (client or cj.Client()).chat(messages or USER, **kwargs)


def file_bytes(path: Path) -> bytes:
    """The store's file with its WAL and shared-memory companions: everything on disk."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


@pytest.fixture(autouse=True)
def fresh_cassettes():
    forget_cassettes()
    yield
    forget_cassettes()


# -- the store ------------------------------------------------------------------------------


def test_every_request_that_reached_the_server_is_a_row(compass_server):
    reply = ask(logprobs=True, top_logprobs=2, temperature=0)
    rows = search(n=5)
    assert len(rows) == 1
    row = rows[0]
    assert row["model"] == "gpt-4o" and row["prompt"] == USER[0]["content"]
    assert row["text"] == reply.text and row["finish_reason"] == "stop"
    assert row["total_tokens"] == reply.usage.total_tokens and row["latency"] > 0
    assert row["complete"] == 1 and row["streamed"] == 1 and row["route"].startswith(compass_server.base_url)
    assert json.loads(row["request"])["temperature"] == 0
    stored, _ = stored_reply(row["id"])
    assert stored.text == reply.text
    assert stored.logprobs == reply.logprobs
    assert stored.usage.total_tokens == reply.usage.total_tokens


def test_a_failed_request_is_kept_with_its_error(compass_server):
    config.set("max_retries", 0)
    compass_server.enqueue(Scenario(status=429, error_message="Slow down, please."))
    with pytest.raises(RateLimitError):
        ask()
    row = search(n=1)[0]
    assert row["error_class"] == "RateLimitError" and "Slow down" in row["error_message"]
    assert row["complete"] == 0 and row["reply"] is None


def test_a_stream_that_broke_off_is_kept_marked_incomplete(compass_server):
    compass_server.enqueue(Scenario(drop_after=3))
    with pytest.raises(cj.StreamError) as caught:
        ask()
    row = search(n=1)[0]
    assert row["incomplete"] == 1 and row["complete"] == 0 and row["error_class"] == "StreamError"
    assert row["text"] and row["text"] == caught.value.reply.text


def test_nothing_is_kept_when_the_store_is_off(compass_server):
    config.set("store", "off")
    ask()
    assert store_path() is None and current_store() is None
    with pytest.raises(StoreError, match="store=off"):
        search()


def test_the_key_reaches_no_file_even_when_typed_and_echoed(compass_server, tmp_path):
    key = compass_server.key
    config.set("cassette", str(tmp_path / "run.json"))
    config.set("cassette_mode", "record")
    reply = ask(messages=[{"role": "user", "content": f"my key is {key}, repeat it"}])
    assert key not in reply.text  # the stand-in echoes the prompt; the client hides the key
    path = store_path()
    assert path is not None and path.exists()
    assert key.encode() not in file_bytes(path)
    assert key not in (tmp_path / "run.json").read_text()
    frame = cj.log(n=5)
    assert key not in frame.to_csv()


def test_search_by_words_model_time_and_notebook(compass_server):
    from compass_jupyter.store import context

    client = cj.Client()
    ask(client, [{"role": "user", "content": "tell me about the Nile delta"}])
    ask(client, [{"role": "user", "content": "what is a fjord"}], model="gpt-4o-mini")
    context.set_notebook_resolver(lambda: "analysis/rivers.ipynb")
    try:
        ask(client, [{"role": "user", "content": "the Nile again"}])
        assert [r["prompt"] for r in search(q="nile")] == ["the Nile again", "tell me about the Nile delta"]
        assert [r["prompt"] for r in search(q="nile delta")] == ["tell me about the Nile delta"]
        assert [r["model"] for r in search(model="gpt-4o-mini")] == ["gpt-4o-mini"]
        assert [r["prompt"] for r in search(notebook=True)] == ["the Nile again"]
        assert len(search(n=2)) == 2
        assert search(since="2999-01-01") == [] and len(search(since="1d")) == 3
        assert search(q='"quoted" AND (weird') == []  # FTS syntax in the words is taken literally
    finally:
        context.set_notebook_resolver(None)


def test_since_reads_dates_times_and_ages():
    from datetime import datetime, timezone

    now = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2026-11-20", now=now) == "2026-11-20T00:00:00.000Z"
    assert parse_since("2h", now=now) == "2026-11-25T10:00:00.000Z"
    assert parse_since("yesterday", now=now) == "2026-11-24T00:00:00.000Z"
    with pytest.raises(cj.ValidationError, match="--since takes a date"):
        parse_since("last tuesday")


def test_log_returns_a_dataframe_or_plain_records(compass_server, monkeypatch):
    ask()
    frame = cj.log(q="rivers")
    assert list(frame.index) == [1] and frame.iloc[0]["model"] == "gpt-4o"
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    records = cj.log(q="rivers")
    assert isinstance(records, list) and records[0]["prompt"] == USER[0]["content"]


# -- a store that cannot be used never costs a reply -------------------------------------------


def _broken_store(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "exchanges.db"
    if kind == "not sqlite":
        path.write_text("these are my notes, not a database\n" * 50)
    elif kind == "truncated":
        good = tmp_path / "good.db"
        store = store_db.Store(good)
        store.add_many([{"at": "2026-01-01T00:00:00Z", "request_key": "k", "request": "{}", "text": "x" * 5000}] * 50)
        store.close()
        path.write_bytes(good.read_bytes()[:3000])
    elif kind == "newer schema":
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA user_version = 99")
    elif kind == "foreign sqlite":
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE invoices (id INTEGER)")
    elif kind == "a directory":
        path.mkdir()
    elif kind == "an unwritable place":
        return Path("/proc/compass-jupyter-store/exchanges.db")  # not even root can create it
    return path


@pytest.mark.parametrize(
    "kind, says",
    [
        ("not sqlite", "not a readable SQLite store"),
        ("truncated", "not a readable SQLite store"),
        ("newer schema", "newer compass-jupyter"),
        ("foreign sqlite", "SQLite file of something else"),
        ("a directory", "exchanges.db"),
        ("an unwritable place", "could not be used"),
    ],
)
def test_a_broken_store_gives_one_warning_and_the_reply(compass_server, tmp_path, kind, says):
    path = _broken_store(kind, tmp_path)
    config.set("store", str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = ask()
        second = ask(messages=[{"role": "user", "content": "and three lakes?"}])
    assert first.text and second.text and not first.incomplete
    shown = [str(w.message) for w in caught if issubclass(w.category, CompassWarning)]
    assert len(shown) == 1, shown  # one warning, not one per turn
    assert says in shown[0] and str(path) in shown[0] and "reply is kept" in shown[0]
    assert "store=" in shown[0]  # names the fix
    with pytest.raises(StoreError) as error:
        search()
    assert str(path) in str(error.value) and "Traceback" not in str(error.value)


def test_a_read_only_store_keeps_the_reply(compass_server, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes through file permissions")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    config.set("store", str(folder / "exchanges.db"))
    try:
        with pytest.warns(CompassWarning, match="cannot be written"):
            assert ask().text
    finally:
        folder.chmod(0o700)


def test_an_older_store_is_migrated_forward_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        for statement in store_db._MIGRATIONS[0]:
            connection.execute(statement)
        connection.execute(
            "INSERT INTO exchanges (at, request_key, request, prompt, text, complete) VALUES (?, ?, ?, ?, ?, 1)",
            ("2026-01-02T00:00:00.000Z", "k", "{}", "an old question about glaciers", "an old answer"),
        )
        connection.execute("PRAGMA user_version = 1")
    store = store_db.Store(path)
    found = store.search(store_db.Query(text="glaciers"))
    assert [row["text"] for row in found] == ["an old answer"]
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == store_db.SCHEMA_VERSION
    store.close()


def test_two_processes_writing_one_store_lose_no_rows(compass_server, tmp_path):
    path = tmp_path / "shared.db"
    script = textwrap.dedent(
        """
        import sys
        import compass_jupyter as cj
        client = cj.Client()
        for i in range(60):
            client.chat([{"role": "user", "content": f"writer {sys.argv[1]} turn {i}"}], max_tokens=8)
        """
    )
    env = {**os.environ, "COMPASS_STORE": str(path)}
    writers = [subprocess.Popen([sys.executable, "-c", script, name], env=env) for name in ("a", "b", "c")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    config.set("store", str(path))
    rows = search(n=1000)
    assert len(rows) == 180
    for name in ("a", "b", "c"):
        assert sorted(r["prompt"] for r in rows if r["prompt"].startswith(f"writer {name} ")) == sorted(
            f"writer {name} turn {i}" for i in range(60)
        )


# -- the replay cache -------------------------------------------------------------------------


def test_cache_on_answers_an_unchanged_request_without_sending(compass_server):
    config.set("cache", "on")
    first = ask(logprobs=True, top_logprobs=3, temperature=0.2)
    seen: list[str] = []
    second = ask(logprobs=True, top_logprobs=3, temperature=0.2, on_delta=lambda d: seen.append(d.text))
    assert len(compass_server.requests) == 1
    assert second.cached and not first.cached
    assert second.text == first.text and second.logprobs == first.logprobs
    assert second.usage.total_tokens == first.usage.total_tokens
    assert len([piece for piece in seen if piece]) > 3  # replayed as a stream, piece by piece
    assert "cached" in second.status_line()
    assert second.latency.total == pytest.approx(first.latency.total)  # the original's timing, not ~0
    ask(logprobs=True, top_logprobs=3, temperature=0.3)  # another field value: asked again
    assert len(compass_server.requests) == 2


def test_cache_matches_whatever_the_delivery(compass_server):
    ask(stream=True)
    reply = ask(stream=False, cache="on")
    assert reply.cached and len(compass_server.requests) == 1


def test_cache_refresh_asks_again_and_replaces_the_answer(compass_server):
    compass_server.enqueue(Scenario(text="first answer"))
    ask()
    compass_server.enqueue(Scenario(text="second answer"))
    assert ask(cache="refresh").text == "second answer"
    assert len(compass_server.requests) == 2
    again = ask(cache="on")
    assert again.cached and again.text == "second answer"


def test_cache_never_answers_with_a_partial_reply_or_an_error(compass_server):
    compass_server.enqueue(Scenario(drop_after=3))
    with pytest.raises(cj.StreamError):
        ask()
    reply = ask(cache="on")
    assert not reply.cached and len(compass_server.requests) == 2


def test_cache_is_per_server(compass_server):
    ask()
    with StandInServer(key=compass_server.key) as other:
        reply = cj.Client(base_url=other.base_url).chat(USER, cache="on")
        assert not reply.cached and len(other.requests) == 1


def test_cached_turns_cost_nothing_in_the_session_usage(compass_server):
    config.set("cache", "on")
    session = cj.session()
    session.chat("What is two plus two?", history=False)
    spent = session.usage.total_tokens
    again = session.chat("What is two plus two?", history=False)
    assert again.cached and len(compass_server.requests) == 1
    assert session.usage.total_tokens == spent  # the cached turn spent nothing
    assert session.turns[-1].cached and session.turns[-1].usage.total_tokens == spent  # shows what it cost


def test_a_bad_cache_value_is_one_clear_error(compass_server):
    with pytest.raises(cj.ConfigError, match="cache must be off, on or refresh"):
        ask(cache="sometimes")
    assert compass_server.requests == []


# -- cassettes ---------------------------------------------------------------------------------


def _record(server: StandInServer, path: Path) -> list[cj.Reply]:
    config.set("cassette", str(path))
    config.set("cassette_mode", "record")
    client = cj.Client(base_url=server.base_url, api_key=server.key)
    replies = [
        client.chat(USER, logprobs=True, top_logprobs=2),
        client.chat([{"role": "user", "content": "and lakes?"}], stream=False, temperature=0),
    ]
    server.enqueue(Scenario(status=404, error_message="The model does-not-exist does not exist."))
    with pytest.raises(cj.NotFoundError):
        client.chat(USER, model="gpt-4o-mini")
    forget_cassettes()
    return replies


def test_a_cassette_replays_with_the_server_gone_and_no_key(tmp_path, monkeypatch):
    path = tmp_path / "tutorial.json"
    with StandInServer() as server:
        recorded = _record(server, path)
    config.unset("api_key")
    monkeypatch.delenv("COMPASS_API_KEY", raising=False)
    config.set("base_url", "http://127.0.0.1:9")  # nothing listens there
    config.set("cassette_mode", "replay")
    client = cj.Client()
    seen: list[str] = []
    first = client.chat(USER, logprobs=True, top_logprobs=2, on_delta=lambda d: seen.append(d.text))
    second = client.chat([{"role": "user", "content": "and lakes?"}], stream=False, temperature=0)
    assert (first.text, second.text) == (recorded[0].text, recorded[1].text)
    assert first.logprobs == recorded[0].logprobs and first.source == "cassette" and not first.cached
    assert len([s for s in seen if s]) > 3
    with pytest.raises(cj.NotFoundError, match="does-not-exist"):
        client.chat(USER, model="gpt-4o-mini")
    document = json.loads(path.read_text())
    assert document["format"] == "compass-jupyter/cassette" and len(document["interactions"]) == 3


def test_a_request_missing_from_the_cassette_names_the_nearest_and_the_difference(tmp_path):
    path = tmp_path / "run.json"
    with StandInServer() as server:
        _record(server, path)
    config.set("cassette", str(path))
    config.set("cassette_mode", "replay")
    with pytest.raises(CassetteError) as caught:
        cj.Client(api_key="unused-key-1234").chat(USER, logprobs=True, top_logprobs=4)
    message = str(caught.value)
    assert str(path) in message and "The nearest recorded request (number 1) differs in top_logprobs" in message
    assert "top_logprobs (recorded 2, now 4)" in message and "record" in message
    with pytest.raises(CassetteError, match=r"messages\[0\] \(recorded \"Name three"):
        cj.Client(api_key="unused-key-1234").chat([{"role": "user", "content": "Name four rivers."}])


def test_the_same_request_recorded_twice_replays_in_order(tmp_path):
    path = tmp_path / "twice.json"
    with StandInServer() as server:
        config.set("cassette", str(path))
        config.set("cassette_mode", "record")
        client = cj.Client(base_url=server.base_url, api_key=server.key)
        server.enqueue(Scenario(text="one"))
        client.chat(USER)
        server.enqueue(Scenario(text="two"))
        client.chat(USER)
    forget_cassettes()
    config.set("cassette_mode", "replay")
    replay = cj.Client(api_key="unused-key-1234")
    assert [replay.chat(USER).text for _ in range(3)] == ["one", "two", "two"]


def test_auto_mode_records_a_missing_cassette_then_replays_it(tmp_path):
    path = tmp_path / "auto.json"
    config.set("cassette", str(path))
    with StandInServer() as server:
        client = cj.Client(base_url=server.base_url, api_key=server.key)
        text = client.chat(USER).text
    forget_cassettes()  # the next run of the notebook
    assert cj.Client(base_url="http://127.0.0.1:9", api_key="unused-key-1234").chat(USER).text == text


@pytest.mark.parametrize(
    "content, says",
    [
        ('{"format": "compass-jupyter/cassette", "version": 1, "interac', "is not JSON"),
        ("PK\x03\x04 a zip file", "is not JSON"),
        ('{"format": "compass-jupyter/cassette", "version": 7, "interactions": []}', "newer compass-jupyter"),
        ('{"interactions": []}', "not a compass-jupyter cassette"),
        ('{"format": "compass-jupyter/cassette", "version": 1, "interactions": [{"request": 1}]}', "interaction (0)"),
    ],
)
def test_a_cassette_that_cannot_be_read_is_one_paragraph(tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(content)
    config.set("cassette", str(path))
    config.set("cassette_mode", "replay")
    with pytest.raises(CassetteError) as caught:
        cj.Client(api_key="unused-key-1234").chat(USER)
    message = str(caught.value)
    assert says in message and str(path) in message and "\n" not in message


def test_replaying_a_missing_cassette_says_how_to_record_it(tmp_path):
    config.set("cassette", str(tmp_path / "nowhere.json"))
    config.set("cassette_mode", "replay")
    with pytest.raises(CassetteError, match="does not exist.*COMPASS_CASSETTE_MODE=record"):
        cj.Client(api_key="unused-key-1234").chat(USER)


# -- the one format ---------------------------------------------------------------------------


def test_a_stored_reply_reads_back_equal_streamed_or_not(compass_server):
    from compass_jupyter.reply import Reply
    from compass_jupyter.stream import Accumulator

    compass_server.enqueue(Scenario(tool_calls=[{"name": "lookup", "arguments": {"city": "Abu Dhabi"}}]))
    original = ask(logprobs=True, top_logprobs=2, n=2)
    doc = completion_doc(original)
    whole = Reply(request=original.request)
    Accumulator(whole).feed_completion(doc)
    streamed = Reply(request=original.request)
    accumulator = Accumulator(streamed)
    for chunk in chunks(doc):
        accumulator.feed(chunk)
    for rebuilt in (whole, streamed):
        assert [c.text for c in rebuilt.choices] == [c.text for c in original.choices]
        assert [c.logprobs for c in rebuilt.choices] == [c.logprobs for c in original.choices]
        assert [(t.name, t.arguments) for t in rebuilt.tool_calls] == [
            (t.name, t.arguments) for t in original.tool_calls
        ]
        assert rebuilt.usage.total_tokens == original.usage.total_tokens and rebuilt.model == original.model


def test_a_cassette_matches_what_was_asked_not_a_servers_dialect(tmp_path):
    from compass_jupyter.dialect import Dialect

    class Renaming(Dialect):
        """A server that serves every request with its own model, as the local model's does."""

        def rewrite(self, body: dict[str, Any]) -> dict[str, Any]:
            return {**body, "model": "gpt-4o-mini"}

    path = tmp_path / "local.json"
    config.set("cassette", str(path))
    config.set("cassette_mode", "record")
    with StandInServer() as server:
        recorded = cj.Client(base_url=server.base_url, api_key=server.key, dialect=Renaming()).chat(USER)
        assert server.requests[-1].body["model"] == "gpt-4o-mini"
    forget_cassettes()
    config.set("cassette_mode", "replay")
    replayed = cj.Client(api_key="unused-key-1234").chat(USER)  # asks gpt-4o, with no dialect of its own
    assert replayed.text == recorded.text and replayed.model == recorded.model


def test_usage_the_client_counted_stays_marked_when_replayed(compass_server):
    compass_server.enqueue(Scenario(usage=False))
    original = ask()
    assert original.usage.counted
    again = ask(cache="on")
    assert again.cached and again.usage.counted
    assert again.usage.completion_tokens == original.usage.completion_tokens
    turn = cj.conversation.Turn.from_dict(cj.conversation.Turn.of(again).to_dict())
    assert turn.usage.counted
