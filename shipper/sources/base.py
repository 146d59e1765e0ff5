"""The contract between file discovery, format readers and the pipeline.

A format has two halves, split so that the expensive half can run in worker processes:

* ``chunks()`` runs in the pipeline's process. It reads raw bytes from an open file, starting at
  a committed position, and cuts them into ``Chunk`` s at record boundaries. It is cheap: no
  parsing beyond finding boundaries and tracking the little state a later chunk needs (for W3C,
  the active ``#Fields`` header). A chunk is never cut inside a record; an incomplete last record
  is left for later unless ``final`` is set (``--once``: EOF completes it).
* ``decode()`` is a pure, picklable function of one chunk: it parses records, normalises them to
  ECS and encodes them to JSON bytes. It runs in a worker process when ``workers > 1``.

Positions are ``(offset, state)``: ``offset`` is where the next unread record starts (a byte
offset for text formats) and ``state`` is an opaque string the format needs to resume there (for
W3C, the active header). Nothing here touches the checkpoint store; the pipeline commits a
chunk's ``end`` only after every output has acknowledged its events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

#: an event's (``event.outcome``, ``event.action``, ``log.level``, ``host.name``), each None
#: when absent; a normaliser shares one tuple between the events it made alike
HeaderFields = tuple[Any, Any, Any, Any]


@dataclass(slots=True)
class Quarantine:
    """A record that could not be shipped, with enough context to find and fix it."""

    path: str
    line: int | None
    offset: int
    reason: str
    raw: str


@dataclass(slots=True)
class Chunk:
    """A run of whole records from one file, ready to decode anywhere.

    ``payload`` holds exactly the file's bytes from ``start`` to ``end``, read by the pipeline
    through the handle it opened, so they are the bytes of the very file the chunk was cut
    from, whatever happens to its name meanwhile. ``prefix`` holds what a decoder needs from
    the file's start beside them (.evtx: the file header). Worker processes re-read the
    payload from the file rather than receive it through a pipe, and check that it is the
    same file (``key``, its identity) and the same bytes before using them. ``options``
    carries the per-input settings the decoder needs (time zone, whether to keep
    ``event.original``) so that a worker needs no config. A chunk that stands for one record
    over ``max_record_bytes`` carries only that record's first bytes and the ``oversized``
    option: it is quarantined, never held whole (``shipper.sources.limits``).
    """

    format: str
    path: str
    start: int
    end: int
    state_in: str
    state_out: str
    payload: bytes | bytearray = b""
    first_line: int = 1
    options: dict[str, object] = field(default_factory=dict)
    prefix: bytes = b""
    key: str = ""  # the file's identity (``identity.file_key``), set by the pipeline


@dataclass(slots=True)
class Decoded:
    """What a chunk turned into.

    Events travel encoded: ``docs`` is one JSON document per event, and ``ids[i]`` and
    ``datasets[i]`` belong to ``docs[i]``. The event id is the dedupe key, the
    Elasticsearch ``_id`` and ``event.id``; the dataset picks the data stream.
    ``timestamps[i]`` is the event's ``@timestamp`` (ISO 8601 UTC) for outputs that frame it.
    ``header_fields[i]``, when the normaliser gives them (else the list is empty), is
    ``HeaderFields`` of ``docs[i]``: what message headers are made of (syslog's PRI, HOSTNAME
    and MSGID), known while the event was built, so that an output need not parse the
    document again to find them. ``msgpack[i]``, when the chunk's options ask for it
    (``msgpack``) and the normaliser makes it (else the list is empty), is ``docs[i]`` as a
    msgpack map, made from the same pieces as the JSON (Fluentd's records).
    """

    ids: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    docs: list[bytes] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)
    header_fields: list[HeaderFields] = field(default_factory=list)
    msgpack: list[bytes] = field(default_factory=list)
    quarantined: list[Quarantine] = field(default_factory=list)
    #: A file-level refusal (wrong #Software, not this format at all): nothing ships from it.
    refused: str | None = None


class Format(Protocol):
    """A file format: registered by name in ``shipper.sources.FORMATS``."""

    name: str
    #: True when every copy of an event carries exactly the same ``@timestamp`` (a field of
    #: the record, in UTC); False when it may differ by a time zone (a rendered local time).
    #: Dedupe keys are filed by event time, and looked up more widely when this is False.
    exact_time: bool

    def sniff(self, head: bytes, path: str) -> bool:
        """True when the first bytes of a file look like this format."""
        ...

    def chunks(
        self,
        f: BinaryIO,
        path: str,
        start: int,
        state: str,
        final: bool,
        options: dict[str, object],
    ) -> Iterator[Chunk]:
        """Cut the file from ``start`` into chunks of whole records; runs in the main process."""
        ...

    def decode(self, chunk: Chunk) -> Decoded:
        """Chunk in, encoded events out; runs in a worker process, which finds the format by
        ``chunk.format`` in ``FORMATS``. Pure: it reads nothing but the chunk."""
        ...


class FileRefused(Exception):
    """The whole file is not acceptable input (for example a W3C file that is not RMS)."""
