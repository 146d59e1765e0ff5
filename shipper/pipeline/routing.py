"""Which chunk is decoded where: in worker processes (big chunks) or here (small ones).

Decoder processes are plain subprocesses (``shipper.pool``) running ``shipper.decoding``; they
live outside this package so that they import no configuration, outputs or command line.
Answers come back in the order chunks were handed out, a bounded number in flight.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from shipper.decoding import Work, decode_chunk, pack_encoders, sample_of
from shipper.outputs.base import Output, WireEncoder
from shipper.pool import OrderedPool
from shipper.sources import Chunk
from shipper.state import Store
from shipper.state.lookup import SnapshotLookup

__all__ = ["POOL_THRESHOLD", "REREAD_MIN", "Decoders", "decoder_options"]

log = logging.getLogger("shipper")

#: below this much unread data, decoding in-process beats starting worker processes
POOL_THRESHOLD = 8 * 1024 * 1024
#: chunks at least this big go to worker processes, which read them from the file themselves
REREAD_MIN = 64 * 1024


def decoder_options(outputs: Sequence[Output]) -> dict[str, object]:
    """What the decoders must produce for these outputs (``Chunk.options``): ``metadata``
    whether some output reads ids, datasets and timestamps; ``wire`` the outputs' own
    encoders, by output name, for those that have one (``EventBatch.wire``), pickled once
    (``decoding.pack_encoders``); ``documents`` whether some output needs the NDJSON
    documents themselves; ``msgpack`` whether an encoder takes events as msgpack maps
    (``Decoded.msgpack``) from normalisers that make them."""
    wire: dict[str, WireEncoder] = {}
    for out in outputs:
        encoder = getattr(out, "wire_encoder", None)
        if encoder is not None:
            wire[out.name] = encoder
    return {
        "metadata": any(out.needs_metadata for out in outputs),
        "wire": pack_encoders(wire),
        "documents": any(out.name not in wire for out in outputs),
        "msgpack": any(getattr(e, "msgpack", False) for e in wire.values()),
    }


class Decoders:
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
                if work is not None:
                    work.discard()

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
