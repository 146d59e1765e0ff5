"""The pipeline: sources -> decoding -> batches -> outputs -> checkpoint, in small rooms.

- ``run``: the run loop (scan, chunk, route, batch, hand over); its docstring states the
  delivery rule.
- ``routing``: which chunk is decoded where (worker processes or here), answers in order.
- ``batch``: the batch being built and its dedupe against recent commits.
- ``delivery``: send until every output acknowledges (the one backoff), then commit.
- ``progress``: the summary and the progress figures.

The worker side (``shipper.decoding``, ``shipper.pool``) lives outside this package: decoder
processes must not import the configuration this package needs. Rejected records go through
``shipper.rejects``.
"""

from shipper.pipeline.progress import Progress, Summary
from shipper.pipeline.run import Pipeline, poll_wait, quarantine_path

__all__ = ["Pipeline", "Progress", "Summary", "poll_wait", "quarantine_path"]
