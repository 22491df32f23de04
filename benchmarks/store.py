"""What keeping every exchange costs: ``python -m benchmarks.store``.

A store is filled to 1,000, then 10,000, then 100,000 turns with
``Store.add_many`` in a temporary directory (the ``store`` setting points
there for the run; a person's own store is never opened). The turns read like
real ones: a reply of a few hundred words, a prompt, a 3-message request,
usage; their text is sentences drawn from a word list with a seeded random
(common words in every turn, rare ones in a few), so search finds common and
rare words. At each size:

1. Writing a turn: ``Passage.keep(reply)``, which the client runs once per
   reply, after the last chunk and before ``chat()`` returns; median and p95.
   References, taking turns with it: the same row inserted by a bare
   ``sqlite3`` INSERT into a plain table (the store's columns and indexes, no
   full-text index) with SQLite's default settings (rollback journal,
   synchronous=FULL: a sync at every commit), and into the same plain table in
   WAL mode with synchronous=NORMAL, as the store is set. The first ratio is the
   trade of full-text index plus WAL against a default table, the second the
   full-text index and the row's preparation alone.
2. ``%compass log -q WORD``: ``compass_jupyter.store.search.search(q=WORD,
   n=20)``, the code the magic runs, for the most common word and a rare one;
   reference: ``LIKE '%word%'`` over the prompt and the text of the same table,
   newest first, limit 20 (what a store without a full-text index would run).
3. The replay cache: ``Store.cached(key)`` for a stored request and a new one,
   and ``Passage(...).answer()`` with ``cache="on"`` (the request's key, the
   lookup, the stored reply parsed); reference: a row read by its id.
4. Bytes per turn: the store's file with its WAL (after a passive checkpoint,
   as in use) and the plain table's file, over the turns they hold.

Last, ``Client.chat`` end to end against the stand-in server (its own process)
with the store on (at the largest size) and off, taking turns: a streamed
reply of 400 tokens. The time after the last chunk shows where keeping
happens; the rows written show it happens once per reply.

A configured key is set for the run (as in a notebook), so keeping scrubs it
from what is written, as it does for a person. Timings are wall time of this
process (perf_counter); the files are in the page cache (just written).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from compass_jupyter import Client
from compass_jupyter.reply import Reply
from compass_jupyter.settings import config
from compass_jupyter.store import db
from compass_jupyter.store.exchanges import Passage, current_store
from compass_jupyter.store.records import canonical, request_key
from compass_jupyter.store.search import search
from compass_jupyter.stream import Accumulator, Delta

from . import Options, StandInProcess, environment, median, parse_options, ratio, table

__all__ = ["run"]

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
BATCH = 5_000  # turns per add_many transaction while filling
SEED = 20_261_125

TURNS = (200, 60)  # keeps measured at each size (default, --quick)
LOOKUPS = (200, 50)  # cache lookups at each size
CHATS = (40, 10)  # Client.chat turns each way, store on and off
CHAT_TOKENS = 400
TARGET_WRITE_MS = 5.0
TARGET_SEARCH_S = 0.2
TARGET_LOOKUP_MS = 10.0

ROUTE = "https://api.core42.ai/v1/chat/completions"
SYSTEM = "You are a careful assistant for data analysis in Jupyter. Answer with short paragraphs and code."
MODELS = ("gpt-4o", "gpt-4o", "gpt-4o", "gpt-4.1", "gpt-4o-mini")
NOTEBOOKS = tuple(f"analysis/notebook-{i:02d}.ipynb" for i in range(20))
KEY = "c42-" + hashlib.sha256(b"benchmark key").hexdigest()[:40]  # key-shaped, used nowhere

# Frequent English words, by rank. None contains another word of the vocabulary, so
# LIKE '%word%' finds the same turns as the full-text index for the words searched.
COMMON = """
the of and to a in is it you that for with on as are be by or an can from at your which will not if use data
value python model file list example code return set each time type when one new all more into how we would
should first print method call line output table frame column row index number string name key result test
error loop class import array plot chart mean sum count step case user query read write load save path
""".split()
SYLLABLES = "ka lo mi ten ra vo sil den por qua zen bri tal ne fu gor pla wen shi dra mu sel vin cor".split()
SYNTHETIC = 200_000  # rarer words, made of syllables: the long tail of a vocabulary
SENTENCES = 150_000  # a pool of sentences; each reply draws 14-28 of them


class Corpus:
    """Realistic turns from a seeded random: the same text on every run and machine."""

    def __init__(self, seed: int = SEED) -> None:
        rng = random.Random(seed)
        synthetic: set[str] = set()
        while len(synthetic) < SYNTHETIC:
            word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
            if word not in COMMON:
                synthetic.add(word)
        tail = sorted(synthetic)
        rng.shuffle(tail)  # the tail's ranks in no order of spelling
        self.vocabulary = COMMON + tail
        weights = itertools.accumulate(1.0 / (rank + 2.7) for rank in range(len(self.vocabulary)))  # Zipf-like
        cumulative = list(weights)
        self.sentences: list[str] = []
        self.word_sentences: Counter[str] = Counter()
        for _ in range(SENTENCES):
            words = rng.choices(self.vocabulary, cum_weights=cumulative, k=rng.randint(8, 24))
            self.word_sentences.update(words)
            self.sentences.append(words[0].capitalize() + " " + " ".join(words[1:]) + ".")
        self.rng = random.Random(seed + 1)
        self.start = datetime(2025, 1, 6, 9, 0, tzinfo=timezone.utc)

    def _text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(self.sentences, k=self.rng.randint(low, high)))

    def turn(self, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(request body, chat.completion document) of turn ``i``: a 3-message request, a few hundred words."""
        model = MODELS[i % len(MODELS)]
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "assistant", "content": self._text(2, 5)},
            {"role": "user", "content": self._text(1, 2)},
        ]
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        text = self._text(14, 28)
        prompt_tokens = sum(len(m["content"].split()) for m in messages) * 4 // 3
        completion_tokens = len(text.split()) * 4 // 3
        doc = {
            "object": "chat.completion",
            "id": f"chatcmpl-{i:08d}",
            "created": 1_736_150_000 + 300 * i,
            "model": f"{model}-2024-08-06",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return body, doc

    def row(self, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(row as the store keeps it, request body) of turn ``i``."""
        body, doc = self.turn(i)
        usage = doc["usage"]
        at = (self.start + timedelta(minutes=5 * i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        row = {
            "at": at,
            "session": f"s{i // 40:010d}",
            "notebook": NOTEBOOKS[(i // 40) % len(NOTEBOOKS)],
            "model": body["model"],
            "answered_by": doc["model"],
            "route": ROUTE,
            "request_key": request_key(body, ROUTE),
            "request": canonical(body),
            "prompt": body["messages"][-1]["content"],
            "reply": json.dumps(doc, ensure_ascii=False, separators=(",", ":")),
            "text": doc["choices"][0]["message"]["content"],
            "finish_reason": "stop",
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
            "ttft": 0.35 + (i % 7) / 20,
            "latency": 3.0 + (i % 11) / 4,
            "tokens_per_s": 95.0 + i % 13,
            "streamed": 1,
            "complete": 1,
            "incomplete": 0,
            "interrupted": 0,
            "error_class": None,
            "error_message": None,
        }
        return row, body

    def reply(self, i: int) -> tuple[dict[str, Any], Reply]:
        """(request body, finished Reply) of a new turn, as the client has them when it keeps one."""
        body, doc = self.turn(i)
        reply = Reply(model=body["model"], request=body)
        accumulator = Accumulator(reply)
        accumulator.feed_completion(doc)
        reply = accumulator.finish()
        reply.latency.ttft, reply.latency.total, reply.latency.tokens_per_s = 0.41, 4.2, 96.0
        return body, reply

    def _alone(self, word: str) -> bool:
        """No other word of the vocabulary contains ``word``: LIKE finds it where the index does."""
        return not any(word in other for other in self.vocabulary if other != word)

    def common_word(self) -> str:
        return next(word for word in self.vocabulary if self._alone(word))

    def rare_word(self, first: Sequence[dict[str, Any]]) -> str:
        """A word found once in the pool of sentences and in exactly one of the first turns (a few later)."""
        rows: Counter[str] = Counter()
        for row in first:
            rows.update(set(f"{row['prompt']} {row['text']}".lower().replace(".", "").split()))
        candidates = sorted(w for w, n in rows.items() if n == 1 and self.word_sentences[w] == 1 and len(w) >= 6)
        random.Random(SEED).shuffle(candidates)
        return next(w for w in candidates if self._alone(w))


def _quantile95(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _timed(measure: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    """Seconds ``measure(*args, **kwargs)`` takes."""
    started = time.perf_counter()
    measure(*args, **kwargs)
    return time.perf_counter() - started


@contextlib.contextmanager
def _settings(**values: Any) -> Iterator[None]:
    """Set settings for the duration; put back what was there (or nothing) after."""
    saved = {name: (config.is_set(name), config.get(name), config.source(name)) for name in values}
    try:
        for name, value in values.items():
            config.set(name, value)
        yield
    finally:
        for name, (was_set, value, source) in saved.items():
            if was_set:
                config.set(name, value, source=source)
            else:
                config.unset(name)


WRITTEN = db.COLUMNS[1:]
INSERT = f"INSERT INTO exchanges ({', '.join(WRITTEN)}) VALUES ({', '.join('?' for _ in WRITTEN)})"


def _plain(path: Path, *, wal: bool) -> sqlite3.Connection:
    """A plain table of the store's columns and indexes (no full-text index); SQLite's defaults unless ``wal``."""
    connection = sqlite3.connect(path, isolation_level=None)
    if wal:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
    for statement in db._MIGRATIONS[0]:  # the store's first schema: the table and its two indexes
        connection.execute(statement)
    return connection


def _file_bytes(path: Path) -> tuple[int, int]:
    """(the database file, its WAL) in bytes."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


class Bench:
    """One run: the store and its references growing through the sizes."""

    def __init__(self, directory: Path, options: Options) -> None:
        self.options = options
        self.path = directory / "exchanges.db"
        self.corpus = Corpus()
        self.next = 0  # the next turn's number
        self.common = self.corpus.common_word()
        self.rare = ""
        self.bodies: list[dict[str, Any]] = []  # requests of stored turns, for cache hits
        self.stored_bytes = 0  # the values of every row written while filling
        self.filled = 0
        self.fill_seconds = {"store": 0.0, "plain": 0.0}
        self.plain_path = directory / "plain.db"
        self.plain = _plain(self.plain_path, wal=False)
        self.plain_wal = _plain(directory / "plain-wal.db", wal=True)
        self.reader = sqlite3.connect(self.path, isolation_level=None)  # the references' view of the same file

    def close(self) -> None:
        for connection in (self.plain, self.plain_wal, self.reader):
            connection.close()

    @property
    def store(self) -> db.Store:
        store = current_store()
        assert store is not None
        return store

    def count(self) -> int:
        return self.store.count()

    # -- filling --------------------------------------------------------------------------
    def fill(self, size: int) -> None:
        """Add generated turns until the store holds ``size`` (the plain tables get the same rows)."""
        while (have := self.count()) < size:
            rows = []
            for _ in range(min(BATCH, size - have)):
                row, body = self.corpus.row(self.next)
                if self.next % 97 == 0:
                    self.bodies.append(body)
                rows.append(row)
                self.next += 1
            if not self.rare:
                self.rare = self.corpus.rare_word(rows)
            self.stored_bytes += sum(len(str(v).encode()) for row in rows for v in row.values() if v is not None)
            self.filled += len(rows)
            self.fill_seconds["store"] += _timed(self.store.add_many, rows)
            values = [[row[name] for name in WRITTEN] for row in rows]
            for connection in (self.plain, self.plain_wal):
                started = time.perf_counter()
                connection.execute("BEGIN")
                connection.executemany(INSERT, values)
                connection.execute("COMMIT")
                if connection is self.plain:
                    self.fill_seconds["plain"] += time.perf_counter() - started
        # As after any quiet moment in a kernel: the big fill transactions are checkpointed away.
        self.reader.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- 1. writing a turn ----------------------------------------------------------------
    def writes(self) -> dict[str, list[float]]:
        turns = TURNS[1] if self.options.quick else TURNS[0]
        times: dict[str, list[float]] = {"keep": [], "add": [], "plain": [], "plain_wal": []}
        warm = 3
        gc.collect()
        for n in range(turns + warm):
            body, reply = self.corpus.reply(self.next)
            self.next += 1
            passage = Passage(route=ROUTE, body=body)
            keep = _timed(passage.keep, reply)
            row = self.store.search(db.Query(limit=1))[0]  # what keep wrote: the same row for the references
            values = [row[name] for name in WRITTEN]
            add = _timed(self.store.add, row)
            plain = _timed(self.plain.execute, INSERT, values)
            plain_wal = _timed(self.plain_wal.execute, INSERT, values)
            if n >= warm:
                times["keep"].append(keep)
                times["add"].append(add)
                times["plain"].append(plain)
                times["plain_wal"].append(plain_wal)
        return times

    # -- 2. searching ---------------------------------------------------------------------
    def _scan(self, statement: str, pattern: str) -> list[Any]:
        return self.reader.execute(statement, (pattern, pattern)).fetchall()

    def searches(self) -> list[tuple[str, int, float, float, bool]]:
        """(word, turns with it, search s, LIKE s, same turns found) for the common and the rare word."""
        repeats = self.options.repeats(default=7, quick=3)
        like = "SELECT * FROM exchanges WHERE prompt LIKE ? OR text LIKE ? ORDER BY id DESC LIMIT 20"
        out = []
        for word in (self.common, self.rare):
            pattern = f"%{word}%"
            turns = self.reader.execute(
                "SELECT count(*) FROM exchanges_text WHERE exchanges_text MATCH ?", (f'"{word}"',)
            ).fetchone()[0]
            found = [row["id"] for row in search(q=word, n=20)]
            scanned = [row[0] for row in self.reader.execute(like, (pattern, pattern)).fetchall()]
            fts: list[float] = []
            scan: list[float] = []
            for _ in range(repeats):  # taking turns
                fts.append(_timed(search, q=word, n=20))
                scan.append(_timed(self._scan, like, pattern))
            out.append((word, turns, median(fts), median(scan), found == scanned))
        return out

    # -- 3. the replay cache --------------------------------------------------------------
    def lookups(self) -> dict[str, float]:
        count = LOOKUPS[1] if self.options.quick else LOOKUPS[0]
        picker = random.Random(SEED + len(self.bodies))
        bodies = [picker.choice(self.bodies) for _ in range(count)]
        keys = [request_key(body, ROUTE) for body in bodies]
        top = self.count()
        ids = [picker.randint(1, top) for _ in range(count)]
        store = self.store
        times: dict[str, list[float]] = {"hit": [], "miss": [], "answer": [], "id": []}
        answered = 0
        for body, key, row_id in zip(bodies, keys, ids):
            times["hit"].append(_timed(store.cached, key))
            times["miss"].append(_timed(store.cached, key[::-1]))
            started = time.perf_counter()
            found = Passage(route=ROUTE, body=body, cache="on").answer()
            times["answer"].append(time.perf_counter() - started)
            answered += found is not None and found[1] == "cache"
            times["id"].append(_timed(store.get, row_id))
        result = {name: median(values) for name, values in times.items()}
        result["answered"] = answered / count
        return result

    # -- 4. bytes -------------------------------------------------------------------------
    def sizes(self) -> dict[str, float]:
        self.reader.execute("PRAGMA wal_checkpoint(PASSIVE)")
        data, wal = _file_bytes(self.path)
        turns = self.count()
        plain = self.plain_path.stat().st_size
        plain_turns = self.plain.execute("SELECT count(*) FROM exchanges").fetchone()[0]
        return {
            "turns": turns,
            "store": (data + wal) / turns,
            "wal": wal,
            "plain": plain / plain_turns,
            "row": self.stored_bytes / self.filled,
        }

    # -- Client.chat, store on and off -----------------------------------------------------
    def chats(self) -> dict[str, Any]:
        count = CHATS[1] if self.options.quick else CHATS[0]
        body, doc = self.corpus.turn(self.next)
        messages = body["messages"]
        text = doc["choices"][0]["message"]["content"]
        results: dict[str, dict[str, list[float]]] = {
            mode: {"wall": [], "tail": [], "cpu": []} for mode in ("off", "on")
        }
        chunks = 0
        with StandInProcess() as server, Client(base_url=server.base_url, api_key=server.key) as client:
            with _settings(api_key=server.key):
                rows_before = self.count()
                for n in range(count + 1):  # one unmeasured round
                    for mode in ("off", "on"):
                        last = [0.0]
                        seen = [0]

                        def observe(delta: Delta, last: list[float] = last, seen: list[int] = seen) -> None:
                            last[0] = time.perf_counter()
                            seen[0] += 1

                        server.enqueue(tokens=CHAT_TOKENS, text=text)
                        with _settings(store="off" if mode == "off" else str(self.path)):
                            gc.collect()
                            wall, cpu = time.perf_counter(), time.process_time()
                            reply = client.chat(messages, on_delta=observe)
                            done = time.perf_counter()
                            cpu = time.process_time() - cpu
                        if reply.usage is None or reply.usage.completion_tokens != CHAT_TOKENS:
                            raise RuntimeError(f"expected a {CHAT_TOKENS}-token reply, got usage {reply.usage}")
                        if n:
                            results[mode]["wall"].append(done - wall)
                            results[mode]["tail"].append(done - last[0])
                            results[mode]["cpu"].append(cpu)
                            chunks = seen[0]
                rows = self.count() - rows_before
        summary: dict[str, Any] = {
            mode: {name: median(values) for name, values in measured.items()} for mode, measured in results.items()
        }
        summary.update(turns=count, rows=rows, chunks=chunks)
        return summary


def _times(value: float, reference: float) -> str:
    """:func:`ratio`, with two significant digits below ×0.1 (a search can be thousands of times faster)."""
    if reference == 0 or value / reference >= 0.1:
        return ratio(value, reference)
    return f"×{value / reference:#.2g}"


def _ms(seconds: float, digits: int = 2) -> str:
    return f"{seconds * 1000:,.{digits}f}"


def run(options: Options, out: Callable[[str], None] = print) -> str:
    """Measure, print the tables through ``out`` and return them."""
    sizes = QUICK_SIZES if options.quick else SIZES
    writes: dict[int, dict[str, list[float]]] = {}
    searches: dict[int, list[tuple[str, int, float, float, bool]]] = {}
    lookups: dict[int, dict[str, float]] = {}
    footprint: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="compass-store-bench-") as directory:
        path = Path(directory) / "exchanges.db"
        with _settings(store=str(path), api_key=KEY, cache="off", cassette=None):
            bench = Bench(Path(directory), options)
            try:
                for size in sizes:
                    bench.fill(size)
                    writes[size] = bench.writes()
                    searches[size] = bench.searches()
                    lookups[size] = bench.lookups()
                    footprint[size] = bench.sizes()
                chats = bench.chats()
            finally:
                bench.close()
                store = current_store()
                if store is not None:
                    store.close()

    tables = [
        _write_table(sizes, writes),
        _search_table(sizes, searches),
        _lookup_table(sizes, lookups),
        _bytes_table(sizes, footprint, bench),
        _chat_table(chats, sizes[-1]),
    ]
    for text in tables:
        out(text)
        out("")
    return "\n\n".join(tables)


def _write_table(sizes: Sequence[int], writes: dict[int, dict[str, list[float]]]) -> str:
    rows = []
    for size in sizes:
        keep, add, plain, wal = (writes[size][name] for name in ("keep", "add", "plain", "plain_wal"))
        rows.append(
            [
                f"{size:,}",
                str(len(keep)),
                _ms(median(keep)),
                _ms(_quantile95(keep)),
                _ms(median(add)),
                _ms(median(plain)),
                ratio(median(keep), median(plain)),
                _ms(median(wal)),
                ratio(median(keep), median(wal)),
            ]
        )
    return table(
        "Writing a turn: Passage.keep(reply) on a store holding N turns, against a bare INSERT of the same row (ms)",
        [
            "stored turns",
            "turns",
            "keep median",
            "keep p95",
            "(s) Store.add",
            "(r) plain INSERT",
            "keep ×(r)",
            "(w) plain INSERT, WAL",
            "keep ×(w)",
        ],
        rows,
        [
            "keep: building the row from the reply (the key scrubbed, request and reply as JSON) and the INSERT with",
            "its full-text index, in WAL with synchronous=NORMAL; once per reply, after the last chunk.",
            "(s) the INSERT alone: the same row again through Store.add (keep minus (s) is preparing the row).",
            "(r) sqlite3 INSERT into a plain table (the store's columns and indexes, no full-text index) with SQLite's",
            "defaults: rollback journal, synchronous=FULL, a sync at each commit. (w) the same table in WAL with",
            "synchronous=NORMAL, as the store is set. The rows written here are added to N. Target: keep under "
            f"{TARGET_WRITE_MS:.0f} ms (median).",
        ],
    )


def _search_table(sizes: Sequence[int], searches: dict[int, list[tuple[str, int, float, float, bool]]]) -> str:
    rows = []
    for size in sizes:
        for kind, (word, turns, fts, scan, same) in zip(("common", "rare"), searches[size]):
            rows.append(
                [
                    f"{size:,}",
                    f"{kind}: {word}",
                    f"{turns:,}",
                    _ms(fts),
                    _ms(scan),
                    _times(fts, scan),
                    "yes" if same else "no",
                ]
            )
    return table(
        "%compass log -q WORD: search(q=WORD, n=20) against a LIKE '%WORD%' scan of the same table (ms, medians)",
        ["stored turns", "word", "turns with it", "search", "(l) LIKE scan", "search ×(l)", "same 20"],
        rows,
        [
            "search: compass_jupyter.store.search.search, as the magic calls it (full-text index, newest 20 rows).",
            "(l) SELECT * ... WHERE prompt LIKE ? OR text LIKE ? ORDER BY id DESC LIMIT 20 on the same file: it stops",
            "at the 20th match, so a word in every turn is found at once and a rare one reads the whole table.",
            f"same 20: both return the same rows. Target: under {TARGET_SEARCH_S:.1f} s at 100,000 turns.",
        ],
    )


def _lookup_table(sizes: Sequence[int], lookups: dict[int, dict[str, float]]) -> str:
    rows = []
    for size in sizes:
        r = lookups[size]
        rows.append(
            [
                f"{size:,}",
                _ms(r["hit"], 3),
                _ms(r["miss"], 3),
                _ms(r["answer"], 3),
                f"{r['answered']:.0%}",
                _ms(r["id"], 3),
                ratio(r["hit"], r["id"]),
            ]
        )
    return table(
        "The replay cache: a lookup on a store holding N turns (ms, medians)",
        ["stored turns", "cached() hit", "cached() miss", "Passage.answer()", "answered", "(i) by id", "hit ×(i)"],
        rows,
        [
            "cached(): Store.cached(request key), the newest complete row of a stored request (hit) or of a new one",
            "(miss). Passage.answer(): with cache='on', the request's key, the lookup and the stored reply parsed.",
            f"(i) Store.get(id), a row read by its id. Target: under {TARGET_LOOKUP_MS:.0f} ms.",
        ],
    )


def _bytes_table(sizes: Sequence[int], footprint: dict[int, dict[str, float]], bench: Bench) -> str:
    rows = []
    for size in sizes:
        r = footprint[size]
        rows.append(
            [
                f"{int(r['turns']):,}",
                f"{r['row']:,.0f}",
                f"{r['plain']:,.0f}",
                f"{r['store']:,.0f}",
                ratio(r["store"], r["plain"]),
                f"{r['wal'] / 1e6:.1f}",
            ]
        )
    store_rate = bench.filled / bench.fill_seconds["store"]
    plain_rate = bench.filled / bench.fill_seconds["plain"]
    return table(
        "Bytes per stored turn on disk",
        ["turns", "row data", "(p) plain table", "store, with WAL", "store ×(p)", "WAL MB"],
        rows,
        [
            "row data: the values of a row (UTF-8), what any table must hold. (p) the plain table's file.",
            "store: its file plus its WAL after a passive checkpoint, as in use; the WAL stays a few MB (SQLite",
            "checkpoints it every 1,000 pages) whatever the store's size.",
            f"Filling with add_many ({BATCH:,} turns a transaction): {store_rate:,.0f} turns/s; "
            f"the plain table: {plain_rate:,.0f} turns/s.",
        ],
    )


def _chat_table(chats: dict[str, Any], size: int) -> str:
    off, on = chats["off"], chats["on"]
    rows = [
        ["store=off", _ms(off["wall"]), _ms(off["tail"]), _ms(off["cpu"]), "–"],
        [
            f"store on ({size:,} turns)",
            _ms(on["wall"]),
            _ms(on["tail"]),
            _ms(on["cpu"]),
            ratio(on["wall"], off["wall"]),
        ],
        ["difference", _ms(on["wall"] - off["wall"]), _ms(on["tail"] - off["tail"]), _ms(on["cpu"] - off["cpu"]), ""],
    ]
    return table(
        f"Client.chat end to end, a streamed {CHAT_TOKENS}-token reply from the stand-in "
        f"(ms per turn, median of {chats['turns']})",
        ["store", "wall", "after last chunk", "CPU", "wall ×off"],
        rows,
        [
            "after last chunk: from the last chunk's on_delta to chat() returning; keeping the turn happens there,",
            f"never while the stream is read. Rows written with the store on: {chats['rows']} for {chats['turns'] + 1} "
            f"turns of {chats['chunks']} chunks each (one per reply).",
        ],
    )


def main(argv: Sequence[str] | None = None) -> int:
    options, _ = parse_options(argv, "python -m benchmarks.store")
    print(environment(), end="\n\n")
    run(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
