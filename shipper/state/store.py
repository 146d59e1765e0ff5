"""SQLite implementation of the checkpoint store (see the package docstring for the rules).

Event ids are kept as 16-byte BLAKE2b digests (a collision is out of reach at any volume), in a
``WITHOUT ROWID`` table keyed by the digest, with the time they were shipped. Dedupe expires an
id by how long ago it was *shipped*, never by the event's own time, which in a backfill may be
years old: ``prune`` deletes by the indexed ``shipped_at`` column.
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
    digest     BLOB PRIMARY KEY,
    shipped_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shipped_ids_at ON shipped_ids (shipped_at);
CREATE TABLE IF NOT EXISTS output_state (
    name  TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
"""

#: SQLite's default limit on bound parameters is 32766 since 3.32; stay well below it.
_IN_CHUNK = 5000


def event_key(event_id: str) -> bytes:
    """The dedupe digest of an event id."""
    return hashlib.blake2b(event_id.encode("utf-8"), digest_size=16).digest()


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
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "checkpoint.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA cache_size=-32768")  # 32 MiB of pages for the id index
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # --- files ------------------------------------------------------------------------

    def files(self) -> dict[str, FileState]:
        rows = self._db.execute(
            "SELECT key, path, format, offset, state, head_len, head_hash, size, mtime_ns"
            " FROM files"
        )
        return {r[0]: FileState(*r) for r in rows}

    def forget_files(self, keys: Iterable[str]) -> None:
        """Drop positions of files that are gone (their ids stay, for dedupe)."""
        with self._tx():
            self._db.executemany("DELETE FROM files WHERE key = ?", [(k,) for k in keys])

    # --- ids --------------------------------------------------------------------------

    def shipped(self, digests: Sequence[bytes]) -> set[bytes]:
        """The subset of ``digests`` already committed as shipped."""
        found: set[bytes] = set()
        for i in range(0, len(digests), _IN_CHUNK):
            part = digests[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT digest FROM shipped_ids WHERE digest IN ({marks})", part
            )
            found.update(r[0] for r in rows)
        return found

    def id_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM shipped_ids").fetchone()[0]

    def prune(self, retention_seconds: float, now: float | None = None) -> int:
        cutoff = int((time.time() if now is None else now) - retention_seconds)
        with self._tx():
            cur = self._db.execute("DELETE FROM shipped_ids WHERE shipped_at < ?", (cutoff,))
        return cur.rowcount

    # --- outputs ----------------------------------------------------------------------

    def output_states(self) -> dict[str, dict[str, Any]]:
        rows = self._db.execute("SELECT name, state FROM output_state")
        return {name: json.loads(state) for name, state in rows}

    # --- the one commit ---------------------------------------------------------------

    def commit(
        self,
        files: Iterable[FileState],
        digests: Iterable[bytes],
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
            self._db.executemany(
                "INSERT OR IGNORE INTO shipped_ids VALUES (?, ?)", ((d, int(t)) for d in digests)
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO output_state VALUES (?, ?)",
                [(name, json.dumps(st)) for name, st in output_states.items()],
            )

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
