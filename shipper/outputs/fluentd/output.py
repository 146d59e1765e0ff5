"""The output: send a batch as chunks to the first receiver that is up, until all are acked.

Delivered means acknowledged: with ``require_ack`` (the default) a chunk counts only when the
receiver's ``{"ack": <chunk id>}`` arrived, and ``send`` returns (so the pipeline commits the
batch) only when every chunk of the batch has. A chunk that is not acked in ``ack_timeout``, or
whose connection breaks, is sent again unchanged, same ``chunk`` id, so a receiver that got it
twice can tell; an acked chunk is never sent again. Without acks a chunk counts once written to
the socket, so what the receiver had not yet taken when it or the connection failed is lost.

Health needs no heartbeat: a failed connect, write or handshake, an ack timeout, an ack for a
chunk we did not send, or a close marks the receiver down for ``shipper.backoff.backoff``
(growing with its consecutive failures) and the chunks not acked go to the next receiver that
is up, in the configured order. When all are down ``send`` raises ``RetryLater``: the pipeline
waits (its own backoff) and hands the same batch back, which then goes to the receiver that is
back soonest; the sources wait meanwhile. What was acked is remembered for that batch and not
sent again.

At most ``max_in_flight`` chunks are unacknowledged at once, so memory is bounded by that and
the batch; while they travel the next chunk is encoded, so the receiver works beside us.

A refused shared key or credentials, or an untrusted certificate, is ``OutputFailed`` naming
the receiver: a configuration error that no retry will cure.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipper.backoff import backoff
from shipper.errors import RetryLater
from shipper.outputs.base import Ack, EventBatch
from shipper.outputs.fluentd.encode import Chunk, ForwardEncoder, WireEncoder
from shipper.outputs.fluentd.settings import Settings
from shipper.outputs.fluentd.transport import Connection, ReceiverDown, tls_context
from shipper.spool import Spooled

log = logging.getLogger("shipper.outputs.fluentd")


@dataclass
class Receiver:
    host: str
    port: int
    label: str
    conn: Connection | None = None
    failures: int = 0  # consecutive
    down_until: float = 0.0
    last_error: str = ""


@dataclass
class _Progress:
    """One batch's chunks not yet acked (in order) and the encoder still producing the rest;
    kept across a RetryLater for the same batch."""

    batch: EventBatch
    source: Iterator[Chunk] | None
    unacked: deque[Chunk] = field(default_factory=deque)
    resends: int = 0


def _runs(batch: EventBatch) -> Iterator[bytes]:
    """The batch's NDJSON runs, a spooled one read only when its turn comes."""
    for run in batch.ndjson_runs():
        yield run.read() if isinstance(run, Spooled) else run


class ForwardOutput:
    #: tag and time come from the documents themselves
    needs_metadata = False

    def __init__(self, settings: Settings, data_dir: Path | None = None) -> None:
        self.settings = settings
        self.name = settings.display_name()
        self.encoder = ForwardEncoder(
            settings.tag_prefix,
            settings.mode,
            settings.chunk_events,
            settings.chunk_bytes,
            settings.require_ack,
            settings.gzip_level,
        )
        #: entries are packed by the decoders, beside decoding (``EventBatch.wire``): the
        #: per-event work runs in every decoder process, and ``send`` only cuts chunks
        self.wire_encoder = WireEncoder(settings.tag_prefix)
        pairs = zip(settings.receivers(), settings.hosts, strict=True)
        self.receivers = [Receiver(h, p, label) for (h, p), label in pairs]
        self._ctx = tls_context(settings)
        self._shared_key = settings.resolved_shared_key()
        self._password = settings.resolved_password()
        self._progress: _Progress | None = None
        #: chunks written again after a failure (for tests and logs)
        self.resent = 0

    def restore(self, state: dict[str, Any] | None) -> None:
        """Nothing to restore: what was not committed is read and sent again."""

    # --- sending ---------------------------------------------------------------------------

    def send(self, batch: EventBatch) -> Ack:
        if not len(batch):
            return Ack()
        p = self._progress
        if p is None or p.batch is not batch:
            wires = batch.wire(self.name)
            if wires is not None:
                source = self.encoder.chunks_from_wires(wires)
            else:  # documents (a batch not made by the pipeline's decoders)
                source = self.encoder.chunks(_runs(batch))
            p = self._progress = _Progress(batch, source)
        fresh = True  # the pipeline's own backoff has passed since the last RetryLater
        while p.unacked or p.source is not None:
            r = self._pick(fresh)
            fresh = False
            try:
                self._deliver(r, p)
            except ReceiverDown as e:
                self._mark_down(r, str(e))
        self._progress = None
        return Ack(delivered=len(batch))

    def _pick(self, fresh: bool) -> Receiver:
        """The first receiver that is not marked down. When all are: on a fresh call of
        ``send`` the one back soonest (the pipeline has just waited its own backoff, so
        retries stay spaced), else RetryLater."""
        now = time.monotonic()
        for r in self.receivers:
            if r.down_until <= now:
                return r
        if fresh:
            return min(self.receivers, key=lambda r: r.down_until)
        soonest = min(r.down_until for r in self.receivers) - now
        why = "; ".join(f"{r.label}: {r.last_error}" for r in self.receivers)
        raise RetryLater(f"every receiver is down ({why}); next try in {soonest:.1f} s")

    def _connect(self, r: Receiver) -> Connection:
        if r.conn is None:
            r.conn = Connection(
                r.host, r.port, self.settings, self._ctx, self._shared_key, self._password
            )
            for other in self.receivers:  # one connection at a time: back to the preferred one
                if other is not r and other.conn is not None:
                    other.conn.close()
                    other.conn = None
        else:
            r.conn.check_alive()
        return r.conn

    def _deliver(self, r: Receiver, p: _Progress) -> None:
        """Write chunks to ``r`` with at most ``max_in_flight`` unacked until all are acked."""
        s = self.settings
        conn: Connection | None = self._connect(r)
        window = s.max_in_flight if conn.keepalive else 1  # else one chunk per connection
        # Chunks written to an earlier connection and not acked go first, in order.
        todo = deque(p.unacked)
        inflight: dict[str, Chunk] = {}
        while True:
            while len(inflight) < window:
                chunk = self._next(p, todo)
                if chunk is None:
                    break
                if conn is None:
                    conn = self._connect(r)
                if chunk.sends:
                    self.resent += 1
                    p.resends += 1
                    log.warning("%s: resending chunk %s (%d events) to %s",
                                self.name, chunk.chunk_id, chunk.size, r.label)  # fmt: skip
                try:
                    conn.send(chunk.parts, s.ack_timeout)
                except ReceiverDown:
                    self._salvage(r, p, inflight, conn)
                    raise
                chunk.sends += 1
                chunk.sent_at = time.monotonic()
                if chunk.chunk_id is None:  # no acks: written is all we will know
                    chunk.acked = True
                    p.unacked.remove(chunk)
                    if conn.keepalive:
                        conn.check_alive()  # a close, or a HELO asking for a key we lack
                else:
                    inflight[chunk.chunk_id] = chunk
                    self._settle(r, p, inflight, conn.acks(0) if conn.keepalive else [])
                if not conn.keepalive and not inflight:  # the receiver closes after one
                    self._drop(r)
                    conn = None
            if not inflight:
                return
            assert conn is not None
            oldest = min(c.sent_at for c in inflight.values())
            left = oldest + s.ack_timeout - time.monotonic()
            if left <= 0:
                raise ReceiverDown(f"no ack within {s.ack_timeout:g} s")
            self._settle(r, p, inflight, conn.acks(left))
            if not conn.keepalive and not inflight:
                self._drop(r)
                conn = None

    def _salvage(
        self, r: Receiver, p: _Progress, inflight: dict[str, Chunk], conn: Connection
    ) -> None:
        """Acks that arrived before a write failed still count: fewer chunks sent twice."""
        try:
            self._settle(r, p, inflight, conn.acks(0))
        except ReceiverDown:
            pass

    def _next(self, p: _Progress, todo: deque[Chunk]) -> Chunk | None:
        while todo:
            chunk = todo.popleft()
            if not chunk.acked:
                return chunk
        if p.source is None:
            return None
        chunk = next(p.source, None)
        if chunk is None:
            p.source = None
            return None
        p.unacked.append(chunk)
        return chunk

    def _settle(
        self, r: Receiver, p: _Progress, inflight: dict[str, Chunk], acks: list[str]
    ) -> None:
        for chunk_id in acks:
            chunk = inflight.pop(chunk_id, None)
            if chunk is None:
                raise ReceiverDown(f"acked chunk {chunk_id!r}, which is not one we are waiting for")
            chunk.acked = True
            r.failures = 0
        if acks:
            while p.unacked and p.unacked[0].acked:
                p.unacked.popleft()
            if any(c.acked for c in p.unacked):
                p.unacked = deque(c for c in p.unacked if not c.acked)

    def _mark_down(self, r: Receiver, reason: str) -> None:
        r.failures += 1
        delay = backoff(r.failures, self.settings.backoff_initial, self.settings.backoff_max)
        r.down_until = time.monotonic() + delay
        r.last_error = reason
        self._drop(r)
        log.warning("%s: receiver %s down for %.1f s: %s", self.name, r.label, delay, reason)

    def _drop(self, r: Receiver) -> None:
        if r.conn is not None:
            r.conn.close()
            r.conn = None

    def close(self) -> None:
        for r in self.receivers:
            self._drop(r)


def check(settings: Settings) -> str:
    """Reach every receiver (TLS and handshake included); one line saying what was reached."""
    from shipper.errors import OutputFailed

    ctx = tls_context(settings)
    key, password = settings.resolved_shared_key(), settings.resolved_password()
    reached, failed = [], []
    for (host, port), label in zip(settings.receivers(), settings.hosts, strict=True):
        try:
            conn = Connection(host, port, settings, ctx, key, password)
        except ReceiverDown as e:
            failed.append(f"{label}: {e}")
            continue
        conn.close()
        reached.append(label + (f" ({conn.server_hostname})" if conn.server_hostname else ""))
    if failed:
        raise OutputFailed(f"fluentd: cannot reach {'; '.join(failed)}")
    how = ", ".join(
        w
        for w, on in (
            ("TLS verified" if settings.verify_certs else "TLS unverified", settings.tls),
            ("shared key verified both ways", key is not None),
            ("acks", settings.require_ack),
        )
        if on
    )
    return f"fluentd: reached {', '.join(reached)}" + (f" ({how})" if how else "")
