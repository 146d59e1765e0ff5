"""EventBatch -> ``_bulk`` NDJSON bodies; no I/O, so it is tested on bytes alone.

Each document becomes ``{"create":{"_index":...,"_id":...}}\\n<doc>\\n``. ``create`` with the
event id as ``_id`` makes a re-sent document a 409 instead of a second copy. The action line's
constant part is built once per target index, so the per-document cost is a few byte
concatenations (documents arrive already serialised and are never parsed here).

Into a data stream, each document also carries the ECS ``data_stream.type``, ``.dataset`` and
``.namespace`` of the stream it lands in, as Elastic Agent's documents do (dashboards and
Fleet-style filters use them). They are spliced in front of the document's own fields: one
concatenation with bytes made once per dataset. Only a document that already names a
``data_stream`` (or is not a plain non-empty object) is parsed, and given the target's values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
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


def stream_dataset(dataset: str) -> str:
    """A dataset as a data stream names it: lowercase, no '-' (the name's separator)."""
    return dataset.lower().replace("-", "_")


def data_stream_name(dataset: str, namespace: str, kind: str = "logs") -> str:
    """``<type>-<dataset>-<namespace>``, ``logs-azure_rms.usage-default`` say."""
    return f"{kind}-{stream_dataset(dataset)}-{namespace}"


def index_resolver(
    index: str | None, namespace: str, types: Mapping[str, str] | None = None
) -> Callable[[str, str], str]:
    """Return ``f(dataset, timestamp) -> index name`` for the configured target; ``types``
    gives a dataset's data stream type when it is not ``logs``."""
    if index is None:
        kinds = types or {}
        return lambda dataset, ts: data_stream_name(
            dataset, namespace, kinds.get(stream_dataset(dataset), "logs")
        )
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

    def __init__(
        self,
        index: str | None,
        namespace: str,
        max_docs: int,
        max_bytes: int,
        types: Mapping[str, str] | None = None,
    ) -> None:
        if types is None and index is None:
            from shipper.outputs.elasticsearch.templates import stream_types

            types = stream_types()
        self._types = types or {}
        self._namespace = namespace
        self._resolve = index_resolver(index, namespace, self._types)
        self._dated = index is not None and "%{+" in index
        self._streams = index is None
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        self._prefix: dict[tuple[str, str], bytes] = {}
        self._fields: dict[str, dict[str, str]] = {}
        self._stamps: dict[str, bytes] = {}

    def data_stream_fields(self, dataset: str) -> dict[str, str]:
        """The ECS ``data_stream`` object of the stream a dataset's documents go to."""
        fields = self._fields.get(dataset)
        if fields is None:
            name = stream_dataset(dataset)
            kind = self._types.get(name, "logs")
            fields = {"type": kind, "dataset": name, "namespace": self._namespace}
            self._fields[dataset] = fields
            self._stamps[dataset] = b'{"data_stream":' + orjson.dumps(fields) + b","
        return fields

    def stamped(self, dataset: str, doc: bytes) -> bytes:
        """``doc`` with its ``data_stream`` fields (see the module docstring)."""
        if self._plain(doc):
            return self._stamp(dataset) + doc[1:]
        return self._reserialised(dataset, doc)

    @staticmethod
    def _plain(doc: bytes) -> bool:
        """A non-empty JSON object without a ``data_stream`` key: safe to splice into."""
        return len(doc) > 2 and doc[0] == 0x7B and doc[1] != 0x7D and b'"data_stream"' not in doc

    def _stamp(self, dataset: str) -> bytes:
        stamp = self._stamps.get(dataset)
        if stamp is None:
            self.data_stream_fields(dataset)
            stamp = self._stamps[dataset]
        return stamp

    def _reserialised(self, dataset: str, doc: bytes) -> bytes:
        try:
            parsed = orjson.loads(doc)
        except orjson.JSONDecodeError:
            return doc  # the cluster refuses it, and it is dead-lettered as sent
        if not isinstance(parsed, dict):
            return doc
        parsed["data_stream"] = self.data_stream_fields(dataset)
        return orjson.dumps(parsed)

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
        streams = self._streams
        stamps = self._stamps
        dumps = orjson.dumps
        parts: list[bytes] = []
        taken: list[int] = []
        size = 0
        for i in todo:
            dataset, doc = datasets[i], docs[i]
            head = prefix_of(dataset, timestamps[i]) + dumps(ids[i]) + b"}}\n"
            if streams:
                # inline the common case of ``stamped``: ~1 us a document less than a call
                if (
                    len(doc) > 2
                    and doc[0] == 0x7B
                    and doc[1] != 0x7D
                    and b'"data_stream"' not in doc
                ):
                    head += stamps.get(dataset) or self._stamp(dataset)
                    doc = doc[1:]
                else:
                    doc = self._reserialised(dataset, doc)
            n = len(head) + len(doc) + 1
            if taken and (len(taken) >= self.max_docs or size + n > self.max_bytes):
                yield Chunk(b"".join(parts), taken)
                parts, taken, size = [], [], 0
            parts += (head, doc, b"\n")
            taken.append(i)
            size += n
        if taken:
            yield Chunk(b"".join(parts), taken)
