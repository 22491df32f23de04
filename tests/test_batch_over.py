"""cj.map as a notebook shows it, and ``%%compass --over`` in a real IPython shell.

The views are fed from the thread that called cj.map; what a saved notebook keeps
is checked as nbval compares it (display updates ignored). The magic's tests
drive a real ``InteractiveShell`` against the stand-in server, and the last test
a real ipykernel, interrupted as a front end's stop button does.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import nbformat
import pandas as pd
import pytest
from batch_server import fresh_memo, interrupt_after, last_user, timed  # noqa: F401
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from nbclient import NotebookClient

import compass_jupyter as cj
from compass_jupyter import magics
from compass_jupyter.batch.progress import BatchObserver, ProgressState, Summary
from compass_jupyter.testing import Scenario


@pytest.fixture
def shell(compass_server):
    """A real IPython shell with the magics: displays go through its publisher (and are captured)."""
    sh = InteractiveShell.instance()
    magics.load(sh)
    before = set(sh.user_ns)
    yield sh
    magics.unload(sh)
    for name in set(sh.user_ns) - before:
        del sh.user_ns[name]


def run_cell(sh: InteractiveShell, code: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = sh.run_cell(code)
    return result, captured


def shown(captured: Any) -> str:
    """Every text/plain output a cell displayed (its first states, as nbval compares them)."""
    return "\n".join(m.data.get("text/plain", "") for m in captured.outputs if not m.update)


# -- progress -------------------------------------------------------------------------------------


class Recorder(BatchObserver):
    def __init__(self) -> None:
        self.states: list[ProgressState] = []
        self.summary: Summary | None = None

    def start(self, state: ProgressState) -> None:
        self.states.append(state)

    def update(self, state: ProgressState) -> None:
        self.states.append(state)

    def finish(self, summary: Summary) -> None:
        self.summary = summary


def test_an_observer_sees_the_run_progress(timed):
    timed(latency=0.1, refuse=lambda body: Scenario(status=400) if "row 2" in last_user(body) else None)
    recorder = Recorder()
    cj.map("Say {row}", [f"row {i}" for i in range(12)], concurrency=3, progress=recorder)
    states = recorder.states
    assert states[0].done == 0 and states[0].total == 12
    assert any(0 < s.finished < 12 for s in states) and max(s.in_flight for s in states) <= 3
    assert any(s.in_flight > 0 for s in states)
    assert any(s.last_error and "row 2" in s.last_error for s in states)
    assert any(s.eta is not None and s.eta > 0 for s in states)
    assert recorder.summary is not None and recorder.summary.failed == 1


def test_the_plain_view_leaves_one_summary_output_as_nbval_compares_it(shell, compass_server):
    from compass_jupyter.views.progress import PlainProgress

    view = PlainProgress(interval=0)
    with capture_output() as captured:
        cj.map("Say {row}", ["a", "b"], progress=view)
    first_states = [m.data for m in captured.outputs if not m.update]
    assert first_states[0] == {"text/plain": ""}
    assert first_states[-1]["text/plain"].startswith("2 rows: 2 answered by gpt-4o, 0 failed")
    updates = [m.data for m in captured.outputs if m.update]
    assert updates[-1] == {"text/plain": ""}  # the live line ends empty


def test_the_widget_panel_renders_counts_and_ends_with_the_summary(shell, timed):
    from compass_jupyter.views.progress import WidgetProgress

    timed(latency=0.05)
    view = WidgetProgress(interval=0)
    with capture_output() as captured:
        cj.map("Say {row}", [f"row {i}" for i in range(10)], concurrency=2, progress=view)
    outputs = [m.data for m in captured.outputs if not m.update]
    assert "application/vnd.jupyter.widget-view+json" in outputs[0] and outputs[0]["text/plain"] == ""
    assert "10 rows: 10 answered" in outputs[-1]["text/plain"] and "compass-map-summary" in outputs[-1]["text/html"]
    assert view.bar.value == 10 and view.bar.bar_style == "success" and view.renders >= 2


# -- %%compass --over --------------------------------------------------------------------------


def test_over_sends_the_cell_over_each_row_with_every_option(shell, compass_server):
    shell.user_ns["tickets"] = pd.DataFrame({"text": ["late parcel", "broken lid"]}, index=[10, 20])
    shell.user_ns["language"] = "French"
    result, captured = run_cell(
        shell, "%%compass --over tickets -o answers -t 0 --max-tokens 30 -s 'Be brief.'\nIn {language}: {text}"
    )
    assert result.success, result.error_in_exec
    answers = shell.user_ns["answers"]
    assert list(answers.index) == [10, 20] and answers[20].endswith("“In French: broken lid”")
    bodies = [r.body for r in compass_server.requests]
    assert [b["temperature"] for b in bodies] == [0, 0] and all(b["max_tokens"] == 30 for b in bodies)
    assert all(b["messages"][0] == {"role": "system", "content": "Be brief."} for b in bodies)
    assert all(b["stream"] is False for b in bodies)
    assert cj.session().messages == [] and cj.session().system is None  # the conversation is untouched
    assert "2 rows: 2 answered" in shown(captured)


def test_over_without_out_shows_the_answers_and_json_parses_them(shell, compass_server):
    shell.user_ns["words"] = ["one", "two"]
    result, captured = run_cell(shell, "%%compass --over words --json\nJSON for {row}")
    assert result.success, result.error_in_exec
    assert "[{'model': 'gpt-4o', 'echo':" in shown(captured)  # the list of parsed answers, shown


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("--over missing", "'missing', which is not defined in the notebook"),
        ("--over frame", "no column 'nope' and the notebook no such variable"),
        ("--over frame -m gpt-4o,gpt-4.1", "compare mode"),
        ("--over frame --new", "new=True (--new) do not apply"),
        ("--over 'not a name'", "--over needs the name of a notebook variable"),
    ],
)
def test_over_refuses_bad_cells_in_one_paragraph_without_sending(shell, compass_server, line, words):
    shell.user_ns["frame"] = pd.DataFrame({"text": ["a"]})
    result, captured = run_cell(shell, f"%%compass {line}\nSay {{nope}}")
    assert not result.success and type(result.error_in_exec).__name__ == "UsageError"
    assert words in str(result.error_in_exec) and "Traceback" not in captured.stderr
    assert compass_server.requests == []


def test_over_interrupted_keeps_the_rows_in_out_and_the_next_run_sends_the_rest(shell, timed):
    server = timed(latency=0.2)
    shell.user_ns["items"] = [f"item {i}" for i in range(30)]
    thread = interrupt_after(server, 10, 0.1)  # 8 at once, then the first 8 answered and 2 more sent
    result, _ = run_cell(shell, "%%compass --over items -o out\nSay {row}")
    thread.join()
    message = str(result.error_in_exec)
    assert type(result.error_in_exec).__name__ == "UsageError" and "Run the cell again" in message
    kept = [value for value in shell.user_ns["out"] if value is not None]
    assert kept and f"{len(kept)} of 30 rows are answered and kept (in out)" in message
    before = len(server.arrivals)
    result, _ = run_cell(shell, "%%compass --over items -o out\nSay {row}")
    assert result.success and len(server.arrivals) - before == 30 - len(kept)
    assert all(isinstance(value, str) for value in shell.user_ns["out"])


# -- in a real kernel ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_kernel_interrupt_stops_at_once_and_the_same_call_resumes(compass_server):
    """The interrupt button of a front end (SIGINT to ipykernel, whose loop runs on the main thread)."""
    compass_server.delay = 0.05  # about half a second per answer
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(source)
        for source in (
            "import compass_jupyter as cj\nrows = [f'row {i}' for i in range(40)]",
            "result = cj.map('Say {row}', rows, concurrency=4)",
            "again = cj.map('Say {row}', rows, concurrency=4)\nprint(again.summary.reused, again.summary.answered)",
        )
    ]
    client = NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True)

    def interrupt() -> None:
        deadline = time.monotonic() + 30
        while len(compass_server.requests) < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        asyncio.run(client.km.interrupt_kernel())

    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        thread = threading.Thread(target=interrupt, daemon=True)
        thread.start()
        started = time.monotonic()
        client.execute_cell(nb.cells[1], 1)
        took = time.monotonic() - started
        thread.join()
        sent = len(compass_server.requests)
        client.execute_cell(nb.cells[2], 2)

    assert took < 8, "the interrupt must stop the run at once (40 rows take about 5 s more)"
    outputs = nb.cells[1].outputs
    summary = next(o for o in outputs if o.output_type == "display_data" and o.data.get("text/plain"))
    text = summary.data["text/plain"]
    assert "Interrupted: the " in text and "Run the same call again to send only the" in text
    kept = int(text.split("Interrupted: the ")[1].split()[0])
    assert 0 < kept < 40
    assert any(o.output_type == "error" and o.ename == "KeyboardInterrupt" for o in outputs)
    reused, answered = map(int, nb.cells[2].outputs[-1].text.split())
    assert (reused, answered) == (kept, 40 - kept)
    assert len(compass_server.requests) - sent == 40 - kept  # only the rows left were sent again
