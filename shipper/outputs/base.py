"""The contract every output fulfils: take a batch, return only once it is durable.

``send`` blocks until the batch is delivered (file fsynced, documents indexed or known
duplicates or dead-lettered, acks received) and returns an ``Ack``. It raises ``RetryLater``
when the destination is temporarily unavailable (the pipeline waits and resends the same batch,
holding the sources back) and ``OutputFailed`` when it cannot work at all. The pipeline commits
a batch's positions only after every output returned an ``Ack`` for it.

Some outputs need to remember something with the checkpoint (the NDJSON file its committed
length, so that it can cut off what a crash left uncommitted). ``Ack.state`` carries that; the
pipeline stores it in the same transaction as the positions and hands it back to ``restore``.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shipper.spool import Spooled

if TYPE_CHECKING:
    from shipper.sources.base import Decoded


@dataclass(slots=True)
class Wire:
    """A run of events already in an output's own wire format, made by its ``WireEncoder`` in
    a decoder process: ``data`` (bytes, or a ``Spooled`` file) holds the events one after the
    other, event ``i`` ending at byte ``ends[i]``; ``labels[i]``, when the encoder sets them,
    says how the output groups event ``i`` (Fluentd: its tag)."""

    data: bytes | Spooled
    ends: array[int]
    labels: list[str] | None = None

    def read(self) -> bytes:
        return self.data.read() if isinstance(self.data, Spooled) else self.data

    def __len__(self) -> int:
        return len(self.ends)

    def select(self, keep: Sequence[int]) -> Wire:
        """Only the events at positions ``keep`` (ascending), as a new in-memory run."""
        data, ends = self.read(), self.ends
        pieces, out = [], array("q")
        total = 0
        for i in keep:
            start = ends[i - 1] if i else 0
            pieces.append(data[start : ends[i]])
            total += ends[i] - start
            out.append(total)
        labels = [self.labels[i] for i in keep] if self.labels is not None else None
        return Wire(b"".join(pieces), out, labels)


class WireEncoder(Protocol):
    """What an output can hand the decoder processes so that its per-event encoding runs
    there, once per event, beside the decoding, and not in the process that sends.

    A pure, picklable object (it travels with every chunk); its module must be light to import
    (no pydantic, no clients): a decoder process imports it. ``encode`` gets a chunk's events
    (``docs`` and what the decoder knows beside them: ids, datasets, timestamps, header
    fields) and returns their wire bytes. An encoder with a true ``msgpack`` attribute gets
    the events as msgpack maps too (``Decoded.msgpack``) from the normalisers that make them.
    """

    def encode(self, events: Decoded) -> Wire: ...


class EventBatch:
    """Encoded events in source order; ``ids[i]``, ``datasets[i]``... belong to ``docs[i]``.

    Decoders hand over their documents as runs of NDJSON (one ``bytes`` per chunk, or a
    ``Spooled`` file from a decoder process), which is what file outputs write and far cheaper
    to move between processes than one object per event. ``docs`` splits them into single
    documents on first use, for outputs that need them one by one.

    An output with a ``wire_encoder`` gets its events already encoded by the decoders, as
    ``Wire`` runs under its name (``wire``); when no output needs the documents themselves,
    the decoders make none, and only ``count`` says how many events there are.
    """

    __slots__ = (
        "ids", "datasets", "timestamps", "_docs", "_runs", "_in_runs", "_spooled", "_wires",
        "_count",
    )  # fmt: skip

    def __init__(
        self,
        ids: list[str] | None = None,
        datasets: list[str] | None = None,
        docs: list[bytes] | None = None,
        timestamps: list[str] | None = None,
    ) -> None:
        self.ids: list[str] = [] if ids is None else ids
        self.datasets: list[str] = [] if datasets is None else datasets
        self.timestamps: list[str] = [] if timestamps is None else timestamps
        self._docs: list[bytes] = [] if docs is None else docs
        self._runs: list[bytes | Spooled] = []
        self._in_runs = 0  # documents in _runs
        self._spooled: list[Spooled] = []
        self._wires: dict[str, list[Wire]] = {}
        self._count = 0  # events added without documents

    def add_wire(self, name: str, wire: Wire) -> None:
        """Append ``wire``'s events, encoded for the output called ``name``. The same events
        come as documents (``add_ndjson``) or are counted (``add_count``) as well."""
        self._wires.setdefault(name, []).append(wire)
        if isinstance(wire.data, Spooled):
            self._spooled.append(wire.data)

    def add_count(self, count: int) -> None:
        """``count`` events that come only as wire runs (no output needs their documents)."""
        self._count += count

    def wire(self, name: str) -> list[Wire] | None:
        """The output ``name``'s events as wire runs, in order; None when the decoders did not
        encode them for it (then it encodes ``docs`` itself)."""
        wires = self._wires.get(name)
        if wires is None and not len(self):
            return []
        return wires

    def add_ndjson(self, run: bytes | Spooled, count: int) -> None:
        """Append ``count`` documents given as NDJSON (each line a document, ending in a line
        break)."""
        self._runs.append(run)
        self._in_runs += count
        if isinstance(run, Spooled):
            self._spooled.append(run)

    @property
    def docs(self) -> list[bytes]:
        if self._runs:
            for run in self._runs:
                data = run.read() if isinstance(run, Spooled) else run
                self._docs += data.split(b"\n")[:-1]
            self._runs = []
            self._in_runs = 0
        return self._docs

    def ndjson(self) -> list[bytes]:
        """The documents as NDJSON pieces to write in order."""
        return [r.read() if isinstance(r, Spooled) else r for r in self.ndjson_runs()]

    def ndjson_runs(self) -> list[bytes | Spooled]:
        """Like ``ndjson``, leaving spooled runs in their files (for ``copy_spooled``)."""
        head: list[bytes | Spooled] = [b"\n".join(self._docs) + b"\n"] if self._docs else []
        return head + self._runs

    def release(self) -> None:
        """Delete the spool files; called once the batch is committed."""
        for run in self._spooled:
            run.remove()
        self._spooled = []

    def __len__(self) -> int:
        return len(self._docs) + self._in_runs + self._count


def wire_pieces(wires: Sequence[Wire], skip: int = 0) -> Iterator[tuple[bytes, array[int]]]:
    """The runs' bytes and ends, one run read at a time, without their first ``skip`` events
    (already delivered): ends then count from the first byte yielded."""
    for w in wires:
        n = len(w.ends)
        if skip >= n:
            skip -= n
            continue
        data = w.read()
        if skip:
            base = w.ends[skip - 1]
            yield data[base:], array("q", [e - base for e in w.ends[skip:]])
            skip = 0
        else:
            yield data, w.ends


def ecs_field(event: dict[str, Any], dotted: str) -> Any:
    """An ECS field of a decoded event, ``user.email`` read from nested objects (or from a
    flat dotted key, as some producers write them); None when absent. For outputs that pick
    fields out of events (CSV columns, syslog headers, CEF/LEEF keys)."""
    if dotted in event:
        return event[dotted]
    node: Any = event
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@dataclass(slots=True)
class Ack:
    """How a batch was delivered. ``delivered + duplicates + dead_lettered == len(batch)``."""

    delivered: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    state: dict[str, Any] | None = None


class Output(Protocol):
    name: str
    #: whether ``send`` reads the batch's ``ids``, ``datasets`` and ``timestamps``; when no
    #: output does, decoders do not send them across processes (a file output needs only the
    #: documents)
    needs_metadata: bool
    #: optional: a ``WireEncoder`` run by the decoders for this output (see ``EventBatch.wire``)
    # wire_encoder: WireEncoder | None

    def restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        """Called once before the first ``send`` with the state committed last (or None).

        May return a state to commit at once, before anything is sent: the NDJSON file uses
        this to record where its own writing starts in a file that already held data.
        """
        ...

    def send(self, batch: EventBatch) -> Ack:
        """Deliver durably, or raise ``RetryLater`` / ``OutputFailed``."""
        ...

    def close(self) -> None: ...
