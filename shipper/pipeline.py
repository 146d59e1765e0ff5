"""The one module that wires sources, decoders, outputs and the checkpoint store.

The delivery rule, enforced here:

1. Files are cut into chunks in this process and decoded (parsed, normalised, encoded), big
   chunks in worker processes and small ones here, results taken in source order.
2. Events whose id was already shipped (committed) or is already in the batch being built are
   skipped and counted as duplicates: the same record from an overlapping re-download. The
   decoder looks ids up in the store as of some commit (``Work.as_of``); the keys of the
   commits made since, which it could not see, are checked here.
3. A batch goes to every output; ``send`` returns only when the output holds it durably. An
   output that says "retry later" gets the same batch again after a backoff, and the sources
   wait meanwhile (backpressure); outputs that already acknowledged it are not sent it again.
4. Only then, in one transaction: the file positions reached (the end of the last chunk of each
   file in the batch), the ids shipped, and the outputs' states. Quarantined lines are written
   and fsynced just before, their file's length committed the same way.

Delivery and commit run in a thread beside the decoding of the next batch, one batch at a time:
a batch is committed before the next one is sent. So a crash at any moment loses nothing
(uncommitted positions are read again) and duplicates nothing that an idempotent output or the
id index can catch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from filelock import FileLock, Timeout

from shipper.backoff import backoff
from shipper.config import Config, NdjsonOutput
from shipper.decoding import Work, decode_chunk, sample_of, spool_path
from shipper.errors import ConfigError, OutputFailed, RetryLater
from shipper.memory import return_big_blocks
from shipper.outputs import EventBatch, Output, build_output
from shipper.outputs.ndjson import NdjsonFileOutput
from shipper.pool import OrderedPool
from shipper.sources import FORMATS, Chunk, FileRefused, Quarantine
from shipper.sources.discovery import Candidate, open_position, scan
from shipper.sources.identity import file_key
from shipper.spool import Spooled
from shipper.state import FileState, Keys, Store
from shipper.state.keys import EventKey
from shipper.state.lookup import MAX_AGE, SnapshotLookup

log = logging.getLogger("shipper")

#: below this much unread data, decoding in-process beats starting worker processes
POOL_THRESHOLD = 8 * 1024 * 1024
QUARANTINE_STATE = "quarantine"
#: characters of a quarantined record's raw text kept in the quarantine file
QUARANTINE_RAW = 64 * 1024
#: chunks at least this big go to worker processes, which read them from the file themselves
REREAD_MIN = 64 * 1024
#: in follow mode, scanning the inputs takes at most this share of the time: a folder of 100,000
#: files takes a second to scan, and re-scanning it every second would keep a core busy
SCAN_SHARE = 0.25
#: a batch holding this many bytes of documents in memory goes out, however few its events:
#: big chunks' documents wait in spool files, but a folder of tiny files makes tiny runs
BATCH_BYTES = 4 * 1024 * 1024


@dataclass
class Summary:
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    files_read: int = 0
    files_refused: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.files_refused and not self.errors


@dataclass
class Progress:
    """What a progress display needs; the pipeline updates it, a display reads it."""

    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    records: int = 0


class _Decoders:
    """Ordered decoding, with a bounded number of chunks in flight.

    Big chunks go to worker processes; small ones (a folder of one-record files, the lines
    appended since the last poll) are decoded here, when their turn comes: pickling them to a
    worker and the answer back costs more than decoding them (a folder of tiny files ships
    1.6 times faster this way).
    """

    def __init__(self, workers: int, store: Store) -> None:
        self.workers = workers
        self._store = store
        self._lookup = SnapshotLookup(store)  # for decoding in this process
        self._pool: OrderedPool | None = None
        self._pool_allowed = False
        self._moved: set[str] = set()  # files reported as moved while being read

    def use_pool(self, pending_bytes: int) -> None:
        """Whether this pass may start workers (they start with its first big chunk)."""
        self._pool_allowed = self.workers > 1 and pending_bytes >= POOL_THRESHOLD

    def map(self, chunks: Iterator[Chunk], seq: Callable[[], int]) -> Iterator[Work]:
        sent: deque[tuple[Chunk, bool]] = deque()  # (chunk, whether a worker has it)
        try:
            for chunk in chunks:
                pool = self._pool_for(chunk)
                if pool is None:
                    sent.append((chunk, False))
                else:
                    size = len(chunk.payload)
                    # the worker reads the bytes itself; ours are kept until it answers, in
                    # case the file's name no longer leads to them (see decode_in_worker)
                    lean = dataclasses.replace(chunk, payload=b"")
                    sent.append((chunk, True))
                    pool.call(lean, size, seq(), sample_of(chunk.payload))
                # workers stay busy while a batch is sent; memory stays bounded
                limit = self.workers + 4 if self._pool is not None else 1
                while len(sent) >= limit:
                    yield self._next(*sent.popleft(), seq)
            while sent:
                yield self._next(*sent.popleft(), seq)
        finally:  # stopped early: the answers still on their way must not reach the next pass
            while sent and self._pool is not None and len(self._pool):
                if not sent.popleft()[1]:
                    continue
                try:
                    work = self._pool.answer()
                except Exception:
                    break
                if work is not None and isinstance(work.run, Spooled):
                    work.run.remove()

    def _pool_for(self, chunk: Chunk) -> OrderedPool | None:
        if chunk.end - chunk.start < REREAD_MIN or not self._pool_allowed:
            return None
        if self._pool is None:
            main = "shipper.decoding:worker_main"
            self._pool = OrderedPool(self.workers, main, str(self._store.data_dir))
        return self._pool

    def _next(self, chunk: Chunk, pooled: bool, seq: Callable[[], int]) -> Work:
        if not pooled:
            return Work(chunk, decode_chunk(chunk), self._lookup, seq())
        assert self._pool is not None
        work: Work | None = self._pool.answer()
        if work is None:  # the file's name leads elsewhere now: decode the bytes we read
            if chunk.path not in self._moved:
                self._moved.add(chunk.path)
                log.warning(
                    "%s: renamed, replaced or removed while being read; its bytes already"
                    " read are decoded from the shipper's own copy",
                    chunk.path,
                )
            return Work(chunk, decode_chunk(chunk), self._lookup, seq())
        chunk.payload = chunk.prefix = b""
        work.chunk = chunk
        return work

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _Batch:
    def __init__(self) -> None:
        self.events = EventBatch()
        self.his: set[int] = set()  # the hi half of the key of every event in the batch
        self.groups: dict[str, Keys] = {}  # the whole keys by bucket, for the store
        self.positions: dict[str, FileState] = {}
        self.quarantined: list[Quarantine] = []
        self.duplicates = 0
        self.held = 0  # bytes of documents and reader states held in memory

    def add(self, work: Work, shipped: set[EventKey], his: set[int]) -> None:
        """Add a chunk's events, less those whose key is in ``shipped`` or already here.

        ``his`` is the set of the chunk's ``hi`` halves. The usual chunk has no duplicate at
        all, which set operations on the halves establish in C (no ``hi`` in common means no
        key in common); only a chunk with a ``hi`` in common is taken apart event by event,
        and there the whole key decides: two ids may share a half.
        """
        ev = self.events
        hi, lo = work.keys.hi, work.keys.lo
        if not shipped and len(his) == len(hi) and self.his.isdisjoint(his):
            if work.run:
                ev.add_ndjson(work.run, work.count)
                if not isinstance(work.run, Spooled):
                    self.held += len(work.run)
            ev.ids += work.ids
            ev.datasets += work.datasets
            ev.timestamps += work.timestamps
            self.his |= his
            self._file(work.groups)
            return
        mine = _whole(self.groups)
        run = work.run
        if isinstance(run, Spooled):
            data = run.read()
            run.remove()
        else:
            data = run
        docs = data.split(b"\n")[:-1]
        kept, kept_at = [], []
        for i, k in enumerate(work.keys):
            if k in shipped or k in mine:
                self.duplicates += 1
                continue
            mine.add(k)
            self.his.add(k[0])
            kept.append(docs[i])
            kept_at.append(i)
            if work.ids:
                ev.ids.append(work.ids[i])
                ev.datasets.append(work.datasets[i])
                ev.timestamps.append(work.timestamps[i])
        if kept:
            run = b"\n".join(kept) + b"\n"
            ev.add_ndjson(run, len(kept))
            self.held += len(run)
        # file the kept keys, each once (a key repeated within the chunk is in its group twice)
        fresh = {(hi[i], lo[i]) for i in kept_at}
        groups = {}
        for name, keys in work.groups.items():
            pairs = [p for p in keys if p in fresh]
            fresh.difference_update(pairs)
            if pairs:
                groups[name] = Keys.of(pairs)
        self._file(groups)

    def _file(self, groups: dict[str, Keys]) -> None:
        for name, keys in groups.items():
            group = self.groups.get(name)
            if group is None:
                self.groups[name] = Keys(keys.hi[:], keys.lo[:])
            else:
                group.hi.extend(keys.hi)
                group.lo.extend(keys.lo)


@dataclass(slots=True)
class _Opened:
    """A file being read: its state when opened, and its chunks still in decoding."""

    state: FileState
    candidate: Candidate
    unprocessed: int = 0
    read: bool = False  # every chunk of it handed out


class Pipeline:
    def __init__(
        self,
        config: Config,
        once: bool,
        progress: Progress | None = None,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.once = once
        self.progress = progress or Progress()
        self._on_progress = on_progress or (lambda: None)
        self.summary = Summary()
        self._stop = threading.Event()
        workers = config.pipeline.workers
        self._workers = (os.cpu_count() or 1) if workers == "auto" else int(workers)
        # files being read: their state when opened, and the chunks of theirs not yet through
        self._opened: dict[str, _Opened] = {}
        self._refused: dict[str, tuple[int, int]] = {}  # file key -> (size, mtime) refused
        self._unreadable_now: dict[str, str] = {}  # file key -> why it cannot be opened
        self._empty: set[str] = set()  # empty files already mentioned
        self._seq = 0  # commits made so far in this run
        # (commit number, hi set, keys by bucket) of the batches committed lately
        self._recent: deque[tuple[int, set[int], dict[str, Keys]]] = deque()
        self._delivering: threading.Thread | None = None
        self._delivery_error: BaseException | None = None
        self._metadata = True  # whether some output reads ids, datasets and timestamps

    def stop(self) -> None:
        """Finish the batch at hand, commit it, and return from ``run`` (signal-safe)."""
        self._stop.set()

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> Summary:
        started = time.monotonic()
        return_big_blocks()
        data_dir = self.config.data_path
        data_dir.mkdir(parents=True, exist_ok=True)
        # Two shippers on one checkpoint would each commit the other's uncommitted work away.
        lock = FileLock(data_dir / "shipper.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise ConfigError(
                f"data_dir {data_dir} is in use by another shipper (lock: {lock.lock_file});"
                " give each running shipper its own data_dir"
            ) from None
        try:
            return self._run(data_dir, started)
        finally:
            lock.release()

    def _run(self, data_dir: Path, started: float) -> Summary:
        spool = spool_path(data_dir)
        shutil.rmtree(spool, ignore_errors=True)  # a crash's leftovers: never committed
        spool.mkdir(exist_ok=True)  # (a mount point stays)
        store = Store(data_dir)
        outputs: list[Output] = []
        quarantine = NdjsonFileOutput(NdjsonOutput(path=str(quarantine_path(data_dir))))
        try:
            states = store.output_states()
            initial: dict[str, dict[str, Any]] = {}
            for settings in self.config.outputs:
                out = build_output(settings, data_dir)
                first = out.restore(states.get(out.name))
                if first is not None:
                    initial[out.name] = first
                outputs.append(out)
            first = quarantine.restore(states.get(QUARANTINE_STATE))
            if first is not None:
                initial[QUARANTINE_STATE] = first
            if initial:  # where our writing starts, before any of it happens
                store.commit([], {}, initial)
            self._quarantine_state = states.get(QUARANTINE_STATE) or initial[QUARANTINE_STATE]
            self._store, self._outputs, self._quarantine = store, outputs, quarantine
            self._metadata = any(out.needs_metadata for out in outputs)
            self._decoders = _Decoders(self._workers, store)
            while True:
                if store.prune_due():
                    store.prune(self.config.dedupe.retention_days * 86400)
                self._pass()
                if self.once or self._stop.is_set():
                    break
                self._stop.wait(poll_wait(self.config.pipeline.poll_interval, self._scan_took))
                if self._stop.is_set():
                    break
        except OutputFailed as e:
            log.error("%s", e)
            self.summary.errors.append(str(e))
        finally:
            if self._delivering is not None:
                self._delivering.join()
            if hasattr(self, "_decoders"):
                self._decoders.close()
            for out in outputs:
                out.close()
            quarantine.close()
            store.close()
            self.summary.seconds = time.monotonic() - started
        return self.summary

    def _pass(self) -> None:
        """One scan of the inputs, reading everything new, committed batch by batch."""
        candidates = self._scan()
        pending = sum(c.size - (c.known.offset if c.known else 0) for c in candidates)
        p = self.progress
        p.files_total += len(candidates)
        p.bytes_total += max(pending, 0)
        self._decoders.use_pool(pending)
        batch = _Batch()
        limit = self.config.pipeline.batch_events
        refused: set[str] = set()
        for work in self._decoders.map(self._chunks(candidates), lambda: self._seq):
            chunk = work.chunk
            opened = self._through(chunk.path)
            if work.refused is not None or chunk.path in refused:
                if chunk.path not in refused:
                    refused.add(chunk.path)
                    self._refuse(opened.candidate, work.refused or "")
                if isinstance(work.run, Spooled):  # a later chunk of a refused file
                    work.run.remove()
                continue
            shipped = work.shipped
            recent = self._recent
            while recent and recent[0][0] <= work.seq - MAX_AGE:
                recent.popleft()  # covered by this lookup, and by every later one's
            his = set(work.keys.hi)
            for number, committed, groups in recent:
                # a copy of an event is filed under the same bucket (or a searched neighbour)
                if (
                    number > work.as_of
                    and not work.searched.isdisjoint(groups)
                    and not committed.isdisjoint(his)
                ):
                    shipped |= _committed(groups, work.keys)
            batch.add(work, shipped, his)
            batch.quarantined += work.quarantined
            at = opened.state
            batch.held += len(chunk.state_out)
            batch.positions[chunk.path] = FileState(
                at.key,
                at.path,
                at.format,
                chunk.end,
                chunk.state_out,
                at.head_len,
                at.head_hash,
                max(at.size, chunk.end),
                at.mtime_ns,
            )
            p.bytes_done += chunk.end - chunk.start
            p.records += work.count
            self._on_progress()
            if (
                len(batch.events) >= limit
                or len(batch.quarantined) >= limit
                or batch.held >= BATCH_BYTES
            ):
                self._deliver(batch)
                batch = _Batch()
            if self._stop.is_set():
                break
        self._deliver(batch)
        self._settle()

    def _scan(self) -> deque[Candidate]:
        """The files to read now; forgets the known files that are gone."""
        started = time.monotonic()
        found = scan(self.config.inputs, self._store.file, self._stop.is_set)
        self._scan_took = time.monotonic() - started
        if self._stop.is_set():
            return deque()  # the scan was cut short: what it did not see is not gone
        seen = found.seen
        store = self._store
        gone = []
        for key, at, unread in store.file_paths():
            if key in seen or os.path.exists(at):
                continue
            gone.append(key)
            if unread:
                log.warning(
                    "%s: gone (deleted, or renamed where no input looks) with %d bytes never"
                    " read; they cannot be shipped",
                    at,
                    unread,
                )
        if gone:
            store.forget_files(gone)
        refused = self._refused
        return deque(c for c in found.candidates if refused.get(c.key) != (c.size, c.mtime_ns))

    def _chunks(self, candidates: deque[Candidate]) -> Iterator[Chunk]:
        """Every chunk of every candidate file, in order; refusals are counted, not raised.

        Candidates are taken off ``candidates`` as they are read, so that a pass over many
        files holds only those not read yet.
        """
        while candidates:
            if self._stop.is_set():
                return
            cand = candidates.popleft()
            try:
                yield from self._file_chunks(cand)
            except FileRefused as e:
                self._refuse(cand, str(e))
            except FileNotFoundError:
                log.warning(
                    "%s: gone before it could be read (renamed: read under its new name at"
                    " the next scan; deleted: nothing to read)",
                    cand.path,
                )
            except OSError as e:
                self._unreadable(cand, f"{cand.path}: cannot read: {e.strerror or e}")
            except Exception as e:  # a reader's bug must cost this file, not the run
                self._refuse(cand, f"{cand.path}: cannot read: {type(e).__name__}: {e}")
            finally:
                opened = self._opened.get(cand.path)
                if opened is not None:
                    opened.read = True
                    if not opened.unprocessed:
                        del self._opened[cand.path]
            self.progress.files_done += 1

    def _through(self, path: str) -> _Opened:
        """A chunk of ``path`` came out of decoding; forget the file after its last one."""
        opened = self._opened[path]
        opened.unprocessed -= 1
        if opened.read and not opened.unprocessed:
            del self._opened[path]
        return opened

    def _file_chunks(self, cand: Candidate) -> Iterator[Chunk]:
        with open(cand.path, "rb") as f:
            if self._unreadable_now.pop(cand.key, None) is not None:
                log.info("%s: readable again", cand.path)
            cand = self._opened_as(f, cand)
            if os.fstat(f.fileno()).st_size == 0:
                # an empty download (or one just created): nothing to tell its format by;
                # it is read, from the start, once it has something in it
                if cand.key not in self._empty:
                    self._empty.add(cand.key)
                    log.info("%s: empty; it will be read when it grows", cand.path)
                return
            self._empty.discard(cand.key)
            where = open_position(f, cand)
            state = self._store.file_state(cand.key) if where.reason == "resumed" else ""
            fmt_name = where.format
            if fmt_name is None:
                f.seek(0)
                head = f.read(4096)
                fmt_name = next(
                    (n for n in cand.input.formats if FORMATS[n].sniff(head, cand.path)), None
                )
                if fmt_name is None:
                    raise FileRefused(
                        f"{cand.path}: not a recognised {cand.input.type} file"
                        f" (tried: {', '.join(cand.input.formats)})"
                    )
            if where.reason in ("truncated", "replaced"):
                log.info("%s: %s since last read; reading from the start", cand.path, where.reason)
            position = FileState(
                cand.key,
                cand.path,
                fmt_name,
                where.start,
                state,
                where.head_len,
                where.head_hash,
                cand.size,
                cand.mtime_ns,
            )
            opened = self._opened[cand.path] = _Opened(position, cand)
            self.summary.files_read += 1
            options = self._options(cand.input)
            final = self.once
            for chunk in FORMATS[fmt_name].chunks(f, cand.path, where.start, state, final, options):
                chunk.key = cand.key
                opened.unprocessed += 1
                yield chunk

    def _opened_as(self, f: BinaryIO, cand: Candidate) -> Candidate:
        """The candidate for the file actually opened: the name may lead to another file than
        at the scan (rotated in between), and positions must go to the file read."""
        st = os.fstat(f.fileno())
        key = file_key(st, cand.path)
        if key == cand.key:
            return cand
        log.info("%s: replaced since the scan; reading the file it names now", cand.path)
        return Candidate(
            cand.path, key, st.st_size, st.st_mtime_ns, cand.input, self._store.file(key)
        )

    def _options(self, inp: Any) -> dict[str, object]:
        options = dict(inp.options())
        options["keep_original"] = self.config.pipeline.keep_original
        options["max_record_bytes"] = self.config.pipeline.max_record_bytes
        options["metadata"] = self._metadata
        return options

    def _unreadable(self, cand: Candidate, reason: str) -> None:
        """A file that cannot be opened (permissions, a lock) counts as refused; it is tried
        again at every scan, but said again only when the reason changes."""
        if self._unreadable_now.get(cand.key) == reason:
            return
        self._unreadable_now[cand.key] = reason
        log.error("refused: %s (tried again at every scan)", reason)
        self.summary.files_refused += 1

    def _refuse(self, cand: Candidate | None, reason: str) -> None:
        log.error("refused: %s", reason)
        self.summary.files_refused += 1
        if cand is not None:  # follow mode: say it once, until the file changes
            self._refused[cand.key] = (cand.size, cand.mtime_ns)

    # --- delivery ---------------------------------------------------------------------

    def _deliver(self, batch: _Batch) -> None:
        """Hand a batch to the delivery thread, once the previous one is committed.

        Delivery (outputs, then the commit) runs beside the decoding of the next batch, so
        that fsyncs and network round trips do not stall the decoders; one batch at a time,
        so the order of commits is the order of the sources.
        """
        self._settle()
        if not batch.positions and not batch.quarantined:
            return
        # Decoders that look ids up before this batch's commit is visible check these keys
        # themselves: they carry the commit count from when they were handed their chunk.
        self._recent.append((self._seq + 1, batch.his, batch.groups))
        self._delivering = threading.Thread(
            target=self._deliver_now, args=(batch,), name="deliver", daemon=True
        )
        self._delivering.start()

    def _deliver_now(self, batch: _Batch) -> None:
        try:
            states = self._send(batch)
            if batch.quarantined:
                self._quarantine_write(batch.quarantined)
                states[QUARANTINE_STATE] = self._quarantine_state
            self._store.commit(batch.positions.values(), batch.groups, states)
            batch.events.release()
        except BaseException as e:  # handed to the pipeline's thread by _settle
            self._delivery_error = e
            return
        self.summary.events += len(batch.events)
        self.summary.duplicates += batch.duplicates
        self.summary.quarantined += len(batch.quarantined)

    def _send(self, batch: _Batch) -> dict[str, dict[str, Any]]:
        """Send to every output until each has acknowledged; returns their states.

        An output that asks to retry gets the same batch again after the project's backoff,
        while the sources wait. Following, that goes on until it recovers or the shipper is
        stopped; with ``--once`` for at most ``pipeline.once_retry_seconds``, said when the
        waiting starts."""
        states: dict[str, dict[str, Any]] = {}
        waiting = list(self._outputs) if len(batch.events) else []
        attempt = 0
        limit = self.config.pipeline.once_retry_seconds
        since = 0.0
        while waiting:
            for out in list(waiting):
                try:
                    ack = out.send(batch.events)
                except RetryLater as e:
                    if attempt == 0:
                        since = time.monotonic()
                        until = (
                            f"giving up after {limit:g} s (pipeline.once_retry_seconds)"
                            if self.once
                            else "the sources wait meanwhile"
                        )
                        log.warning("%s: %s; retrying, %s", out.name, e, until)
                    else:
                        log.info("%s: still unavailable: %s", out.name, e)
                    continue
                if ack.state is not None:
                    states[out.name] = ack.state
                self.summary.dead_lettered += ack.dead_lettered
                waiting.remove(out)
            if not waiting:
                break
            attempt += 1
            if self.once and time.monotonic() - since >= limit:
                names = ", ".join(o.name for o in waiting)
                raise OutputFailed(
                    f"{names}: still unavailable after {time.monotonic() - since:.0f} s;"
                    " nothing of this batch was committed, run again when it is back"
                )
            delay = backoff(attempt, 0.5, 30.0)
            if self.once:
                delay = min(delay, max(0.0, since + limit - time.monotonic()))
            if self._stop.wait(delay) and attempt >= 3:
                raise OutputFailed("stopped while outputs were unavailable; batch not committed")
        return states

    def _settle(self) -> None:
        """Wait for the batch in delivery, if any; re-raise its failure."""
        if self._delivering is not None:
            self._delivering.join()
            self._delivering = None
            if self._delivery_error is not None:
                raise self._delivery_error
            self._seq += 1

    _quarantine_state: dict[str, Any]
    _scan_took = 0.0  # seconds the last scan of the inputs took
    _quarantine_logged = 0

    def _quarantine_write(self, items: list[Quarantine]) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        docs = []
        for q in items:
            entry = {
                "time": now,
                "path": q.path,
                "line": q.line,
                "offset": q.offset,
                "reason": q.reason,
                "raw": q.raw,
            }
            if len(q.raw) > QUARANTINE_RAW:  # enough to see what it was; size and hash say
                whole = q.raw.encode("utf-8", "surrogatepass")  # the rest
                entry["raw"] = q.raw[:QUARANTINE_RAW]
                entry["raw_truncated"] = {
                    "bytes": len(whole),
                    "sha256": hashlib.sha256(whole).hexdigest(),
                }
            docs.append(orjson.dumps(entry))
            if self._quarantine_logged < 100:
                log.warning("quarantined %s:%s (offset %d): %s", q.path, q.line, q.offset, q.reason)
                self._quarantine_logged += 1
                if self._quarantine_logged == 100:
                    log.warning("more quarantined lines are in the quarantine file only")
        ack = self._quarantine.send(EventBatch(docs=docs))
        assert ack.state is not None
        self._quarantine_state = ack.state


def _whole(groups: dict[str, Keys]) -> set[EventKey]:
    """Every key in ``groups``."""
    return {k for keys in groups.values() for k in keys}


def _committed(groups: dict[str, Keys], keys: Keys) -> set[EventKey]:
    """Those of ``keys`` that are among the keys in ``groups`` (all 128 bits)."""
    return _whole(groups).intersection(keys)


def poll_wait(interval: float, scan_took: float) -> float:
    """Seconds to wait before the next scan in follow mode: ``interval``, or longer when a
    scan takes so long that scanning would take more than ``SCAN_SHARE`` of the time."""
    return max(interval, scan_took * (1 / SCAN_SHARE - 1))


def quarantine_path(data_dir: Path) -> Path:
    return data_dir / "quarantine.jsonl"
