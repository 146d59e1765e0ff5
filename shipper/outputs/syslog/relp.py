"""RELP client: rsyslog's Reliable Event Logging Protocol, the transport that acknowledges.

Hand-written because no maintained Python RELP client exists (librelp is C, without Python
bindings, and not on Windows); the protocol is small. Frames are
``TXNR SP COMMAND SP DATALEN [SP DATA] LF``. A session starts with ``open`` (our offer:
``relp_version=0``, ``commands=syslog``; the server's ``rsp`` must be 200 and list
``syslog``), then sends each message as a ``syslog`` command with the next transaction number
(1 to 999,999,999, then 1 again), keeping at most ``relp_window`` unanswered. A message is
delivered when its ``rsp`` says 200; anything else, a ``serverclose``, a broken frame or a
timeout ends the session with ``TransportError`` naming the messages answered 200 so far (only
the others are sent again, on a new session).

Delivery is at least once: a message whose ``200`` was lost with the connection is sent again.
"""

from __future__ import annotations

import re
import select
import socket
import ssl
from array import array
from collections.abc import Iterable, Sequence

from shipper.outputs.syslog.settings import Settings
from shipper.outputs.syslog.transport import (
    CHUNK,
    MAX_BUFFERS,
    Connection,
    TransportError,
    _why,
    send_buffers,
)

MAX_TXNR = 999_999_999
_HEADER = re.compile(rb"(\d{1,9}) ([A-Za-z]{1,32}) (\d{1,9})[ \n]")


def _offer() -> bytes:
    from shipper.outputs.syslog import version

    return b"relp_version=0\nrelp_software=shipper,%b\ncommands=syslog" % version().encode()


class RelpConnection(Connection):
    def __init__(self, sock: socket.socket, where: str, settings: Settings) -> None:
        self.sock = sock
        self.where = where
        self.window = settings.relp_window
        self.timeout = settings.timeout
        self._txnr = 0
        self._buf = b""
        self._at = 0  # where the unread part of ``_buf`` starts
        sock.settimeout(settings.timeout)
        self._open()

    # --- frames -----------------------------------------------------------------------

    def _next(self) -> int:
        self._txnr = 1 if self._txnr >= MAX_TXNR else self._txnr + 1
        return self._txnr

    def _parse(self) -> tuple[int, bytes, bytes] | None:
        """A complete frame from the buffer, or None when more bytes are needed.

        The buffer is read from ``_at`` on, and cut only when it is used up (or on the next
        receive): a receive brings thousands of ``rsp`` frames, and cutting each off the
        front would copy the rest of them every time."""
        buf, at = self._buf, self._at
        m = _HEADER.match(buf, at)
        if not m:
            if len(buf) - at > 40 or buf.find(b"\n", at) >= 0:
                raise TransportError(f"{self.where}: not RELP: {buf[at : at + 40]!r}")
            return None
        size = int(m.group(3))
        if m.group(0)[-1:] == b"\n":  # DATALEN 0: no data, the LF ends the frame
            if size:
                raise TransportError(f"{self.where}: broken RELP frame {m.group(0)!r}")
            self._used(m.end())
            return int(m.group(1)), m.group(2), b""
        end = m.end() + size
        if len(buf) <= end:
            return None
        if buf[end : end + 1] != b"\n":
            raise TransportError(f"{self.where}: broken RELP frame (no trailer)")
        data = buf[m.end() : end]
        self._used(end + 1)
        return int(m.group(1)), m.group(2), data

    def _used(self, at: int) -> None:
        if at >= len(self._buf):
            self._buf, self._at = b"", 0
        else:
            self._at = at

    def _answer(self, frame: tuple[int, bytes, bytes], pending: dict[int, int]) -> int:
        """The message a frame from the receiver answers (taken out of ``pending``), when
        it is a ``200`` response; anything else ends the session with the reason."""
        txnr, command, data = frame
        if command == b"serverclose":
            raise TransportError(f"{self.where}: server closed the RELP session")
        if command != b"rsp" or txnr not in pending:
            raise TransportError(f"{self.where}: unexpected RELP frame {command!r}")
        i = pending.pop(txnr)
        if not data.startswith(b"200"):
            raise TransportError(f"{self.where}: message refused: {data[:200]!r}")
        return i

    def _read_frame(self) -> tuple[int, bytes, bytes]:
        """The next frame from the server, waiting for it (the socket's timeout applies)."""
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise TransportError(f"{self.where}: connection closed by the receiver")
            self._buf = self._buf[self._at :] + chunk
            self._at = 0

    def _open(self) -> None:
        offer = _offer()
        try:
            self.sock.sendall(b"%d open %d %b\n" % (self._next(), len(offer), offer))
            txnr, command, data = self._read_frame()
        except (OSError, ssl.SSLError) as e:
            raise TransportError(f"{self.where}: RELP open failed: {_why(e)}") from e
        if command != b"rsp" or txnr != 1 or not data.startswith(b"200"):
            raise TransportError(f"{self.where}: RELP open refused: {data[:200]!r}")
        if b"commands=" in data and b"syslog" not in data.split(b"commands=", 1)[1]:
            raise TransportError(f"{self.where}: RELP server does not offer the syslog command")

    # --- sending ----------------------------------------------------------------------

    def deliver(self, heads: Sequence[bytes], bodies: Sequence[bytes]) -> None:
        pending: dict[int, int] = {}  # txnr -> index of the message
        done: list[int] = []
        sent = 0
        n = len(heads)
        window = self.window
        try:
            while sent < n or pending:
                if sent < n and len(pending) < window:
                    bufs: list[bytes] = []
                    size = 0
                    while sent < n and len(pending) < window and size < CHUNK:
                        if len(bufs) >= MAX_BUFFERS - 3:
                            break
                        txnr = self._next()
                        head, body = heads[sent], bodies[sent]
                        length = len(head) + len(body)
                        framed = b"%d syslog %d %b" % (txnr, length, head)
                        bufs += (framed, body, b"\n")
                        size += len(framed) + len(body) + 1
                        pending[txnr] = sent
                        sent += 1
                    send_buffers(self.sock, bufs, size)
                    if sent < n and len(pending) < window:
                        continue  # the burst stopped at its size: keep writing
                # wait for one answer, then take every answer already received
                frame: tuple[int, bytes, bytes] | None = self._read_frame()
                while frame is not None:
                    i = self._answer(frame, pending)
                    done.append(i)
                    frame = self._parse()
        except TransportError as e:
            raise TransportError(str(e), done) from None
        except (OSError, ssl.SSLError) as e:
            raise TransportError(f"{self.where}: {_why(e)}", done) from e

    def deliver_framed(self, runs: Iterable[tuple[bytes, array[int]]]) -> None:
        """``deliver`` for messages the decoders encoded (``encode.WireEncoder`` with
        ``framing="none"``): runs of bytes, message ``i`` of a run ending at ``ends[i]``, each
        put in its RELP frame here, without a copy. ``TransportError.done`` counts the
        messages answered ``200`` from the first one on, up to the first one not answered
        (a later answered message is sent again: at least once)."""
        pending: dict[int, int] = {}  # txnr -> number of the message, from 0
        answered = bytearray()  # 1 for each message answered 200
        window = self.window
        todo = iter(runs)
        view: memoryview | None = None
        ends: array[int] | None = None
        k = 0  # the next message of the current run
        try:
            while True:
                while len(pending) < window:
                    if ends is None or k >= len(ends):
                        nxt = next(todo, None)
                        if nxt is None:
                            break
                        view, ends, k = memoryview(nxt[0]), nxt[1], 0
                        continue
                    assert view is not None
                    bufs: list[bytes | memoryview] = []
                    size = 0
                    while k < len(ends) and len(pending) < window and size < CHUNK:
                        if len(bufs) >= MAX_BUFFERS - 3:
                            break
                        start, end = (ends[k - 1] if k else 0), ends[k]
                        txnr = self._next()
                        framed = b"%d syslog %d " % (txnr, end - start)
                        bufs += (framed, view[start:end], b"\n")
                        size += len(framed) + end - start + 1
                        pending[txnr] = len(answered)
                        answered.append(0)
                        k += 1
                    send_buffers(self.sock, bufs, size)  # type: ignore[arg-type]
                if not pending:
                    return
                # wait for one answer, then take every answer already received
                frame: tuple[int, bytes, bytes] | None = self._read_frame()
                while frame is not None:
                    i = self._answer(frame, pending)
                    answered[i] = 1
                    frame = self._parse()
        except TransportError as e:
            raise TransportError(str(e), _answered_prefix(answered)) from None
        except (OSError, ssl.SSLError) as e:
            raise TransportError(f"{self.where}: {_why(e)}", _answered_prefix(answered)) from e

    def stale(self) -> bool:
        """Between batches a RELP server has nothing to say: anything readable is a
        ``serverclose``, a close or a reset."""
        return len(self._buf) > self._at or self._readable()

    def _readable(self) -> bool:
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        try:
            self.sock.settimeout(1.0)
            self.sock.sendall(b"%d close 0\n" % self._next())
            self._read_frame()
        except (OSError, ssl.SSLError, TransportError):
            pass
        finally:
            self.sock.close()


def _answered_prefix(answered: bytearray) -> range:
    """The messages answered from the first one on, up to the first one not answered."""
    first = answered.find(0)
    return range(len(answered) if first < 0 else first)
