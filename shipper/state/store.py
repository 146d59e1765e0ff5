"""SQLite implementation of the checkpoint store (see the package docstring for the rules).

Event ids are kept as 128-bit keys (``shipper.state.keys``), two 64-bit halves, filed under
their event's hour (or day): ``id_runs`` holds, per commit and bucket, one row with all that
commit's keys of that bucket as two packed int64 arrays. A commit therefore writes a few rows,
whatever its size, and a lookup reads the keys of the buckets a chunk covers and matches them in
memory. A B-tree with one row per id cost a microsecond or more per id on both sides (SQLite's
per-row work, and pages read at random once the index outgrows the cache); at 180,000 events/s
the whole budget is about 11 µs of CPU per event, so that was a fifth of it. Rows of one bucket
are merged when there are ``COMPACT_AT`` of them (follow mode commits small batches often), so a
lookup reads few rows.

Dedupe expires an id by how long ago it was *shipped*, never by the event's own time, which in a
backfill may be years old: ``prune`` deletes rows by ``shipped_at`` (a merged row keeps the
newest time of its parts, so an id is kept at least as long as the retention, never less).
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import struct
import sys
import time
from array import array
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from shipper.errors import CheckpointError, ConfigError
from shipper.private import make_dirs, open_new, tighten
from shipper.state.keys import EventKey, Keys

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
CREATE TABLE IF NOT EXISTS id_runs (
    bucket     TEXT NOT NULL,
    shipped_at INTEGER NOT NULL,
    hi         BLOB NOT NULL,  -- int64, little-endian, one per key
    lo         BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS id_runs_by_bucket ON id_runs (bucket);
CREATE TABLE IF NOT EXISTS output_state (
    name  TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS output_health (  -- for `shipper status`; Unix times, NULL: never
    name         TEXT PRIMARY KEY,
    last_success REAL,
    last_failure REAL
);
"""

#: rows of one bucket are merged into one when there are this many
COMPACT_AT = 32
#: seconds; an output failing again sooner is not written down again (it retries every 50 ms
#: at its fastest)
FAILURE_NOTE_EVERY = 1.0
SCHEMA_VERSION = 2

_LOOKUP = "SELECT bucket, hi, lo FROM id_runs WHERE bucket IN (SELECT value FROM json_each(?))"
_SWAP = sys.byteorder != "little"


def _packed(values: array[int]) -> bytes:
    if _SWAP:
        values = array("q", values)
        values.byteswap()
    return values.tobytes()


#: at most this many keys are looked up one by one (see ``match``)
_FEW_KEYS = 32
_INT64 = struct.Struct("<q")


def match(keys: Keys, his: bytes, los: bytes) -> set[EventKey]:
    """The keys of ``keys`` found, all 128 bits, in the packed arrays ``his``/``los``.

    Many keys are matched as sets; a few (a small appended piece, a tiny file) are looked for
    one by one in the packed bytes, a ``memmem`` each, rather than building a set of them all.
    Two ids may share a ``hi`` half (sequential GUIDs, replays, test data), so a match is
    always on both halves, and every stored key with that ``hi`` is considered.
    """
    if not len(keys) or not his:
        return set()
    if len(keys) <= _FEW_KEYS:
        return {k for k in keys if _packed_has(his, los, *k)}
    stored_his, stored_los = array("q"), array("q")
    _unpacked(his, stored_his)
    _unpacked(los, stored_los)
    common = set(keys.hi).intersection(stored_his)
    if not common:
        return set()
    stored = {k for k in zip(stored_his, stored_los, strict=True) if k[0] in common}
    return {k for k in keys if k in stored}


def _packed_has(his: bytes, los: bytes, hi: int, lo: int) -> bool:
    """Whether the key (``hi``, ``lo``) is in the packed arrays."""
    needle = _INT64.pack(hi)
    at = his.find(needle)
    while at >= 0:
        if at % 8 == 0 and _INT64.unpack_from(los, at)[0] == lo:
            return True
        at = his.find(needle, at + 1)
    return False


def _unpacked(blob: bytes, into: array[int]) -> None:
    if _SWAP:
        part = array("q", blob)
        part.byteswap()
        into.extend(part)
    else:
        into.frombytes(blob)


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


#: a ``FileState``'s columns with an empty ``state``: the bulk of a row, and read only on resume
_STATELESS = "key, path, format, offset, '', head_len, head_hash, size, mtime_ns"


_SQLITE_MAGIC = b"SQLite format 3\x00"
_T = TypeVar("_T")

#: what to do about a checkpoint that cannot be read, in every message that says so
REMEDY = (
    "restore it from a backup, or set it aside and start a new one with"
    " `shipper state reset CONFIG` (every file is read again; ids already in the outputs are"
    " skipped only where the output dedupes by id, see RELIABILITY.md)"
)


def _explain(path: Path, e: sqlite3.Error) -> CheckpointError:
    """One line for an SQLite failure: what happened to which file, and what to do."""
    text = str(e)
    if "full" in text:
        return CheckpointError(
            f"{path}: disk full while writing the checkpoint; the batch at hand is not"
            " committed and is sent again on the next run; free space and run again"
        )
    if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
        return CheckpointError(f"{path} is damaged ({text}); {REMEDY}")
    return CheckpointError(f"{path}: {text}")


def _guarded(method: Callable[..., _T]) -> Callable[..., _T]:
    """Turn SQLite's exceptions into a ``CheckpointError`` naming the file."""

    @functools.wraps(method)
    def call(self: Store, *args: Any, **kwargs: Any) -> _T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise _explain(self.path, e) from None

    return call


def verify(path: Path) -> None:
    """Refuse a checkpoint that exists but cannot be what the last run committed.

    Starting afresh over an emptied or damaged checkpoint would read every file again and
    append every event to the outputs a second time, silently. A new checkpoint is created
    only where none exists (see ``Store``), so an empty or headless file is never ours.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {e.strerror}") from None
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes); {REMEDY}")
    if head != _SQLITE_MAGIC:
        raise CheckpointError(f"{path} is not an SQLite database; {REMEDY}")
    try:
        db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            problems = [" ".join(r[0].split()) for r in db.execute("PRAGMA quick_check(3)")]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        finally:
            db.close()
    except sqlite3.Error as e:
        raise CheckpointError(f"{path} is damaged ({e}); {REMEDY}") from None
    if problems != ["ok"]:
        raise CheckpointError(f"{path} is damaged ({'; '.join(problems)}); {REMEDY}")
    if not {"files", "output_state"} <= tables and "shipped_ids" not in tables:  # (old: below)
        raise CheckpointError(f"{path} holds no shipper checkpoint; {REMEDY}")


def _create(path: Path) -> None:
    """Create an empty checkpoint whole, under a temporary name first: a crash while creating
    it must not leave an empty file that the next start would have to refuse."""
    fresh = path.with_name(path.name + ".new")
    fresh.unlink(missing_ok=True)
    os.close(open_new(fresh, os.O_WRONLY))  # owner-only from the first byte (its WAL alike)
    db = sqlite3.connect(fresh, isolation_level=None)
    try:
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    finally:
        db.close()
    with open(fresh, "rb") as f:
        os.fsync(f.fileno())
    os.replace(fresh, path)


class Store:
    def __init__(self, data_dir: Path, readonly: bool = False) -> None:
        """``readonly`` is for decoder workers, which look ids up while the pipeline writes."""
        self.data_dir = data_dir
        self.path = data_dir / "checkpoint.sqlite"
        self._outputs: tuple[str, ...] = ()  # this run's (``register_outputs``)
        self._failure_noted: dict[str, float] = {}
        try:
            self._open(data_dir, readonly)
        except sqlite3.Error as e:
            raise _explain(self.path, e) from None

    def _open(self, data_dir: Path, readonly: bool) -> None:
        if readonly:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None)
            self._db.execute("PRAGMA cache_size=-1024")
            self._read = self._db
            self._last_prune = float("-inf")
            return
        make_dirs(data_dir)
        verify(self.path)
        if not self.path.exists():
            _create(self.path)
        for suffix in ("", "-wal", "-shm"):  # SQLite gives its WAL files the database's mode
            tighten(self.path.with_name(self.path.name + suffix))
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA cache_size=-4096")
        self._check_schema()
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        # Reads get their own connection: they see committed data only, and never wait for
        # (or interleave with) a commit that runs in another thread.
        self._read = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._read.execute("PRAGMA cache_size=-2048")
        self._last_prune = float("-inf")

    def close(self) -> None:
        if self._read is not self._db:
            self._read.close()
        self._db.close()

    # --- files ------------------------------------------------------------------------

    @_guarded
    def files(self) -> dict[str, FileState]:
        """Every known file, without the resume ``state`` (fetch it with ``file_state``):
        a scan over 100,000 files needs only sizes and times, and the state is the bulk."""
        rows = self._read.execute(f"SELECT {_STATELESS} FROM files")
        return {r[0]: FileState(*r) for r in rows}

    @_guarded
    def file(self, key: str) -> FileState | None:
        """One known file, without its resume ``state`` (see ``files``)."""
        row = self._read.execute(f"SELECT {_STATELESS} FROM files WHERE key = ?", (key,)).fetchone()
        return FileState(*row) if row else None

    @_guarded
    def file_paths(self) -> list[tuple[str, str, int]]:
        """(key, path, bytes known and not read yet) of every known file."""
        return self._read.execute("SELECT key, path, max(size - offset, 0) FROM files").fetchall()

    @_guarded
    def file_state(self, key: str) -> str:
        row = self._read.execute("SELECT state FROM files WHERE key = ?", (key,)).fetchone()
        return row[0] if row else ""

    @_guarded
    def forget_files(self, keys: Iterable[str]) -> None:
        """Drop positions of files that are gone (their ids stay, for dedupe)."""
        with self._tx():
            self._db.executemany("DELETE FROM files WHERE key = ?", [(k,) for k in keys])

    # --- ids --------------------------------------------------------------------------

    def shipped(self, keys: Keys, buckets: Collection[str]) -> set[EventKey]:
        """Those ``keys`` already committed under one of ``buckets``."""
        found: set[EventKey] = set()
        for his, los in self.packed(buckets).values():
            found |= match(keys, his, los)
        return found

    @_guarded
    def packed(self, buckets: Collection[str]) -> dict[str, tuple[bytes, bytes]]:
        """The committed keys of each of ``buckets`` that has any, as packed (hi, lo) arrays."""
        if not buckets:
            return {}
        parts: dict[str, tuple[list[bytes], list[bytes]]] = {}
        for name, hi, lo in self._read.execute(_LOOKUP, (orjson.dumps(sorted(buckets)),)):
            his, los = parts.setdefault(name, ([], []))
            his.append(hi)
            los.append(lo)
        return {name: (b"".join(his), b"".join(los)) for name, (his, los) in parts.items()}

    @_guarded
    def id_count(self) -> int:
        row = self._read.execute("SELECT coalesce(sum(length(hi)), 0) FROM id_runs").fetchone()
        return int(row[0]) // 8

    @_guarded
    def prune(self, retention_seconds: float, now: float | None = None) -> int:
        """Forget ids shipped longer ago than the retention; returns how many."""
        cutoff = int((time.time() if now is None else now) - retention_seconds)
        with self._tx():
            (gone,) = self._db.execute(
                "SELECT coalesce(sum(length(hi)), 0) / 8 FROM id_runs WHERE shipped_at < ?",
                (cutoff,),
            ).fetchone()
            self._db.execute("DELETE FROM id_runs WHERE shipped_at < ?", (cutoff,))
        self._last_prune = time.monotonic()
        return gone

    def prune_due(self, every_seconds: float = 3600) -> bool:
        return time.monotonic() - self._last_prune >= every_seconds

    # --- outputs ----------------------------------------------------------------------

    @_guarded
    def output_states(self) -> dict[str, dict[str, Any]]:
        rows = self._read.execute("SELECT name, state FROM output_state")
        return {name: json.loads(state) for name, state in rows}

    @_guarded
    def register_outputs(self, names: Iterable[str]) -> None:
        """The outputs of this run: ``shipper status`` lists them (network outputs included,
        which keep no state), with when each last delivered (stamped at every commit that
        delivered something) and last failed (``note_failure``). Outputs no longer configured
        are forgotten here, their times with them."""
        self._outputs = tuple(dict.fromkeys(names))
        with self._tx():
            self._db.execute(
                "DELETE FROM output_health WHERE name NOT IN (SELECT value FROM json_each(?))",
                (orjson.dumps(list(self._outputs)),),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO output_health (name) VALUES (?)",
                [(n,) for n in self._outputs],
            )

    @_guarded
    def note_failure(self, name: str, now: float | None = None) -> None:
        """``name`` failed to deliver (or asked to retry) at ``now``: written at most once
        every ``FAILURE_NOTE_EVERY`` seconds an output, in the thread that commits."""
        t = time.time() if now is None else now
        if t - self._failure_noted.get(name, float("-inf")) < FAILURE_NOTE_EVERY:
            return
        self._failure_noted[name] = t
        with self._tx():
            self._db.execute(
                "INSERT INTO output_health (name, last_failure) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET last_failure = excluded.last_failure",
                (name, t),
            )

    # --- the one commit ---------------------------------------------------------------

    @_guarded
    def commit(
        self,
        files: Iterable[FileState],
        keys: Mapping[str, Keys],
        output_states: dict[str, dict[str, Any]],
        now: float | None = None,
    ) -> None:
        """Positions, shipped ids (by bucket) and output states, atomically."""
        t = time.time() if now is None else now
        files = list(files)
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
            self._db.executemany(
                "INSERT INTO id_runs VALUES (?, ?, ?, ?)",
                [(b, stamp, _packed(k.hi), _packed(k.lo)) for b, k in keys.items() if len(k)],
            )
            if keys:
                self._compact(keys)
            self._db.executemany(
                "INSERT OR REPLACE INTO output_state VALUES (?, ?)",
                [(name, json.dumps(st)) for name, st in output_states.items()],
            )
            if files:  # a delivered batch (committed once every output acknowledged it)
                self._db.executemany(
                    "INSERT INTO output_health (name, last_success) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET last_success = excluded.last_success",
                    [(name, t) for name in self._outputs],
                )

    def _compact(self, buckets: Iterable[str]) -> None:
        """Merge the rows of each of ``buckets`` that has ``COMPACT_AT`` or more (in the
        commit's transaction)."""
        crowded = self._db.execute(
            "SELECT bucket FROM id_runs WHERE bucket IN (SELECT value FROM json_each(?))"
            " GROUP BY bucket HAVING count(*) >= ?",
            (orjson.dumps(list(buckets)), COMPACT_AT),
        ).fetchall()
        for (name,) in crowded:
            rows = self._db.execute(
                "SELECT shipped_at, hi, lo FROM id_runs WHERE bucket = ?", (name,)
            ).fetchall()
            self._db.execute("DELETE FROM id_runs WHERE bucket = ?", (name,))
            self._db.execute(
                "INSERT INTO id_runs VALUES (?, ?, ?, ?)",
                (
                    name,
                    max(r[0] for r in rows),
                    b"".join(r[1] for r in rows),
                    b"".join(r[2] for r in rows),
                ),
            )

    def _check_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        old = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'shipped_ids'").fetchone()
        if version < SCHEMA_VERSION and old:
            raise ConfigError(
                f"{self.path} was written by an earlier development version of shipper whose"
                " id index this version cannot read; move it away to start a new checkpoint"
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


def open_readonly(path: Path) -> sqlite3.Connection:
    """Read a checkpoint that a running shipper may be writing, without a lock and without
    writing anything (``shipper status``).

    While a shipper runs, the checkpoint is in WAL mode with its ``-wal`` and ``-shm`` files:
    a read-only connection reads the last commit through them and never blocks the writer.
    With no ``-wal`` file (no shipper running, or one that closed cleanly) everything is in
    the database file, which is read as immutable: a read-only connection would create the
    WAL files and leave them behind. Raises ``CheckpointError`` naming the file.
    """
    uri = path.resolve().as_uri()
    wal = path.with_name(path.name + "-wal").exists()
    for query in ("?mode=ro", "?immutable=1") if wal else ("?immutable=1", "?mode=ro"):
        try:
            db = sqlite3.connect(uri + query, uri=True, timeout=5)
            try:
                db.execute("SELECT count(*) FROM files").fetchone()
            except BaseException:
                db.close()
                raise
            return db
        except sqlite3.Error as e:
            error = e
    raise _explain(path, error)


def set_aside(data_dir: Path) -> Path | None:
    """Move the checkpoint (and its WAL files) aside under a dated name, so that the next run
    starts a new one; nothing is deleted. Returns the new name, or None if there was none."""
    path = data_dir / "checkpoint.sqlite"
    if not path.exists():
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.set-aside-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            os.replace(part, aside.with_name(aside.name + suffix))
    return aside
