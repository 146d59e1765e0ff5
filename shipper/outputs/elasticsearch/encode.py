"""EventBatch -> ``_bulk`` NDJSON bodies; no I/O, so it is tested on bytes alone.

Each document becomes ``{"create":{"_index":...,"_id":...}}\\n<doc>\\n``. ``create`` with the
event id as ``_id`` makes a re-sent document a 409 instead of a second copy. The action line's
constant part is built once per target index, so the per-document cost is a few byte
concatenations (documents arrive already serialised and are never parsed here).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import orjson

from shipper.outputs.base import EventBatch

_DATE_TOKEN = re.compile(r"%\{\+([^}]*)\}")
#: Beats/Logstash date pattern letters -> slice of an ISO 8601 timestamp
_SLICES = {"yyyy": (0, 4), "MM": (5, 7), "dd": (8, 10), "HH": (11, 13)}


@dataclass(slots=True)
class Chunk:
    """One ``_bulk`` request: the body and which documents of the batch it carries, in order."""

    body: bytes
    positions: list[int]


def data_stream_name(dataset: str, namespace: str) -> str:
    """``logs-<dataset>-<namespace>``; a dataset may not contain '-' (the name's separator)."""
    return f"logs-{dataset.lower().replace('-', '_')}-{namespace}"


def index_resolver(index: str | None, namespace: str) -> Callable[[str, str], str]:
    """Return ``f(dataset, timestamp) -> index name`` for the configured target."""
    if index is None:
        return lambda dataset, ts: data_stream_name(dataset, namespace)
    template = index.replace("{namespace}", namespace)
    parts = _DATE_TOKEN.split(template)  # literal, pattern, literal, pattern, ...
    for pattern in parts[1::2]:
        rest = pattern
        for token in sorted(_SLICES, key=len, reverse=True):
            rest = rest.replace(token, "")
        if rest.strip(".-_/ "):
            raise ValueError(f"index: unsupported date pattern %{{+{pattern}}} (use yyyy MM dd HH)")

    def render_date(pattern: str, ts: str) -> str:
        out = pattern
        for token in sorted(_SLICES, key=len, reverse=True):
            a, b = _SLICES[token]
            out = out.replace(token, ts[a:b])
        return out

    def resolve(dataset: str, ts: str) -> str:
        out = []
        for i, part in enumerate(parts):
            out.append(render_date(part, ts) if i % 2 else part)
        return "".join(out).replace("{dataset}", dataset.lower())

    return resolve


class BulkEncoder:
    """Cuts a batch (or the part still to send) into ``_bulk`` bodies bounded by count and bytes."""

    def __init__(self, index: str | None, namespace: str, max_docs: int, max_bytes: int) -> None:
        self._resolve = index_resolver(index, namespace)
        self._dated = index is not None and "%{+" in index
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        self._prefix: dict[tuple[str, str], bytes] = {}

    def _action_prefix(self, dataset: str, ts: str) -> bytes:
        # Keyed on the hour at most: that is the finest date pattern we render.
        key = (dataset, ts[:13] if self._dated else "")
        prefix = self._prefix.get(key)
        if prefix is None:
            name = self._resolve(dataset, ts)
            prefix = b'{"create":{"_index":' + orjson.dumps(name) + b',"_id":'
            if len(self._prefix) > 4096:
                self._prefix.clear()
            self._prefix[key] = prefix
        return prefix

    def index_of(self, batch: EventBatch, i: int) -> str:
        return self._resolve(batch.datasets[i], batch.timestamps[i] if batch.timestamps else "")

    def chunks(self, batch: EventBatch, positions: Sequence[int] | None = None) -> Iterator[Chunk]:
        """Yield request bodies lazily, so a caller can send one while the next is built."""
        ids, datasets, docs = batch.ids, batch.datasets, batch.docs
        timestamps = batch.timestamps or [""] * len(docs)
        todo: Sequence[int] = range(len(docs)) if positions is None else positions
        prefix_of = self._action_prefix
        dumps = orjson.dumps
        parts: list[bytes] = []
        taken: list[int] = []
        size = 0
        for i in todo:
            doc = docs[i]
            line = prefix_of(datasets[i], timestamps[i]) + dumps(ids[i]) + b"}}\n" + doc + b"\n"
            if taken and (len(taken) >= self.max_docs or size + len(line) > self.max_bytes):
                yield Chunk(b"".join(parts), taken)
                parts, taken, size = [], [], 0
            parts.append(line)
            taken.append(i)
            size += len(line)
        if taken:
            yield Chunk(b"".join(parts), taken)
