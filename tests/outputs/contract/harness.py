"""What the output contract suite needs from each output: a ``Target``.

A factory (listed in ``factories.py``) is a generator ``factory(request, tmp_path)`` that
starts a real receiver on loopback (or a file, or a captured stream), yields a ``Target``
describing how to build the output against it and how to read back what arrived, and stops the
receiver afterwards.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shipper.outputs.base import EventBatch
from shipper.sources import Decoded

RMS = "azure_rms.usage"
CONNECTOR = "rms_connector.events"


@dataclass
class Target:
    #: validated settings of an output that works against the receiver
    settings: Any
    data_dir: Path
    #: event ids that reached the receiver, in arrival order, repeats included
    delivered: Callable[[], list[str]]
    #: False for outputs that can only promise at-least-once (a stream that cannot be rewound)
    exactly_once: bool = True
    #: a context manager during which the receiver is temporarily unavailable (sends raise
    #: RetryLater), or None for outputs that have no such state
    down: Callable[[], contextlib.AbstractContextManager[Any]] | None = None
    #: returns settings with which the output cannot work (OutputFailed), or None
    broken: Callable[[], Any] | None = None


def event(n: int, dataset: str = RMS) -> dict[str, Any]:
    """A normalised-looking event whose ``event.id`` (and RMS row id) is derived from ``n``."""
    eid = f"{n:08x}-0000-4000-8000-000000000000"
    ts = f"2024-03-04T09:{n // 60 % 60:02d}:{n % 60:02d}.000Z"
    doc: dict[str, Any] = {
        "@timestamp": ts,
        "event": {"kind": "event", "dataset": dataset, "id": eid, "action": "AcquireLicense"},
        "message": f'event {n}, with "quotes", a comma and ünïcode',
    }
    if dataset == RMS:
        doc["azure_rms"] = {"row_id": eid}
        doc["user"] = {"id": "joe@contoso.com", "email": "joe@contoso.com"}
    else:
        doc["event"]["code"] = "1001"
        doc["host"] = {"name": "rms-connector-1"}
    return doc


def batch(numbers: range | list[int], metadata: bool, dataset: str = RMS) -> EventBatch:
    """The events as the pipeline hands them over: NDJSON runs (two, like two decoded
    chunks), with ids, datasets and timestamps only when the output asks for them."""
    events = [event(n, dataset) for n in numbers]
    b = EventBatch()
    if metadata:
        b.ids += [e["event"]["id"] for e in events]
        b.datasets += [e["event"]["dataset"] for e in events]
        b.timestamps += [e["@timestamp"] for e in events]
    half = len(events) // 2
    for part in (events[:half], events[half:]):
        if part:
            b.add_ndjson(b"".join(orjson.dumps(e) + b"\n" for e in part), len(part))
    return b


def with_wires(out: Any, b: EventBatch) -> EventBatch:
    """``b`` (the same object) with its events also encoded by ``out``'s wire encoder, as the
    pipeline's decoders encode them for an output that has one (``EventBatch.wire``): that
    output then sends those, as it does in a run."""
    encoder = getattr(out, "wire_encoder", None)
    if encoder is None or not len(b) or b.wire(out.name) is not None:
        return b
    for run in b.ndjson_runs():
        docs = (run if isinstance(run, bytes) else run.read()).split(b"\n")[:-1]
        events = [orjson.loads(d) for d in docs]
        wire = encoder.encode(
            Decoded(
                [e["event"]["id"] for e in events],
                [e["event"]["dataset"] for e in events],
                docs,
                [e["@timestamp"] for e in events],
            )
        )
        b.add_wire(out.name, wire)
    return b


def ids(numbers: range | list[int], dataset: str = RMS) -> list[str]:
    return [event(n, dataset)["event"]["id"] for n in numbers]


class Gate:
    """A TCP relay on 127.0.0.1 in front of a receiver, which can be shut for a while (every
    connection reset, new ones included): a receiver that is temporarily unavailable, for any
    TCP output."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self._open = True
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    @contextlib.contextmanager
    def shut(self) -> Iterator[None]:
        self._open = False
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            _reset(c)
        try:
            yield
        finally:
            self._open = True

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for c in self._conns:
                _reset(c)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        src.settimeout(30)
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _reset(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.close()
