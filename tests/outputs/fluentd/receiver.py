"""A Forward protocol v1 receiver written from the specification, for tests only.

It accepts all four event modes (Message, Forward, PackedForward, CompressedPackedForward),
EventTime and integer times, the handshake (HELO / PING / PONG, shared key, optional
username/password) over TCP or TLS, and acks chunks. It uses msgpack (the shipper encodes with
msgspec), so an encoding mistake on one side is not mirrored on the other.

It misbehaves on request, through ``Faults`` (each counter is used up one connection or chunk
at a time): drop the connection after some bytes (mid-chunk), delay an ack, ack a wrong chunk
id, close right after HELO, or refuse every shared key.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack


@dataclass(frozen=True)
class EventTime:
    seconds: int
    nanos: int


@dataclass(frozen=True)
class Event:
    tag: str
    time: EventTime | int | float
    record: dict[str, Any]
    chunk: str | None
    mode: str


@dataclass
class Faults:
    #: connections to close once this many bytes of events arrived (messages complete before
    #: that point are processed and acked; the one cut off is dropped)
    drop_after_bytes: int = 0
    drops: int = 0
    #: chunks whose ack comes this many seconds late
    delay_ack: float = 0.0
    delayed: int = 0
    #: chunks acked with a wrong id (their events are kept, as a real receiver would)
    wrong_acks: int = 0
    #: connections closed right after HELO
    close_after_helo: int = 0
    #: answer every PING with "shared_key mismatch"
    refuse_key: bool = False
    #: answer PONG with a digest made from another key (a receiver that does not know ours)
    fake_pong: bool = False
    #: never ack at all (but keep the events)
    never_ack: bool = False


@dataclass
class Receiver:
    shared_key: str | None = None
    hostname: str = "receiver.test"
    users: dict[str, str] = field(default_factory=dict)
    tls: ssl.SSLContext | None = None
    keepalive: bool = True
    faults: Faults = field(default_factory=Faults)
    port: int = 0  # 0: any free one

    events: list[Event] = field(default_factory=list)
    chunks: list[tuple[str | None, int]] = field(default_factory=list)  # (chunk id, size)
    pings: list[list[Any]] = field(default_factory=list)
    #: ("chunk", id) when a chunk arrived, ("ack", id) when an ack was written, in order
    log: list[tuple[str, str | None]] = field(default_factory=list)
    connections: int = 0
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self.port = self._sock.getsockname()[1]
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # --- serving --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            if self.tls is not None:
                raw, conn = conn, self.tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._conns[self._conns.index(raw)] = conn
            unpacker = msgpack.Unpacker(raw=False, ext_hook=_ext, strict_map_key=False)
            if self.shared_key is not None and not self._handshake(conn, unpacker):
                return
            received = 0
            f = self.faults
            cut = f.drops > 0 and f.drop_after_bytes > 0  # this connection is to be cut
            while not self._stop.is_set():
                limit = min(65536, f.drop_after_bytes - received) if cut else 65536
                data = conn.recv(limit)
                if not data:
                    return
                received += len(data)
                unpacker.feed(data)
                for message in unpacker:
                    if not self._message(conn, message):
                        return
                if cut and received >= f.drop_after_bytes:
                    with self._lock:
                        f.drops -= 1
                    return  # what was cut off is lost with the connection
        except (OSError, ValueError, msgpack.UnpackException) as e:
            self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _handshake(self, conn: socket.socket, unpacker: msgpack.Unpacker) -> bool:
        nonce = os.urandom(16)
        auth = os.urandom(16) if self.users else b""
        helo = ["HELO", {"nonce": nonce, "auth": auth, "keepalive": self.keepalive}]
        conn.sendall(msgpack.packb(helo))
        with self._lock:
            if self.faults.close_after_helo > 0:
                self.faults.close_after_helo -= 1
                return False
        ping = _read_one(conn, unpacker)
        self.pings.append(ping)
        if not (isinstance(ping, list) and len(ping) == 6 and ping[0] == "PING"):
            return False
        _, client, salt, key_digest, username, password_digest = ping
        key = self.shared_key or ""
        ok, reason = True, ""
        if self.faults.refuse_key or key_digest != _sha512(salt, client, nonce, key):
            ok, reason = False, "shared_key mismatch"
        elif self.users:
            want = self.users.get(username)
            if want is None or password_digest != _sha512(auth, username, want):
                ok, reason = False, "username/password mismatch"
        proof_key = "not-the-key" if self.faults.fake_pong else key
        pong = ["PONG", ok, reason, self.hostname,
                _sha512(salt, self.hostname, nonce, proof_key)]  # fmt: skip
        conn.sendall(msgpack.packb(pong))
        return ok

    def _message(self, conn: socket.socket, message: Any) -> bool:
        """Record one message's events and ack it; False to close the connection."""
        if not isinstance(message, list) or len(message) < 2:
            self.errors.append(f"not a message: {message!r:.60}")
            return False
        tag, second = message[0], message[1]
        options: dict[str, Any] = {}
        if isinstance(second, int | float | EventTime):  # Message: [tag, time, record, opt]
            entries = [(second, message[2])]
            options = message[3] if len(message) > 3 else {}
            mode = "message"
        elif isinstance(second, list):  # Forward: [tag, [[time, record], ...], opt]
            entries = [tuple(e) for e in second]
            options = message[2] if len(message) > 2 else {}
            mode = "forward"
        else:  # PackedForward / CompressedPackedForward: [tag, bin, opt]
            blob = second.encode() if isinstance(second, str) else second
            options = message[2] if len(message) > 2 else {}
            mode = "packed_forward"
            if options.get("compressed") == "gzip":
                blob = gzip.decompress(blob)
                mode = "compressed_packed_forward"
            inner = msgpack.Unpacker(raw=False, ext_hook=_ext, strict_map_key=False)
            inner.feed(blob)
            entries = [tuple(e) for e in inner]
        if "size" in options and options["size"] != len(entries):
            self.errors.append(f"size option {options['size']} but {len(entries)} entries")
        chunk = options.get("chunk")
        with self._lock:
            self.events += [Event(tag, t, rec, chunk, mode) for t, rec in entries]
            self.chunks.append((chunk, len(entries)))
            self.log.append(("chunk", chunk))
            f = self.faults
            delay = wrong = False
            if chunk is not None and f.delayed > 0:
                f.delayed -= 1
                delay = True
            if chunk is not None and f.wrong_acks > 0:
                f.wrong_acks -= 1
                wrong = True
        if chunk is None or f.never_ack:
            return True
        if delay:
            time.sleep(f.delay_ack)
        conn.sendall(msgpack.packb({"ack": "not-" + chunk if wrong else chunk}))
        with self._lock:
            self.log.append(("ack", "not-" + chunk if wrong else chunk))
        return self.keepalive  # without keepalive, one chunk per connection (deny_keepalive)

    # --- control --------------------------------------------------------------------------

    def ids(self) -> list[str]:
        with self._lock:
            return [e.record["event"]["id"] for e in self.events]

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it
                    c.close()
                except OSError:
                    pass
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _ext(code: int, data: bytes) -> Any:
    if code == 0 and len(data) == 8:
        return EventTime(int.from_bytes(data[:4], "big"), int.from_bytes(data[4:], "big"))
    return msgpack.ExtType(code, data)


def _sha512(*parts: str | bytes) -> str:
    h = hashlib.sha512()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
    return h.hexdigest()


def _read_one(conn: socket.socket, unpacker: msgpack.Unpacker) -> Any:
    while True:
        for message in unpacker:
            return message
        data = conn.recv(65536)
        if not data:
            raise ConnectionResetError("closed during the handshake")
        unpacker.feed(data)
