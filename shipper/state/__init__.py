"""The checkpoint store: where each file was read up to, and which events already shipped.

The delivery rule, enforced by ``shipper.pipeline`` and stored here: a batch's file positions,
the ids of its events and the outputs' own states (the NDJSON file's committed length) are
written in one SQLite transaction, and only after every output has acknowledged the batch. A
crash before that commit means the batch is read and sent again (at least once); idempotent
outputs and the id index turn that into exactly once. Nothing but the pipeline commits.

SQLite in WAL mode with ``synchronous=FULL``: a commit survives ``kill -9`` and power loss, and
readers (``shipper status``) never block the writer. SQLite rather than a hand-made log because
it gives atomic multi-table commits, crash recovery and an on-disk index for millions of ids.
"""

from shipper.state.keys import (
    EventKey,
    Keys,
    bucket,
    by_bucket,
    event_key,
    event_keys,
    search_buckets,
)
from shipper.state.store import FileState, Store

__all__ = [
    "EventKey",
    "FileState",
    "Keys",
    "Store",
    "bucket",
    "by_bucket",
    "event_key",
    "event_keys",
    "search_buckets",
]
