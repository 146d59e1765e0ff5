"""The syslog output: encode a batch, deliver it over the configured transport, say how.

``send`` returns only when every event of the batch is delivered in the transport's sense
(``transport`` and ``relp`` docstrings: RELP's ``rsp 200``; TCP/TLS written and acknowledged by
the receiver's TCP on a healthy connection; UDP sent), or dead-lettered (an event over
``max_message_size`` with ``oversize: dead_letter``). A broken connection gets one immediate
reconnect within a ``send`` (failing over to the next receiver that answers), never a sleep;
when that fails too it raises ``RetryLater``, and the pipeline's delivery loop, the one retry
policy of the shipper, waits ``backoff_initial``..``backoff_max`` on its stop event and hands
the same batch back, holding the sources meanwhile. What was already delivered of that batch
is remembered and not sent again. Memory stays bounded by the batch: nothing is queued between
calls.

A certificate that does not verify is a configuration problem, not an outage: ``OutputFailed``
at once, naming the receiver and OpenSSL's reason.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipper.errors import OutputFailed, RetryLater
from shipper.outputs.base import Ack, EventBatch, Wire, wire_pieces
from shipper.outputs.syslog.encode import Encoder, WireEncoder, truncate
from shipper.outputs.syslog.settings import Settings
from shipper.outputs.syslog.transport import (
    CertificateRefused,
    Connection,
    TransportError,
    connect,
    tls_context,
)
from shipper.rejects import DeadLetterFile

log = logging.getLogger("shipper.outputs.syslog")


@dataclass
class _Progress:
    """What is known about one batch; kept across a RetryLater for the same batch."""

    batch: EventBatch
    pending: list[int]
    ack: Ack = field(default_factory=Ack)


class SyslogOutput:
    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.settings = settings
        self.name = settings.display_name()
        self.encoder = Encoder(settings, settings.hostname or socket.gethostname())
        self.limit = settings.size_limit()
        #: TCP and TLS messages are encoded and framed by the decoders, beside decoding
        #: (``EventBatch.wire``), RELP messages encoded there and framed by the connection;
        #: the size limit (UDP, ``max_message_size``) needs the messages one by one, here
        self.wire_encoder: WireEncoder | None = None
        if self.limit is None and settings.transport in ("tcp", "tls"):
            self.wire_encoder = WireEncoder(self.encoder, settings.framing)
        elif self.limit is None and settings.transport in ("relp", "relp_tls"):
            self.wire_encoder = WireEncoder(self.encoder, "none")
        #: event ids, datasets and timestamps go into the header when it is made here
        self.needs_metadata = self.wire_encoder is None
        self.dead_letters = DeadLetterFile(settings.dead_letter_path(data_dir), self.name)
        try:
            self._ctx = tls_context(settings) if settings.transport in ("tls", "relp_tls") else None
        except (OSError, ssl.SSLError) as e:
            raise OutputFailed(f"{self.name}: TLS files: {e}") from e
        self._conn: Connection | None = None
        self._progress: _Progress | None = None

    def restore(self, state: dict[str, Any] | None) -> None:
        """Nothing to restore: a receiver keeps no state we could check against."""

    def _connection(self) -> Connection:
        if self._conn is not None and self._conn.stale():
            log.info("%s: %s closed the connection; connecting again", self.name, self._conn.where)
            self._drop()
        if self._conn is None:
            try:
                self._conn = connect(self.settings, self._ctx)
            except CertificateRefused as e:
                raise OutputFailed(f"{self.name}: {e}") from e
            log.info("%s: connected to %s", self.name, self._conn.where)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def send(self, batch: EventBatch) -> Ack:
        wires = batch.wire(self.name) if self.wire_encoder is not None else None
        if wires is not None:
            return self._send_framed(batch, wires)
        p = self._progress
        if p is None or p.batch is not batch:
            p = _Progress(batch, list(range(len(batch))))
        self._progress = p
        heads, bodies = self.encoder.encode(batch, p.pending)
        if self.limit is not None:
            heads, bodies = self._fit(p, heads, bodies)
        reconnected = False
        while p.pending:
            try:
                self._connection().deliver(heads, bodies)
            except TransportError as e:
                done = set(e.done)
                p.ack.delivered += len(done)
                if done:
                    keep = [n for n in range(len(p.pending)) if n not in done]
                    p.pending = [p.pending[n] for n in keep]
                    heads = [heads[n] for n in keep]
                    bodies = [bodies[n] for n in keep]
                self._drop()
                if reconnected:
                    raise RetryLater(f"{len(p.pending)} events not delivered ({e})") from None
                reconnected = True
                log.info("%s: %s; connecting again for %d events", self.name, e, len(p.pending))
                continue
            p.ack.delivered += len(p.pending)
            p.pending = []
        self._progress = None
        return p.ack

    def _send_framed(self, batch: EventBatch, wires: list[Wire]) -> Ack:
        """``send`` for messages the decoders encoded: written run by run, from the first one
        not yet delivered (TCP tells how far the receiver got, RELP which messages it
        answered; TLS resends the batch)."""
        p = self._progress
        if p is None or p.batch is not batch:
            p = _Progress(batch, [])
        self._progress = p
        total = sum(map(len, wires))
        reconnected = False
        while p.ack.delivered < total:
            try:
                self._connection().deliver_framed(wire_pieces(wires, p.ack.delivered))
            except TransportError as e:
                p.ack.delivered += len(e.done)
                self._drop()
                left = total - p.ack.delivered
                if reconnected:
                    raise RetryLater(f"{left} events not delivered ({e})") from None
                reconnected = True
                log.info("%s: %s; connecting again for %d events", self.name, e, left)
                continue
            p.ack.delivered = total
        self._progress = None
        return p.ack

    def _fit(
        self, p: _Progress, heads: list[bytes], bodies: list[bytes]
    ) -> tuple[list[bytes], list[bytes]]:
        """Apply ``oversize`` to messages over the limit; never split one into two."""
        limit = self.limit
        assert limit is not None
        sizes = [len(h) + len(b) for h, b in zip(heads, bodies, strict=True)]
        if max(sizes, default=0) <= limit:
            return heads, bodies
        if self.settings.oversize == "truncate":
            for n, size in enumerate(sizes):
                if size > limit:
                    heads[n], bodies[n] = truncate(heads[n] + bodies[n], limit), b""
            return heads, bodies
        keep: list[int] = []
        dead = []
        batch = p.batch
        for n, size in enumerate(sizes):
            if size <= limit:
                keep.append(n)
                continue
            i = p.pending[n]
            dead.append(
                (
                    self.name,
                    batch.ids[i] if batch.ids else "",
                    None,
                    {"reason": f"message of {size} bytes over max_message_size {limit}"},
                    batch.docs[i],
                )
            )
        self.dead_letters.write(dead)  # durable before anything is acknowledged
        log.warning(
            "%s: %d events over %d bytes went to %s",
            self.name,
            len(dead),
            limit,
            self.dead_letters.path,
        )
        p.ack.dead_lettered += len(dead)
        p.pending = [p.pending[n] for n in keep]
        return [heads[n] for n in keep], [bodies[n] for n in keep]

    def close(self) -> None:
        self._drop()


def check(settings: Settings) -> str:
    """Reach the first receiver that answers, as ``send`` would; say which."""
    try:
        ctx = tls_context(settings) if settings.transport in ("tls", "relp_tls") else None
    except (OSError, ssl.SSLError) as e:
        raise OutputFailed(f"{settings.display_name()}: TLS files: {e}") from e
    try:
        conn = connect(settings, ctx)
    except TransportError as e:
        raise OutputFailed(f"{settings.display_name()}: {e}") from e
    try:
        if settings.transport == "udp":
            what = f"udp to {conn.where} (datagrams are not answered: sending cannot be checked)"
        elif settings.transport in ("relp", "relp_tls"):
            what = f"{settings.transport} session opened with {conn.where}"
        else:
            how = "TLS verified" if settings.transport == "tls" and settings.verify_certs else ""
            what = f"{settings.transport} connected to {conn.where}" + (f" ({how})" if how else "")
    finally:
        conn.close()
    return what
