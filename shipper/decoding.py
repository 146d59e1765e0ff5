"""The decoding side of the pipeline: what runs in decoder processes (and in-process).

A chunk is decoded (parsed, normalised, encoded), its events' dedupe keys are computed, filed by
event time and looked up, and the whole travels back as a ``Work``: documents as one NDJSON run
(in a spool file when big), keys as arrays. Kept apart from ``shipper.pipeline`` so that a
decoder process imports only sources, normalisers and the id index, not the configuration,
outputs or command line (pydantic models alone are ten megabytes a process).
"""

from __future__ import annotations

import itertools
import os
import pickle
from collections.abc import Callable
from pathlib import Path

from shipper.memory import return_big_blocks
from shipper.outputs.base import Wire, WireEncoder
from shipper.pool import serve
from shipper.sources import FORMATS, Chunk, Decoded
from shipper.sources.identity import file_key
from shipper.spool import Spooled, write_all, write_lines
from shipper.state import Store, by_bucket, event_keys, search_buckets
from shipper.state.lookup import SnapshotLookup

#: decoded runs at least this big come back from a worker in a spool file (see ``Spooled``)
SPOOL_MIN = 64 * 1024


class Work:
    """A decoded chunk, packed to cross process boundaries cheaply.

    Documents travel as one NDJSON run and dedupe keys as two arrays, so that a chunk of
    thousands of events pickles as a handful of buffers; ``shipped`` holds the keys the
    decoder found already committed; ``seq`` is the number of commits made
    when the chunk was handed out, and ``as_of`` the number that lookup covered (it may reuse
    a slightly older snapshot, see ``SnapshotLookup``), so the pipeline knows which later
    commits to check itself.

    Outputs that encode in the decoders (``chunk.options["wire"]``: output name ->
    ``WireEncoder``) get their events here, in their wire format, in ``wires``; when no output
    needs the documents themselves (``options["documents"]`` false), ``run`` stays empty and
    ``documents`` says so. Encoding once here, beside decoding, spares the sending process a
    pass over every document (for syslog, two thirds of its time).
    """

    __slots__ = (
        "chunk", "run", "count", "ids", "datasets", "timestamps", "quarantined", "refused",
        "keys", "groups", "searched", "shipped", "seq", "as_of", "wires", "documents",
    )  # fmt: skip

    def __init__(
        self,
        chunk: Chunk,
        decoded: Decoded,
        lookup: SnapshotLookup,
        seq: int,
        spool: Path | None = None,
    ) -> None:
        self.chunk = chunk
        chunk.payload = chunk.prefix = b""  # not needed any more, and not worth sending back
        options = chunk.options
        self.wires: dict[str, Wire] = {}
        encoders = wire_encoders(options)
        if encoders and decoded.docs:
            wires = _encode(encoders, decoded, spool)
            if isinstance(wires, str):  # an encoder failed: as if the decoder had
                decoded = Decoded(refused=f"{chunk.path}: bytes {chunk.start}-{chunk.end}: {wires}")
            else:
                self.wires = wires
        docs = decoded.docs
        self.count = len(docs)
        self.documents = bool(options.get("documents", True))
        self.run: bytes | Spooled = b""
        if self.documents and docs:
            # in a worker process, hand a big run over in a file; a small one costs less to
            # pickle than a file costs to create
            spooled = None
            if spool is not None and sum(map(len, docs)) + len(docs) >= SPOOL_MIN:
                spooled = _spooled_run(spool, docs)
            # else joined with an empty last piece for the final line break (`+ b"\n"` copies)
            self.run = spooled if spooled is not None else b"\n".join([*docs, b""])
        self.ids, self.datasets, self.timestamps = decoded.ids, decoded.datasets, decoded.timestamps
        self.quarantined, self.refused = decoded.quarantined, decoded.refused
        self.keys = event_keys(decoded.ids)
        exact = FORMATS[chunk.format].exact_time
        self.groups = by_bucket(self.keys, decoded.timestamps, exact)
        self.seq = seq
        #: the buckets where copies of these events would be filed
        self.searched = search_buckets(self.groups, exact)
        self.shipped, self.as_of = lookup.shipped(self.keys, self.searched, seq)
        if not options.get("metadata", True):  # no output needs them
            self.ids, self.datasets, self.timestamps = [], [], []

    def discard(self) -> None:
        """Delete the spool files of a chunk that will not be shipped."""
        if isinstance(self.run, Spooled):
            self.run.remove()
        for wire in self.wires.values():
            if isinstance(wire.data, Spooled):
                wire.data.remove()


#: wire encoders by their pickled form: unpickled once per process, not once per chunk (their
#: caches then last, and an object made per chunk would not be the same key twice)
_encoders: dict[bytes, WireEncoder] = {}


def pack_encoders(encoders: dict[str, WireEncoder]) -> dict[str, bytes] | None:
    """The outputs' wire encoders as ``Chunk.options["wire"]`` carries them: pickled once,
    so every chunk carries the same bytes (see ``wire_encoders``)."""
    return {name: pickle.dumps(e, pickle.HIGHEST_PROTOCOL) for name, e in encoders.items()} or None


def wire_encoders(options: dict[str, object]) -> dict[str, WireEncoder]:
    """The wire encoders a chunk's options ask for, by output name (``pack_encoders``)."""
    packed: dict[str, bytes] | None = options.get("wire")  # type: ignore[assignment]
    if not packed:
        return {}
    out = {}
    for name, blob in packed.items():
        encoder = _encoders.get(blob)
        if encoder is None:
            if len(_encoders) >= 64:  # a long-lived process that saw many configurations
                _encoders.clear()
            encoder = _encoders[blob] = pickle.loads(blob)
        out[name] = encoder
    return out


def _encode(
    encoders: dict[str, WireEncoder], decoded: Decoded, spool: Path | None
) -> dict[str, Wire] | str:
    """Each output's wire run of the chunk (a big one spooled), or why an encoder failed."""
    wires: dict[str, Wire] = {}
    for name, encoder in encoders.items():
        try:
            wire = encoder.encode(decoded)
        except Exception as e:  # an encoder's bug must cost this file, not the run
            for w in wires.values():
                if isinstance(w.data, Spooled):
                    w.data.remove()
            return f"cannot encode for {name}: {type(e).__name__}: {e}"
        data = wire.data
        if spool is not None and isinstance(data, bytes) and len(data) >= SPOOL_MIN:
            spooled = _spooled_bytes(spool, data)
            if spooled is not None:
                wire.data = spooled
        wires[name] = wire
    return wires


def _spooled_bytes(spool: Path, data: bytes) -> Spooled | None:
    """``data`` written to a spool file, or None when that fails (see ``_spooled``)."""

    def write(fd: int) -> int:
        write_all(fd, data)
        return len(data)

    return _spooled(spool, "wire", write)


def _spooled_run(spool: Path, docs: list[bytes]) -> Spooled | None:
    """The documents written to a spool file as NDJSON, or None when that fails."""
    return _spooled(spool, "ndjson", lambda fd: write_lines(fd, docs))


def _spooled(spool: Path, suffix: str, write: Callable[[int], int]) -> Spooled | None:
    """A new spool file filled by ``write`` (which returns the bytes written), or None when
    that fails (disk full, say): the data then travel through the pipe, slower but safe, and
    the output will say what is wrong."""
    path = str(spool / f"{os.getpid()}-{next(_spool_numbers)}.{suffix}")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o600)
        try:
            return Spooled(path, write(fd))
        finally:
            os.close(fd)
    except OSError:
        try:
            os.unlink(path)
        except OSError:
            pass
        return None


_worker_lookup: SnapshotLookup | None = None
_worker_spool: Path | None = None
_spool_numbers = itertools.count()
_O_BINARY = getattr(os, "O_BINARY", 0)


def worker_main(data_dir: str) -> None:
    """A decoder process (see ``shipper.pool``)."""
    init_worker(Path(data_dir))
    serve(decode_in_worker)


def init_worker(data_dir: Path) -> None:
    # stop signals are ignored from the start (``shipper.pool``): the pipeline decides to stop
    return_big_blocks()
    global _worker_lookup, _worker_spool
    _worker_lookup = SnapshotLookup(Store(data_dir, readonly=True))
    _worker_spool = spool_path(data_dir)


def decode_chunk(chunk: Chunk) -> Decoded:
    """Decode, turning a decoder's unexpected failure into a refusal of that file.

    Readers quarantine the bad records they know about; anything else that goes wrong while
    decoding must cost that file, never the run (or, in follow mode, the service).
    """
    options = chunk.options
    if "wire" in options:  # the encoders are not the readers' business (``Work`` runs them)
        chunk.options = {k: v for k, v in options.items() if k != "wire"}
    try:
        return FORMATS[chunk.format].decode(chunk)
    except Exception as e:
        return Decoded(
            refused=f"{chunk.path}: cannot decode bytes {chunk.start}-{chunk.end}:"
            f" {type(e).__name__}: {e}"
        )
    finally:
        chunk.options = options


def decode_in_worker(chunk: Chunk, size: int, seq: int, sample: bytes) -> Work | None:
    """Worker entry point: decode, compute dedupe keys, and look them up in the store.

    The chunk arrives without its payload when it had one of ``size`` bytes: the worker reads
    those bytes from the file itself (from the page cache, as the pipeline just read them),
    which spares pushing every byte of input through a pipe. Looking ids up here, in a
    read-only connection per worker, takes that cost off the process that commits; the
    pipeline then checks only the commits this lookup could not see.

    A file can be renamed, replaced, truncated or deleted between the pipeline's read and
    this one (logrotate's ``mv log log.1`` and a new ``log``; a re-download under the same
    name). Decoding whatever the name holds now would ship another file's bytes under this
    file's positions, and lose this file's. So the worker uses the bytes only when they come
    from the same file (``chunk.key``) and match the pipeline's ``sample`` of them; otherwise
    it answers None and the pipeline decodes the copy it kept, read through its own handle.
    """
    assert _worker_lookup is not None
    if size:
        payload = _reread(chunk, size, sample)
        if payload is None:
            return None
        chunk.payload = payload
    return Work(chunk, decode_chunk(chunk), _worker_lookup, seq, _worker_spool)


def sample_of(payload: bytes | bytearray) -> bytes:
    """A few slices of a chunk's bytes, enough to tell them from another file's at the same
    offsets (every record carries unique ids), cheap enough for every chunk."""
    n = len(payload)
    return b"".join(payload[i : i + 64] for i in (0, n // 3, 2 * n // 3, max(0, n - 64)))


def _reread(chunk: Chunk, size: int, sample: bytes) -> bytes | None:
    """The chunk's bytes read again through its name, or None if the name no longer leads to
    the same bytes of the same file."""
    try:
        with open(chunk.path, "rb") as f:
            st = os.fstat(f.fileno())
            if file_key(st, chunk.path) != chunk.key or st.st_size < chunk.end:
                return None
            f.seek(chunk.start)
            payload = f.read(size)
    except OSError:  # gone, or no longer ours to read
        return None
    if len(payload) != size or sample_of(payload) != sample:
        return None
    return payload


def spool_path(data_dir: Path) -> Path:
    """Where decoder processes leave their documents (see ``Spooled``)."""
    return data_dir / "spool"
