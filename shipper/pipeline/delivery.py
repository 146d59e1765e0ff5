"""Delivery: send a batch until every output has acknowledged it, then commit it.

One batch at a time, in a thread beside the decoding of the next one, so that fsyncs and
network round trips do not stall the decoders; a batch is committed before the next is sent, so
commits follow the order of the sources. An output that asks to retry gets the same batch again
after the project's backoff (``shipper.backoff``) while the sources wait; outputs that already
acknowledged it are not sent it again. Quarantined records are written (fsynced) just before
the commit, their file's length committed with it.

This loop is the one retry policy of the shipper: outputs make one attempt per ``send`` (at
most an immediate reconnect, never a sleep) and raise ``RetryLater``; the wait before the next
attempt happens here, on the stop event, so a stop request ends it at once (``Stopped``: the
batch is not committed and is read again by the next run). Each output's next attempt is due
after its own backoff (``backoff_initial``/``backoff_max`` in its settings, when it has them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from shipper.backoff import backoff
from shipper.errors import OutputFailed, RetryLater
from shipper.metrics import IDLE, Metrics
from shipper.outputs import Output
from shipper.pipeline.batch import Batch, Recent
from shipper.pipeline.progress import Summary
from shipper.rejects import RejectFile, capped
from shipper.sources import Quarantine
from shipper.state import Store

__all__ = ["DEFAULT_BACKOFF", "QUARANTINE_STATE", "Delivery", "Stopped"]

log = logging.getLogger("shipper")

QUARANTINE_STATE = "quarantine"
#: quarantined records said in the log, one line each; the rest only in the file
LOGGED = 100
#: (first delay, cap) in seconds for outputs whose settings name no backoff of their own
DEFAULT_BACKOFF = (0.5, 30.0)


class Stopped(OutputFailed):
    """A stop request came while outputs were still to acknowledge a batch: it is not
    committed, and the next run reads it again."""

    def __init__(self, waiting: Sequence[str], events: int) -> None:
        self.waiting = list(waiting)
        self.events = events
        super().__init__(
            f"stopped while waiting for {', '.join(waiting)}: a batch of {events:,} events not"
            " committed (it is read again at the next run)"
        )


def retry_policy(out: Output) -> tuple[float, float]:
    """An output's backoff, from its settings when they have one."""
    settings = getattr(out, "settings", None)
    first = getattr(settings, "backoff_initial", None)
    cap = getattr(settings, "backoff_max", None)
    if isinstance(first, (int, float)) and isinstance(cap, (int, float)):
        return float(first), float(cap)
    return DEFAULT_BACKOFF


class Delivery:
    #: told what each send and commit did (``shipper.metrics``); the pipeline sets its own
    metrics: Metrics = IDLE

    def __init__(
        self,
        store: Store,
        outputs: Sequence[Output],
        quarantine: RejectFile,
        quarantine_state: dict[str, Any],
        summary: Summary,
        stop: threading.Event,
        once_retry_seconds: float | None,
    ) -> None:
        """``once_retry_seconds``: how long to wait for an unavailable output (``--once``);
        None waits until it recovers or the shipper is stopped."""
        self._store = store
        self._outputs = list(outputs)
        self._quarantine = quarantine
        self._quarantine_state = quarantine_state
        self._summary = summary
        self._stop = stop
        self._limit = once_retry_seconds
        self.recent = Recent()
        self.seq = 0  # commits made so far in this run
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._logged = 0

    def deliver(self, batch: Batch) -> None:
        """Hand a batch over, once the previous one is committed."""
        self.settle()
        if not batch.positions and not batch.quarantined:
            return
        # Decoders that look ids up before this batch's commit is visible check these keys
        # themselves: they carry the commit count from when they were handed their chunk.
        self.recent.add(self.seq + 1, batch)
        self.metrics.sealed(batch)
        self._thread = threading.Thread(
            target=self._deliver_now, args=(batch,), name="deliver", daemon=True
        )
        self._thread.start()

    def settle(self) -> None:
        """Wait for the batch in delivery, if any; re-raise its failure."""
        if self._thread is not None:
            # in slices: a signal handler runs only between them on Windows
            while self._thread.is_alive():
                self._thread.join(0.25)
            self._thread = None
            if self._error is not None:
                raise self._error
            self.seq += 1

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the batch in delivery without raising (shutting down), at most
        ``timeout`` seconds; True when no delivery is running any more."""
        if self._thread is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                return False
            self._thread.join(left)
        return True

    def _deliver_now(self, batch: Batch) -> None:
        try:
            states = self._send(batch)
            if batch.quarantined:
                self._quarantine_state = self._write_quarantine(batch.quarantined)
                states[QUARANTINE_STATE] = self._quarantine_state
            self._store.commit(batch.positions.values(), batch.groups, states)
            batch.events.release()
        except BaseException as e:  # handed to the pipeline's thread by settle
            self._error = e
            self.metrics.dropped(batch)
            return
        self.metrics.committed(batch)
        s = self._summary
        s.events += len(batch.events)
        if batch.events.timestamps:  # for the heartbeat's lag
            s.newest_event = max(s.newest_event, max(batch.events.timestamps))
        s.duplicates += batch.duplicates
        s.quarantined += len(batch.quarantined)

    def _send(self, batch: Batch) -> dict[str, dict[str, Any]]:
        """Send to every output until each has acknowledged; returns their states.

        Each output that asked to retry is due again after its own backoff; the wait is on the
        stop event, so a stop request ends it at once (``Stopped``).
        """
        states: dict[str, dict[str, Any]] = {}
        waiting = list(self._outputs) if len(batch.events) else []
        attempts = {out.name: 0 for out in waiting}
        due = {out.name: 0.0 for out in waiting}
        since = 0.0
        limit = self._limit
        while waiting:
            now = time.monotonic()
            for out in list(waiting):
                if due[out.name] > now:
                    continue
                started = time.perf_counter()
                try:
                    ack = out.send(batch.events)
                except RetryLater as e:
                    self.metrics.retry(out.name, time.perf_counter() - started)
                    attempts[out.name] += 1
                    first, cap = retry_policy(out)
                    delay = backoff(attempts[out.name], first, cap)
                    due[out.name] = time.monotonic() + delay
                    if not since:
                        since = time.monotonic()
                    if attempts[out.name] == 1:
                        until = (
                            "the sources wait meanwhile"
                            if limit is None
                            else f"giving up after {limit:g} s (pipeline.once_retry_seconds)"
                        )
                        log.warning("%s: %s; retrying, %s", out.name, e, until)
                    else:
                        log.info("%s: still unavailable: %s (next try in %.1f s)",
                                 out.name, e, delay)  # fmt: skip
                    continue
                except OutputFailed:
                    self.metrics.failed(out.name, time.perf_counter() - started)
                    raise
                self.metrics.sent(
                    out.name,
                    time.perf_counter() - started,
                    ack.delivered,
                    ack.duplicates,
                    ack.dead_lettered,
                )
                if ack.state is not None:
                    states[out.name] = ack.state
                self._summary.dead_lettered += ack.dead_lettered
                waiting.remove(out)
                if attempts[out.name]:
                    log.info("%s: available again", out.name)
            if not waiting:
                break
            if self._stop.is_set():
                raise Stopped([o.name for o in waiting], len(batch.events))
            delay = max(0.0, min(due[o.name] for o in waiting) - time.monotonic())
            if limit is not None:
                left = since + limit - time.monotonic()
                if left <= 0:
                    names = ", ".join(o.name for o in waiting)
                    raise OutputFailed(
                        f"{names}: still unavailable after {time.monotonic() - since:.0f} s;"
                        " nothing of this batch was committed, run again when it is back"
                    )
                delay = min(delay, left)
            if self._stop.wait(delay):
                raise Stopped([o.name for o in waiting], len(batch.events))
        return states

    def _write_quarantine(self, items: list[Quarantine]) -> dict[str, Any]:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entries = []
        for q in items:
            entries.append(
                capped(
                    {
                        "time": now,
                        "path": q.path,
                        "line": q.line,
                        "offset": q.offset,
                        "reason": q.reason,
                        "raw": q.raw,
                    }
                )
            )
            if self._logged < LOGGED:
                log.warning("quarantined %s:%s (offset %d): %s", q.path, q.line, q.offset, q.reason)
                self._logged += 1
                if self._logged == LOGGED:
                    log.warning("more quarantined lines are in the quarantine file only")
        return self._quarantine.append(entries)
