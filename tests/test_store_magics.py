"""``%compass log``, ``%compass record``, ``--cache`` in a real IPython shell, and cassettes in a real kernel."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from test_magics import ok, refused, run, shell  # noqa: F401  (shell is a fixture)

import compass_jupyter as cj
from compass_jupyter.settings import config
from compass_jupyter.store.exchanges import forget_cassettes
from compass_jupyter.testing import Scenario, StandInServer


@pytest.fixture(autouse=True)
def fresh_cassettes():
    forget_cassettes()
    yield
    forget_cassettes()


def test_a_cell_with_cache_sends_once_and_looks_the_same(shell, compass_server):
    cell = "%%compass --cache -t 0\nWhich river is the longest?"
    first = ok(shell, cell)
    ok(shell, "%compass reset")  # as a fresh kernel running the notebook again
    second = ok(shell, cell)
    assert len(compass_server.requests) == 1
    assert "cached" in second.markdown and "cached" not in first.markdown
    assert first.markdown.split("<sub>")[0] == second.markdown.split("<sub>")[0]  # the same reply text
    usage = ok(shell, "%compass usage")
    assert "(cached)" in usage.text and "nothing was spent" in usage.text


def test_cache_refresh_and_a_bad_cache_mode(shell, compass_server):
    ok(shell, "%%compass --no-history\nhello")
    ok(shell, "%%compass --no-history --cache refresh\nhello")
    assert len(compass_server.requests) == 2
    cell = refused(shell, compass_server, "%%compass --cache maybe\nhello")
    assert "--cache takes on, off or refresh" in cell.stderr


def test_cache_setting_applies_to_every_cell(shell, compass_server):
    ok(shell, "%compass set cache=on")
    ok(shell, "%%compass --no-history\nsame question")
    ok(shell, "%%compass --no-history\nsame question")
    assert len(compass_server.requests) == 1


def test_log_lists_searches_and_shows_one_as_it_was(shell, compass_server):
    ok(shell, "%%compass --logprobs 2\nTell me about the Nile.")
    compass_server.enqueue(Scenario(text="Fjords are glacial valleys."))
    ok(shell, "%%compass -m gpt-4o-mini\nWhat is a fjord?")
    listing = ok(shell, "%compass log")
    assert "Stored exchanges, newest first" in listing.text
    assert listing.text.index("What is a fjord?") < listing.text.index("Tell me about the Nile.")
    found = ok(shell, "%compass log -q nile")
    assert "Tell me about the Nile." in found.text and "fjord" not in found.text
    by_model = ok(shell, "%compass log -m gpt-4o-mini -n 5")
    assert "What is a fjord?" in by_model.text and "Nile" not in by_model.text
    none = ok(shell, "%compass log -q zanzibar")
    assert "No stored exchange matches" in none.text
    shown = ok(shell, "%compass log show 1")
    html = "\n".join(o.get("text/html", "") for o in shown.visible)
    assert "Exchange 1" in shown.text and "Tell me about the Nile." in shown.text
    assert "compass-logprobs" in html or "logprob" in html.lower()  # the logprobs table, as it was shown
    assert "finish: stop" in shown.text


def test_log_refuses_bad_arguments_in_one_paragraph(shell, compass_server):
    for line, says in [
        ("%compass log show", "needs one exchange id"),
        ("%compass log show 99", "has no exchange 99"),
        ("%compass log --since someday", "--since takes a date"),
        ("%compass log -n lots", "%compass log"),
    ]:
        cell = run(shell, line)
        assert not cell.success and says in cell.stderr and "Traceback" not in cell.stderr, (line, cell.stderr)


def test_record_writes_a_cassette_that_replays_without_the_server(shell, tmp_path):
    path = tmp_path / "cells.json"
    with StandInServer() as server:
        config.set("base_url", server.base_url)
        config.set("api_key", server.key)
        ok(shell, f"%compass record {path}")
        recorded = ok(shell, "%%compass -t 0\nName a desert.")
        stopped = ok(shell, "%compass record stop")
    assert "Stopped recording" in stopped.text
    assert len(json.loads(path.read_text())["interactions"]) == 1
    cj.session().reset()
    config.unset("api_key")
    config.set("cassette", str(path))
    config.set("cassette_mode", "replay")
    replayed = ok(shell, "%%compass -t 0\nName a desert.")
    assert replayed.markdown.split("<sub>")[0] == recorded.markdown.split("<sub>")[0]


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


def _texts(nb: nbformat.NotebookNode) -> list[str]:
    shown = []
    for cell in nb.cells:
        for out in cell.outputs:
            if out.output_type == "error":
                raise AssertionError(f"{out.ename}: {out.evalue}")
            text = out.get("text", "") or out.get("data", {}).get("text/plain", "")
            if text:
                shown.append(text.split(" · first token")[0])
    return shown


@pytest.mark.timeout(180)
def test_a_notebook_recorded_once_replays_in_a_kernel_with_no_server_and_no_key(tmp_path, monkeypatch):
    cells = (
        "%load_ext compass_jupyter",
        "%%compass -t 0\nName three rivers of Africa.",
        "%%compass --logprobs 2\nAnd the longest?",
        "reply = cj.chat('Thanks!', stream=False)\nprint(reply.text)",
    )
    cells = ("import compass_jupyter as cj",) + cells
    path = tmp_path / "notebook.cassette.json"
    monkeypatch.setenv("COMPASS_VIEW", "plain")
    monkeypatch.setenv("COMPASS_CASSETTE", str(path))
    with StandInServer() as server:
        monkeypatch.setenv("COMPASS_BASE_URL", server.base_url)
        monkeypatch.setenv("COMPASS_API_KEY", server.key)
        monkeypatch.setenv("COMPASS_CASSETTE_MODE", "record")
        first = _notebook(*cells)
        NotebookClient(first, timeout=60, kernel_name="python3").execute()
        sent = len(server.requests)
    assert sent == 3 and path.exists()
    monkeypatch.setenv("COMPASS_BASE_URL", "http://127.0.0.1:9")  # the server is gone
    monkeypatch.delenv("COMPASS_API_KEY")
    monkeypatch.setenv("COMPASS_CASSETTE_MODE", "replay")
    second = _notebook(*cells)
    NotebookClient(second, timeout=60, kernel_name="python3").execute()
    assert _texts(second) == _texts(first) and len(_texts(first)) >= 3
    assert "Stand-in" in Path(path).read_text()


def test_a_tool_round_is_listed_by_its_question_and_shown_with_its_result(shell, compass_server):
    ok(shell, "def weather(city: str) -> str:\n    'The weather in a city.'\n    return 'sunny in ' + city")
    compass_server.enqueue(Scenario(tool_calls=[{"name": "weather", "arguments": {"city": "Paris"}}]))
    ok(shell, "%%compass --tools weather\nWhat is the weather in Paris?")
    listing = ok(shell, "%compass log").text
    rows = [line for line in listing.splitlines() if "What is the weather in Paris?" in line]
    assert len(rows) == 2  # both requests of the turn are listed by the question, not the tool's output
    assert any("→ weather" in line and "Paris" in line for line in rows), listing
    shown = ok(shell, "%compass log show 1").text
    assert 'weather({"city": "Paris"}) -> sunny in Paris' in shown
    assert ok(shell, "%compass log -q weather -n 5").text.count("What is the weather") == 2
