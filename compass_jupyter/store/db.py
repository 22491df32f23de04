"""The SQLite file of every exchange: schema, migrations, writing, searching, the cache's lookup.

One file per user (or per ``store`` setting), shared by every kernel: WAL mode so
readers never block the writer, a busy timeout so two kernels writing at once
wait their turn instead of losing a row, and ``PRAGMA user_version`` as the
schema's version, migrated forward step by step when an older file is opened.
Full-text search is an FTS5 index over each request's prompt and its reply's text,
kept current by triggers.

Nothing here decides *when* to write or what a failure means for a turn: that is
:mod:`compass_jupyter.store.exchanges`. This module raises :class:`StoreError`
with a message that names the file and the fix.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .._exceptions import StoreError

__all__ = ["Store", "StoreError", "Row", "SCHEMA_VERSION", "COLUMNS"]

BUSY_TIMEOUT_S = 30.0  # another kernel's write lasts milliseconds; waiting this long only happens on a stuck lock

# Each step takes the file from version i to i + 1, in one transaction.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            session TEXT,
            notebook TEXT,
            model TEXT,
            answered_by TEXT,
            route TEXT,
            request_key TEXT NOT NULL,
            request TEXT NOT NULL,
            prompt TEXT,
            reply TEXT,
            text TEXT,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            total_tokens INTEGER,
            ttft REAL,
            latency REAL,
            tokens_per_s REAL,
            streamed INTEGER NOT NULL DEFAULT 0,
            complete INTEGER NOT NULL DEFAULT 0,
            incomplete INTEGER NOT NULL DEFAULT 0,
            interrupted INTEGER NOT NULL DEFAULT 0,
            error_class TEXT,
            error_message TEXT
        )""",
        "CREATE INDEX exchanges_by_key ON exchanges (request_key, complete, id)",
        "CREATE INDEX exchanges_by_time ON exchanges (at)",
    ),
    (
        # Version 2: full-text search over what was asked and what came back.
        "CREATE VIRTUAL TABLE exchanges_text USING fts5(prompt, text, content='exchanges', content_rowid='id')",
        """CREATE TRIGGER exchanges_text_insert AFTER INSERT ON exchanges BEGIN
            INSERT INTO exchanges_text (rowid, prompt, text) VALUES (new.id, new.prompt, new.text);
        END""",
        """CREATE TRIGGER exchanges_text_delete AFTER DELETE ON exchanges BEGIN
            INSERT INTO exchanges_text (exchanges_text, rowid, prompt, text) VALUES ('delete', old.id, old.prompt, old.text);
        END""",
        "INSERT INTO exchanges_text (exchanges_text) VALUES ('rebuild')",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

# Every column of a row, in order (what ``cj.log`` returns).
COLUMNS = (
    "id",
    "at",
    "session",
    "notebook",
    "model",
    "answered_by",
    "route",
    "request_key",
    "request",
    "prompt",
    "reply",
    "text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "ttft",
    "latency",
    "tokens_per_s",
    "streamed",
    "complete",
    "incomplete",
    "interrupted",
    "error_class",
    "error_message",
)
_WRITTEN = COLUMNS[1:]
_FLAGS = {"streamed": 0, "complete": 0, "incomplete": 0, "interrupted": 0}


def _values(row: Row) -> list[Any]:
    return [row.get(name, _FLAGS.get(name)) for name in _WRITTEN]


Row = dict[str, Any]


@dataclass(frozen=True)
class Query:
    """What ``%compass log`` / ``cj.log`` ask for."""

    text: str | None = None
    model: str | None = None
    limit: int = 20
    since: str | None = None  # ISO time, UTC
    notebook: str | None = None


def _fix(path: Path) -> str:
    return (
        f"Move {path} aside (or delete it) to start a new store, or point the store elsewhere with "
        "%compass set store=PATH (COMPASS_STORE); %compass set store=off turns it off."
    )


def _unusable(path: Path, exc: BaseException) -> StoreError:
    """A sqlite3 error as one paragraph naming the file and the fix."""
    detail = str(exc) or type(exc).__name__
    lowered = detail.lower()
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        what = f"is not a readable SQLite store (it is truncated, corrupt or another kind of file: {detail})"
    elif "readonly" in lowered or "read-only" in lowered or "permission" in lowered or "unable to open" in lowered:
        what = f"cannot be written ({detail})"
    elif "locked" in lowered or "busy" in lowered:
        what = f"stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s ({detail})"
    elif "full" in lowered:
        what = f"cannot grow: the disk is full ({detail})"
    else:
        what = f"could not be used ({type(exc).__name__}: {detail})"
    return StoreError(f"The exchange store {path} {what}. {_fix(path)}")


class Store:
    """One SQLite store file; safe to share between the threads of a kernel (one lock, one connection)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    # -- opening -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None:
            return self._connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as exc:
            raise _unusable(self.path, exc) from None
        try:
            self._prepare(connection)
        except StoreError:
            connection.close()
            raise
        except (sqlite3.Error, OSError) as exc:
            connection.close()
            raise _unusable(self.path, exc) from None
        self._connection = connection
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"The exchange store {self.path} was written by a newer compass-jupyter (schema {version}; "
                f"this one reads up to {SCHEMA_VERSION}). Upgrade compass-jupyter (pip install -U compass-jupyter), "
                f"or use another file with %compass set store=PATH."
            )
        if version == 0:
            tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if tables:
                shown = ", ".join(tables[:5])
                raise StoreError(
                    f"The exchange store {self.path} is an SQLite file of something else (tables: {shown}). "
                    f"{_fix(self.path)}"
                )
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")  # WAL keeps it consistent; a power cut may lose the last turn
        connection.execute("PRAGMA journal_size_limit = 16777216")  # a big import leaves no 1 GB WAL behind
        self._migrate(connection, version)

    def _migrate(self, connection: sqlite3.Connection, version: int) -> None:
        while version < SCHEMA_VERSION:
            connection.execute("BEGIN IMMEDIATE")
            try:
                # Another kernel may have migrated while this one waited for the lock.
                current = connection.execute("PRAGMA user_version").fetchone()[0]
                if current == version:
                    for statement in _MIGRATIONS[version]:
                        connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {version + 1}")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            version = connection.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- writing -------------------------------------------------------------------------
    def add(self, row: Row) -> int:
        """Insert one exchange; returns its id."""
        values = _values(row)
        marks = ", ".join("?" for _ in _WRITTEN)
        statement = f"INSERT INTO exchanges ({', '.join(_WRITTEN)}) VALUES ({marks})"
        with self._lock:
            try:
                connection = self._connect()
                cursor = connection.execute(statement, values)
            except sqlite3.Error as exc:
                self._drop()
                raise _unusable(self.path, exc) from None
            return int(cursor.lastrowid or 0)

    def add_many(self, rows: Iterable[Row]) -> None:
        """Insert many exchanges in one transaction (imports and benchmarks)."""
        marks = ", ".join("?" for _ in _WRITTEN)
        statement = f"INSERT INTO exchanges ({', '.join(_WRITTEN)}) VALUES ({marks})"
        with self._lock:
            try:
                connection = self._connect()
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(statement, (_values(row) for row in rows))
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                self._drop()
                raise _unusable(self.path, exc) from None

    def _drop(self) -> None:
        """Forget a connection that failed: the next use opens the file afresh (it may be fixed by then)."""
        if self._connection is not None:
            try:
                self._connection.close()
            except sqlite3.Error:
                pass
            self._connection = None

    # -- reading -------------------------------------------------------------------------
    def _read(self, statement: str, parameters: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            try:
                connection = self._connect()
                cursor = connection.execute(statement, parameters)
                names = [column[0] for column in cursor.description]
                return [dict(zip(names, values)) for values in cursor.fetchall()]
            except sqlite3.Error as exc:
                self._drop()
                raise _unusable(self.path, exc) from None

    def cached(self, request_key: str) -> Row | None:
        """The newest complete exchange of this request, or None."""
        rows = self._read(
            "SELECT * FROM exchanges WHERE request_key = ? AND complete = 1 ORDER BY id DESC LIMIT 1", (request_key,)
        )
        return rows[0] if rows else None

    def get(self, exchange_id: int) -> Row | None:
        rows = self._read("SELECT * FROM exchanges WHERE id = ?", (exchange_id,))
        return rows[0] if rows else None

    def search(self, query: Query) -> list[Row]:
        """Matching exchanges, newest first."""
        where: list[str] = []
        parameters: list[Any] = []
        source = "exchanges"
        order = "id"
        if query.text:
            # Read the index newest first and stop at the limit: a word found in every turn costs
            # the limit's rows, not the whole store's (16 ms -> 0.2 ms at 100,000 turns).
            source = "exchanges_text JOIN exchanges ON exchanges.id = exchanges_text.rowid"
            order = "exchanges_text.rowid"
            where.append("exchanges_text MATCH ?")
            parameters.append(_match_expression(query.text))
        if query.model:
            where.append("(model = ? OR answered_by = ?)")
            parameters += [query.model, query.model]
        if query.since:
            where.append("at >= ?")
            parameters.append(query.since)
        if query.notebook:
            where.append("notebook = ?")
            parameters.append(query.notebook)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        parameters.append(query.limit)
        return self._read(f"SELECT exchanges.* FROM {source} {clause} ORDER BY {order} DESC LIMIT ?", parameters)

    def following(self, exchange_id: int, session: str | None, limit: int = 8) -> list[Row]:
        """The next exchanges of the same kernel run (a tool round's results are in the next request)."""
        return self._read(
            "SELECT * FROM exchanges WHERE id > ? AND session IS ? ORDER BY id LIMIT ?", (exchange_id, session, limit)
        )

    def count(self) -> int:
        return int(self._read("SELECT count(*) AS n FROM exchanges")[0]["n"])


def _match_expression(text: str) -> str:
    """The user's words as an FTS5 query of quoted terms (all must occur): no FTS syntax errors to learn."""
    terms = [term.replace('"', '""') for term in text.split()]
    return " ".join(f'"{term}"' for term in terms) or '""'
