"""SQLite implementation of the checkpoint store (see the package docstring for the rules).

Event ids are kept as 128-bit BLAKE2b digests split in two 64-bit integers: the first is the
table's integer primary key (SQLite's fastest B-tree, looked up and inserted in sorted order),
the second is checked on a hit, so a collision would need all 128 bits to match.

Inserting random keys into one big B-tree touches about one page per key once the tree is much
larger than a commit, so commits would get slower as the index grows. New ids therefore go to
a small ``recent_ids`` table, which is merged into ``shipped_ids`` in key order, in one
statement, once it holds ``MERGE_AT`` ids: each page of the big tree is then written once per
merge rather than once per key. Lookups check both. Dedupe expires
an id by how long ago it was *shipped*, never by the event's own time, which in a backfill may be
years old: ``prune`` deletes by ``shipped_at``. It scans the table rather than keeping a second
index, which would double the cost of every insert; it runs at start and at most hourly.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    key       TEXT PRIMARY KEY,
    path      TEXT NOT NULL,
    format    TEXT NOT NULL,
    offset    INTEGER NOT NULL,
    state     TEXT NOT NULL,
    head_len  INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    updated   REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shipped_ids (
    k1         INTEGER PRIMARY KEY,
    k2         INTEGER NOT NULL,
    shipped_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS recent_ids (
    k1         INTEGER PRIMARY KEY,
    k2         INTEGER NOT NULL,
    shipped_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS output_state (
    name  TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"""

#: recent ids merged into the main index at this many (see the module docstring)
MERGE_AT = 250_000
_ID_TABLES = ("shipped_ids", "recent_ids")

#: SQLite's default limit on bound parameters is 32766 since 3.32; stay well below it.
_IN_CHUNK = 4000  # bound twice per query


EventKey = tuple[int, int]


_HALF = 1 << 64
_SIGN = 1 << 63


def event_key(event_id: str) -> EventKey:
    """The dedupe key of an event id: 128 bits as two signed 64-bit integers.

    Ids that already are 128-bit random values (RMS row ids are GUIDs; Windows event ids are
    32 hex digits) are used as they are, case-insensitively; anything else is hashed with
    BLAKE2b. Both are uniformly spread, which is all the index needs.
    """
    h = event_id.replace("-", "")
    if len(h) == 32:
        try:
            v = int(h, 16)
        except ValueError:
            pass
        else:
            hi, lo = v >> 64, v & (_HALF - 1)
            return (hi - _HALF if hi >= _SIGN else hi), (lo - _HALF if lo >= _SIGN else lo)
    d = hashlib.blake2b(event_id.encode("utf-8"), digest_size=16).digest()
    return int.from_bytes(d[:8], "big", signed=True), int.from_bytes(d[8:], "big", signed=True)


@dataclass(slots=True)
class FileState:
    """Where a file was read up to, and what it looked like then."""

    key: str
    path: str
    format: str
    offset: int
    state: str
    head_len: int
    head_hash: str
    size: int
    mtime_ns: int


class Store:
    def __init__(self, data_dir: Path, readonly: bool = False) -> None:
        """``readonly`` is for decoder workers, which look ids up while the pipeline writes."""
        self.data_dir = data_dir
        self.path = data_dir / "checkpoint.sqlite"
        if readonly:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
            self._db.execute("PRAGMA cache_size=-4096")
            self._read = self._db
            self._last_prune = float("-inf")
            return
        data_dir.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA cache_size=-8192")  # 8 MiB: recent ids fit; merges stream
        self._db.executescript(_SCHEMA)
        self._recent = self._db.execute("SELECT count(*) FROM recent_ids").fetchone()[0]
        # Reads get their own connection: they see committed data only, and never wait for
        # (or interleave with) a commit that runs in another thread.
        self._read = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._read.execute("PRAGMA cache_size=-4096")
        self._last_prune = float("-inf")

    def close(self) -> None:
        if self._read is not self._db:
            self._read.close()
        self._db.close()

    # --- files ------------------------------------------------------------------------

    def files(self) -> dict[str, FileState]:
        """Every known file, without the resume ``state`` (fetch it with ``file_state``):
        a scan over 100,000 files needs only sizes and times, and the state is the bulk."""
        rows = self._read.execute(
            "SELECT key, path, format, offset, '', head_len, head_hash, size, mtime_ns FROM files"
        )
        return {r[0]: FileState(*r) for r in rows}

    def file_state(self, key: str) -> str:
        row = self._read.execute("SELECT state FROM files WHERE key = ?", (key,)).fetchone()
        return row[0] if row else ""

    def forget_files(self, keys: Iterable[str]) -> None:
        """Drop positions of files that are gone (their ids stay, for dedupe)."""
        with self._tx():
            self._db.executemany("DELETE FROM files WHERE key = ?", [(k,) for k in keys])

    # --- ids --------------------------------------------------------------------------

    def shipped(self, keys: Sequence[EventKey]) -> set[EventKey]:
        """The subset of ``keys`` already committed as shipped."""
        firsts = sorted(k[0] for k in keys)
        found: set[EventKey] = set()
        for i in range(0, len(firsts), _IN_CHUNK):
            part = firsts[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._read.execute(
                f"SELECT k1, k2 FROM shipped_ids WHERE k1 IN ({marks})"
                f" UNION ALL SELECT k1, k2 FROM recent_ids WHERE k1 IN ({marks})",
                part + part,
            ).fetchall()
            found.update(rows)
        if found:
            found.intersection_update(keys)  # both halves must match
        return found

    def id_count(self) -> int:
        return sum(
            self._read.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _ID_TABLES
        )

    def prune(self, retention_seconds: float, now: float | None = None) -> int:
        """Forget ids shipped longer ago than the retention; returns how many."""
        cutoff = int((time.time() if now is None else now) - retention_seconds)
        with self._tx():
            gone = sum(
                self._db.execute(f"DELETE FROM {t} WHERE shipped_at < ?", (cutoff,)).rowcount
                for t in _ID_TABLES
            )
        self._last_prune = time.monotonic()
        return gone

    def prune_due(self, every_seconds: float = 3600) -> bool:
        return time.monotonic() - self._last_prune >= every_seconds

    # --- outputs ----------------------------------------------------------------------

    def output_states(self) -> dict[str, dict[str, Any]]:
        rows = self._read.execute("SELECT name, state FROM output_state")
        return {name: json.loads(state) for name, state in rows}

    # --- the one commit ---------------------------------------------------------------

    def commit(
        self,
        files: Iterable[FileState],
        keys: Iterable[EventKey],
        output_states: dict[str, dict[str, Any]],
        now: float | None = None,
    ) -> None:
        """Positions, shipped ids and output states, atomically."""
        t = time.time() if now is None else now
        with self._tx():
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        s.key,
                        s.path,
                        s.format,
                        s.offset,
                        s.state,
                        s.head_len,
                        s.head_hash,
                        s.size,
                        s.mtime_ns,
                        t,
                    )
                    for s in files
                ],
            )
            stamp = int(t)
            cur = self._db.executemany(
                "INSERT OR IGNORE INTO recent_ids VALUES (?, ?, ?)",
                [(k1, k2, stamp) for k1, k2 in sorted(keys)],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO output_state VALUES (?, ?)",
                [(name, json.dumps(st)) for name, st in output_states.items()],
            )
        self._recent += max(cur.rowcount, 0)
        if self._recent >= MERGE_AT:
            self.merge()

    def merge(self) -> None:
        """Move the recent ids into the main index, in key order, in one transaction."""
        with self._tx():
            self._db.execute(
                "INSERT OR IGNORE INTO shipped_ids SELECT * FROM recent_ids ORDER BY k1"
            )
            self._db.execute("DELETE FROM recent_ids")
        self._recent = 0

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
