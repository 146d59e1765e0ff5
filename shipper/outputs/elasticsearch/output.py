"""The output itself: send a batch in ``_bulk`` requests until every document has an outcome.

``send`` returns only when each document is indexed, a known duplicate (409 on ``create``) or
written to the dead-letter file; that is the moment the checkpoint may move past the batch.

``send`` makes one attempt per call and never sleeps: documents that fail with retryable errors
(429, 5xx, connection errors, timeouts) make it raise ``RetryLater``, and the pipeline's
delivery loop, the one retry policy of the shipper, waits its backoff (``backoff_initial``,
``backoff_max`` from these settings) on its stop event and hands the same batch back; the
sources wait meanwhile (backpressure) and memory stays bounded by the batch. The documents
already accepted are remembered for that batch and only the others are sent again. A request
refused as too large (413) is split and re-sent at once: that is not a retry.

Up to ``max_in_flight`` requests run at once in threads: HTTP waiting releases the GIL, so the
next body is built while earlier ones are on the wire.

There is no flush interval here: the output never holds events between calls (``send`` must not
return before delivery), so how long events wait is the pipeline's batching, not ours.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipper.errors import OutputFailed, RetryLater
from shipper.outputs.base import Ack, EventBatch
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.encode import BulkEncoder, Chunk
from shipper.outputs.elasticsearch.retry import Outcome, Verdict, classify
from shipper.outputs.elasticsearch.transport import Reply, Transport, make_transport
from shipper.rejects import DeadLetterFile

log = logging.getLogger("shipper.outputs.elasticsearch")

#: only what the classifier reads: keeps a 5,000-item reply small and quick to parse
FILTER_PATH = "errors,items.*.status,items.*.error"


@dataclass
class _Progress:
    """What is known about one batch so far; kept across a RetryLater for the same batch."""

    batch: EventBatch
    pending: list[int]
    ack: Ack = field(default_factory=Ack)


class BulkOutput:
    needs_metadata = True  # _id, the data stream and the index date

    def __init__(
        self,
        settings: ElasticsearchOutput,
        data_dir: Path,
        transport: Transport | None = None,
    ) -> None:
        self.name = settings.display_name()
        self.settings = settings
        self.transport = transport if transport is not None else make_transport(settings)
        self.encoder = BulkEncoder(
            settings.index, settings.namespace, settings.bulk_max_docs, settings.bulk_max_bytes
        )
        self.dead_letters = DeadLetterFile(settings.dead_letter_path(data_dir), self.name)
        self._pool = ThreadPoolExecutor(settings.max_in_flight, thread_name_prefix="es-bulk")
        self._progress: _Progress | None = None

    def restore(self, state: dict[str, Any] | None) -> None:
        """Nothing to restore: ``create`` + ``_id`` makes re-sending harmless."""

    def send(self, batch: EventBatch) -> Ack:
        p = self._progress
        if p is None or p.batch is not batch:
            p = _Progress(batch, list(range(len(batch))))
        self._progress = p
        max_docs = self.encoder.max_docs
        while p.pending:
            retry, too_large, reason = self._round(p, max_docs)
            if not retry:
                break
            p.pending = retry
            if too_large:
                max_docs = max(1, too_large // 2)
                log.warning("%s: request too large; %d documents per request", self.name, max_docs)
                continue
            raise RetryLater(f"{len(retry)} documents not accepted yet ({reason})")
        self._progress = None
        return p.ack

    def _round(self, p: _Progress, max_docs: int) -> tuple[list[int], int, str]:
        """Send every pending document once; settle what can be settled, return the rest.

        Also returns the size of the smallest request refused as too large (413), or 0.
        """
        batch = p.batch
        self.encoder.max_docs = max_docs
        try:
            inflight: deque[tuple[Chunk, Future[Reply]]] = deque()
            results: list[tuple[Chunk, Reply | RetryLater]] = []
            for chunk in self.encoder.chunks(batch, p.pending):
                if len(inflight) >= self.settings.max_in_flight:
                    results.append(self._wait(*inflight.popleft()))
                inflight.append((chunk, self._pool.submit(self._bulk, chunk.body)))
            while inflight:
                results.append(self._wait(*inflight.popleft()))
        finally:
            self.encoder.max_docs = self.settings.bulk_max_docs
        retry: list[int] = []
        dead: list[tuple[str, str, int | None, Any, bytes]] = []
        too_large = 0
        reason = ""
        for chunk, result in results:
            if isinstance(result, RetryLater):
                retry.extend(chunk.positions)
                reason = reason or str(result)
                continue
            verdict = classify(result.status, result.body, len(chunk.positions))
            if verdict.fatal:
                raise OutputFailed(f"{self.name}: {verdict.reason}")
            if self._settle(p, chunk, verdict, retry, dead):
                size = len(chunk.positions)
                too_large = min(too_large, size) if too_large else size
            if verdict.reason and Outcome.RETRY in verdict.outcomes:
                reason = reason or verdict.reason
        # Dead letters are durable before anything is acknowledged.
        self.dead_letters.write(dead)
        if dead:
            log.warning(
                "%s: %d documents dead-lettered to %s (first: %s)",
                self.name,
                len(dead),
                self.dead_letters.path,
                dead[0][3],
            )
        return retry, too_large, reason

    def _settle(
        self,
        p: _Progress,
        chunk: Chunk,
        verdict: Verdict,
        retry: list[int],
        dead: list[tuple[str, str, int | None, Any, bytes]],
    ) -> bool:
        """Count settled documents; True when the request must be re-sent in smaller pieces."""
        batch, ack = p.batch, p.ack
        split = False
        for n, outcome in enumerate(verdict.outcomes):
            i = chunk.positions[n]
            if outcome is Outcome.DELIVERED:
                ack.delivered += 1
            elif outcome is Outcome.DUPLICATE:
                ack.duplicates += 1
            elif outcome is Outcome.RETRY:
                retry.append(i)
            elif outcome is Outcome.SPLIT and len(chunk.positions) > 1:
                retry.append(i)
                split = True
            else:  # DEAD_LETTER, or a single document too large to ever be accepted
                status = verdict.statuses[n] if verdict.statuses else 413
                error = verdict.errors[n] if verdict.errors else {"reason": verdict.reason}
                dead.append(
                    (self.encoder.index_of(batch, i), batch.ids[i], status, error, batch.docs[i])
                )
                ack.dead_lettered += 1
        return split

    def _wait(self, chunk: Chunk, future: Future[Reply]) -> tuple[Chunk, Reply | RetryLater]:
        try:
            return chunk, future.result()
        except RetryLater as e:
            return chunk, e

    def _bulk(self, body: bytes) -> Reply:
        return self.transport.request("POST", "/_bulk", body, {"filter_path": FILTER_PATH})

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.transport.close()
