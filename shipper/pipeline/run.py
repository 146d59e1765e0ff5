"""The run loop: scan the inputs, cut files into chunks, route them to decoding, build batches,
hand them to delivery; again after ``poll_interval`` when following.

The delivery rule, enforced by this loop and ``delivery``:

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

import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from filelock import Timeout

from shipper.config import Config
from shipper.decoding import spool_path
from shipper.errors import ConfigError, OutputFailed
from shipper.memory import return_big_blocks
from shipper.metrics import Metrics
from shipper.outputs import Output, build_output
from shipper.pipeline.batch import Batch
from shipper.pipeline.delivery import QUARANTINE_STATE, Delivery, Stopped
from shipper.pipeline.progress import Progress, Summary, heartbeat
from shipper.pipeline.routing import Decoders, decoder_options
from shipper.private import data_dir_lock, make_dirs
from shipper.redact import mask
from shipper.rejects import RejectFile
from shipper.sources import FORMATS, Chunk, FileRefused
from shipper.sources.discovery import Candidate, begin, scan
from shipper.sources.identity import file_key
from shipper.state import FileState, Store

__all__ = ["Pipeline", "poll_wait", "quarantine_path"]

log = logging.getLogger("shipper")

#: in follow mode, scanning the inputs takes at most this share of the time: a folder of 100,000
#: files takes a second to scan, and re-scanning it every second would keep a core busy
SCAN_SHARE = 0.25
#: a batch holding this many bytes of documents in memory goes out, however few its events:
#: big chunks' documents wait in spool files, but a folder of tiny files make tiny runs
BATCH_BYTES = 4 * 1024 * 1024


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
        self.metrics = Metrics(config.inputs)  # served when metrics.listen is set
        workers = config.pipeline.workers
        self._workers = (os.cpu_count() or 1) if workers == "auto" else int(workers)
        # files being read: their state when opened, and the chunks of theirs not yet through
        self._opened: dict[str, _Opened] = {}
        self._refused: dict[str, tuple[int, int]] = {}  # file key -> (size, mtime) refused
        self._unreadable_now: dict[str, str] = {}  # file key -> why it cannot be opened
        self._empty: set[str] = set()  # empty files already mentioned
        self._decoding: dict[str, object] = {}  # options for the decoders from the outputs
        # bytes to ship found by the last scan, and bytes committed before it: the backlog
        self._scan_pending = 0
        self._committed_at_scan = 0

    def stop(self) -> None:
        """Finish the batch at hand, commit it, and return from ``run`` (signal-safe).

        Every wait ends at once (the poll interval, the delivery backoff); a batch that an
        output has not acknowledged is not committed. ``pipeline.shutdown_timeout`` is
        enforced by the caller (``shipper.stopping``), which owns the process."""
        self._stop.set()

    @property
    def backlog(self) -> int:
        """Bytes of the inputs not committed: found by the last scan (past the committed
        positions) and not committed since. Bytes read but not yet delivered to every output
        (one down, say) are still backlog: they are read again if the shipper stops."""
        committed = self.metrics.committed_bytes - self._committed_at_scan
        return max(0, self._scan_pending - committed)

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> Summary:
        started = time.monotonic()
        return_big_blocks()
        data_dir = self.config.data_path
        make_dirs(data_dir)  # owner-only, as everything in it
        # Two shippers on one checkpoint would each commit the other's uncommitted work away.
        lock = data_dir_lock(data_dir)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise ConfigError(
                f"data_dir {data_dir} is in use by another shipper (lock: {lock.lock_file});"
                " give each running shipper its own data_dir"
            ) from None
        try:
            self._serve_metrics()
            return self._run(data_dir, started)
        finally:
            self.metrics.close()
            lock.release()

    def _serve_metrics(self) -> None:
        address = self.config.metrics.address
        if address is None:
            return
        self.metrics.backlog = lambda: self.backlog
        self.metrics.newest_event = lambda: self.summary.newest_event
        self.metrics.serve(*address)
        log.info("metrics on http://%s:%d/metrics", *(self.metrics.address or address))

    def _run(self, data_dir: Path, started: float) -> Summary:
        spool = spool_path(data_dir)
        shutil.rmtree(spool, ignore_errors=True)  # a crash's leftovers: never committed
        make_dirs(spool)  # (a mount point stays)
        store = Store(data_dir)
        outputs: list[Output] = []
        quarantine = RejectFile(quarantine_path(data_dir))
        delivery: Delivery | None = None
        beat: threading.Thread | None = None
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
            # for `shipper status`; by their names as shown (a URL's password masked), as a
            # password has no business in the checkpoint
            store.register_outputs(mask(out.name) for out in outputs)
            self.metrics.on_failure = lambda name: store.note_failure(mask(name))
            self._store = store
            self._decoding = decoder_options(outputs)
            if self.metrics.address is not None or not self.once:
                # the lag (the heartbeat's, the metric's) needs the events' timestamps: about
                # 320 instructions an event more (callgrind, 40,000 RMS events in-process to
                # NDJSON: 0.3% of the run), so always when following, with --once only for
                # the metrics
                self._decoding["metadata"] = True
            self._decoders = Decoders(self._workers, store)
            delivery = self._delivery = Delivery(
                store,
                outputs,
                quarantine,
                states.get(QUARANTINE_STATE) or initial[QUARANTINE_STATE],
                self.summary,
                self._stop,
                self.config.pipeline.once_retry_seconds if self.once else None,
            )
            delivery.metrics = self.metrics
            if not self.once:
                beat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
                beat.start()
            while True:
                if store.prune_due():
                    store.prune(self.config.dedupe.retention_days * 86400)
                self._pass()
                if self.once or self._stop.is_set():
                    break
                self._stop.wait(poll_wait(self.config.pipeline.poll_interval, self._scan_took))
                if self._stop.is_set():
                    break
        except Stopped as e:  # a stop request, not a failure: the batch is read again later
            log.warning("%s", e)
            self.summary.uncommitted = e.events
        except OutputFailed as e:
            log.error("%s", e)
            self.summary.errors.append(str(e))
        finally:
            self.summary.stopped = self._stop.is_set()
            self._stop.set()  # ends the heartbeat
            if beat is not None:
                beat.join()
            if delivery is not None:
                delivery.join()
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
        self._scan_pending = max(pending, 0)
        self._committed_at_scan = self.metrics.committed_bytes
        self._on_progress()  # the totals, before the first chunk is read
        self._decoders.use_pool(pending)
        delivery = self._delivery
        batch = Batch()
        limit = self.config.pipeline.batch_events
        refused: set[str] = set()
        for work in self._decoders.map(self._chunks(candidates), lambda: delivery.seq):
            chunk = work.chunk
            opened = self._through(chunk.path)
            if work.refused is not None or chunk.path in refused:
                if chunk.path not in refused:
                    refused.add(chunk.path)
                    self._refuse(opened.candidate, work.refused or "")
                work.discard()  # a later chunk of a refused file: its spool files
                continue
            his = set(work.keys.hi)
            events, duplicates = len(batch.events), batch.duplicates
            batch.add(work, delivery.recent.shipped(work, his), his)
            batch.quarantined += work.quarantined
            self.metrics.took(
                opened.candidate.input,
                work.count,
                len(batch.events) - events,
                batch.duplicates - duplicates,
                len(work.quarantined),
                chunk.end - chunk.start,
            )
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
                delivery.deliver(batch)
                batch = Batch()
            if self._stop.is_set():
                break
        delivery.deliver(batch)
        delivery.settle()

    def _heartbeat(self) -> None:
        """Follow mode: one line every ``heartbeat_interval`` saying the shipper is alive and
        how far behind it is (events shipped, bytes not committed yet, age of the newest event)."""
        interval = self.config.pipeline.heartbeat_interval
        before = self.summary.events
        while not self._stop.wait(interval):
            line, fields = heartbeat(self.summary, self.backlog, before, interval)
            before = self.summary.events
            log.info("%s", line, extra=fields)

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
            read = False
            try:
                read = yield from self._file_chunks(cand)
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
            # one count of files read (to their end, for now) for the summary and the
            # interrupted line; the progress bar's also counts those refused or empty
            self.summary.files_read += read
            self.progress.files_done += 1

    def _through(self, path: str) -> _Opened:
        """A chunk of ``path`` came out of decoding; forget the file after its last one."""
        opened = self._opened[path]
        opened.unprocessed -= 1
        if opened.read and not opened.unprocessed:
            del self._opened[path]
        return opened

    def _file_chunks(self, cand: Candidate) -> Generator[Chunk, None, bool]:
        """The file's chunks from where it was left; True once it is read to its end (for
        now), False when it was empty."""
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
                return False
            self._empty.discard(cand.key)
            position = begin(f, cand, self._store.file_state)
            opened = self._opened[cand.path] = _Opened(position, cand)
            options = self._options(cand.input)
            final = self.once
            reader = FORMATS[position.format]
            for chunk in reader.chunks(
                f, cand.path, position.offset, position.state, final, options
            ):
                chunk.key = cand.key
                opened.unprocessed += 1
                yield chunk
        return True

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
        options.update(self._decoding)
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


def poll_wait(interval: float, scan_took: float) -> float:
    """Seconds to wait before the next scan in follow mode: ``interval``, or longer when a
    scan takes so long that scanning would take more than ``SCAN_SHARE`` of the time."""
    return max(interval, scan_took * (1 / SCAN_SHARE - 1))


def quarantine_path(data_dir: Path) -> Path:
    return data_dir / "quarantine.jsonl"
