"""Sockets to a syslog receiver: TCP and TLS streams, UDP datagrams; errors translated here.

A connection has one method, ``deliver(heads, bodies)``, which returns only when the messages are
delivered in the transport's own sense, or raises ``TransportError`` saying which of them are
known to be delivered all the same (they are not sent again):

- **TCP / TLS** (RFC 6587 / RFC 5425): the bytes are written, and then the receiver's TCP has
  acknowledged every one of them (Linux: the socket's send queue, ``SIOCOUTQ``, is empty) and
  the connection is still healthy (no reset, no close notify). That is one round trip after
  the last byte. What this cannot see: a receiver that dies after its kernel acknowledged
  bytes its process had not read yet. Those bytes (at most its socket receive buffer; in
  practice the last moments of traffic) are lost, and nothing in plain syslog can tell.
  Where the send queue cannot be read (Windows), only the health check remains.
  After a failure, plain TCP resends from the first message not wholly acknowledged by the
  receiver's TCP (so a receiver that read a message but died before its TCP acknowledged it
  gets it twice); TLS resends everything of the batch not yet confirmed (its records do not
  map to message boundaries).
- **UDP** (RFC 5426): a datagram per message; delivered on send. Lossy by nature.

Failover: ``connect`` tries the receivers in the configured order and returns the first that
answers; the output calls it again after any failure, so the first receiver is preferred
whenever it is back.
"""

from __future__ import annotations

import bisect
import errno
import select
import socket
import ssl
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence

from shipper.outputs.syslog.encode import frame_lf, frame_octets
from shipper.outputs.syslog.settings import Settings

try:  # Linux (and most Unixes): bytes written but not yet acknowledged by the peer
    import fcntl
    import termios

    _OUTQ: int | None = termios.TIOCOUTQ  # == SIOCOUTQ on Linux
except (ImportError, AttributeError):  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    _OUTQ = None

#: bytes handed to the kernel per write: large enough to keep the pipe full
CHUNK = 256 * 1024
#: buffers per sendmsg (the kernel's IOV_MAX is 1024)
MAX_BUFFERS = 1020

__all__ = [
    "CertificateRefused",
    "Connection",
    "TransportError",
    "connect",
    "tls_context",
]


class TransportError(Exception):
    """The connection failed; ``done`` holds the indexes of messages delivered all the same."""

    def __init__(self, message: str, done: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.done = done


class CertificateRefused(TransportError):
    """The receiver's certificate did not verify: a configuration problem, not an outage."""


class Connection:
    """Base: a connected socket and where it goes."""

    where: str

    def deliver(self, heads: Sequence[bytes], bodies: Sequence[bytes]) -> None:
        """Deliver the messages ``heads[i] + bodies[i]``, or raise ``TransportError``."""
        raise NotImplementedError

    def deliver_framed(self, runs: Iterable[tuple[bytes, array[int]]]) -> None:
        """Deliver messages the decoders encoded for this transport (``encode.WireEncoder``):
        runs of bytes, message ``i`` of a run ending at byte ``ends[i]``."""
        raise NotImplementedError

    def stale(self) -> bool:
        """True when the receiver closed or reset the connection while it was idle (receivers
        drop idle connections): better a new one than writing into this."""
        return False

    def close(self) -> None:
        raise NotImplementedError


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Client context: system CAs or ``ca_file``; verification and name check on unless told."""
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=str(settings.ca_file) if settings.ca_file else None
    )
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not settings.verify_certs:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if settings.cert_file is not None:
        ctx.load_cert_chain(
            str(settings.cert_file),
            str(settings.key_file) if settings.key_file else None,
            password=settings.resolved_key_password(),
        )
    return ctx


def _open_stream(
    host: str, port: int, timeout: float, ctx: ssl.SSLContext | None, server_name: str | None
) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if ctx is not None:
            started = time.monotonic()
            sock = ctx.wrap_socket(sock, server_hostname=server_name or host)
            _after_handshake(sock, min(timeout, max(0.05, 3 * (time.monotonic() - started))))
    except BaseException:
        sock.close()
        raise
    return sock


def _after_handshake(sock: ssl.SSLSocket, wait: float) -> None:
    """With TLS 1.3 the client's handshake ends before the receiver has checked our
    certificate; its verdict (an alert, or session tickets) follows. Wait for it a few
    handshake times, so a refusal is an error here, not a batch that seemed delivered."""
    deadline = time.monotonic() + wait
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                return
            try:
                if not sock.recv(65536):
                    raise ConnectionResetError(
                        "closed by the receiver right after the TLS handshake (does it want a"
                        " client certificate it trusts? cert_file, key_file)"
                    )
            except ssl.SSLWantReadError:
                continue  # a session ticket: keep listening until the deadline
    finally:
        sock.settimeout(timeout)


def open_socket(settings: Settings, host: str, port: int, ctx: ssl.SSLContext | None):
    """A connected socket for ``transport`` (stream or datagram); errors translated."""
    where = f"{host}:{port}"
    try:
        if settings.transport == "udp":
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(info[0], socket.SOCK_DGRAM)
            sock.settimeout(settings.timeout)
            sock.connect(info[4])
            return sock
        return _open_stream(host, port, settings.timeout, ctx, settings.server_name)
    except ssl.SSLCertVerificationError as e:
        raise CertificateRefused(f"{where}: TLS certificate refused: {e.verify_message}") from e
    except ssl.SSLError as e:
        if "CERTIFICATE" in (e.reason or "") or "UNKNOWN_CA" in (e.reason or ""):
            raise CertificateRefused(
                f"{where}: the receiver refused our TLS client certificate ({e.reason})"
            ) from e
        raise TransportError(f"{where}: TLS handshake failed: {e.reason or e}") from e
    except OSError as e:
        raise TransportError(f"{where}: cannot connect: {e.strerror or e}") from e


def connect(settings: Settings, ctx: ssl.SSLContext | None) -> Connection:
    """The first receiver, in configured order, that accepts a connection."""
    errors: list[TransportError] = []
    for host, port in settings.addresses():
        try:
            sock = open_socket(settings, host, port, ctx)
        except TransportError as e:
            errors.append(e)
            continue
        where = f"{host}:{port}"
        if settings.transport == "udp":
            return DatagramConnection(sock, where)
        if settings.transport in ("relp", "relp_tls"):
            from shipper.outputs.syslog.relp import RelpConnection

            return RelpConnection(sock, where, settings)
        return StreamConnection(sock, where, settings.framing, settings.timeout)
    refused = [e for e in errors if isinstance(e, CertificateRefused)]
    message = "; ".join(str(e) for e in errors)
    raise (CertificateRefused if refused else TransportError)(message)


def send_buffers(sock: socket.socket, bufs: Sequence[bytes], total: int) -> None:
    """Write the buffers (``total`` bytes) in order, whole. Plain sockets take them as one
    gather write (``sendmsg``, no copy into one string); TLS sockets take them joined."""
    if isinstance(sock, ssl.SSLSocket) or not hasattr(sock, "sendmsg"):
        sock.sendall(b"".join(bufs))
        return
    sent = sock.sendmsg(bufs)
    if sent == total:
        return
    todo: list[bytes | memoryview] = list(bufs)
    while True:
        i = 0
        while i < len(todo) and sent >= len(todo[i]):
            sent -= len(todo[i])
            i += 1
        del todo[:i]
        if sent:  # a partial write (the receiver is slow): go on from inside this buffer
            todo[0] = memoryview(todo[0])[sent:]
        if not todo:
            return
        sent = sock.sendmsg(todo)


def _healthy(sock: socket.socket) -> str | None:
    """None when nothing came back; else why the connection is over (reset, closed)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError) as e:
        return f"socket error: {e}"
    if not readable:
        return None
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)  # a syslog receiver sends nothing; drop what it does
            if not data:
                return "closed by the receiver"
    except ssl.SSLWantReadError:
        return None  # TLS housekeeping (session tickets), consumed
    except BlockingIOError:
        return None
    except (ssl.SSLError, OSError) as e:
        return f"{getattr(e, 'strerror', None) or e}"
    finally:
        try:
            sock.settimeout(timeout)
        except OSError:
            pass


class StreamConnection(Connection):
    """TCP or TLS with octet-counting or LF framing."""

    def __init__(self, sock: socket.socket, where: str, framing: str, timeout: float) -> None:
        self.sock = sock
        self.where = where
        self.timeout = timeout
        self._frame = frame_octets if framing == "octet_counting" else frame_lf
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._closed_by_peer = False

    def deliver(self, heads: Sequence[bytes], bodies: Sequence[bytes]) -> None:
        bufs, ends = self._frame(heads, bodies)  # ends: byte offset after each message
        per = len(bufs) // len(heads) if heads else 1  # buffers per message

        def send() -> Iterator[int]:
            written = start = 0  # start: in messages
            while start < len(ends):
                stop = bisect.bisect_right(ends, written + CHUNK, lo=start + 1)
                stop = min(max(stop, start + 1), start + MAX_BUFFERS // per)
                send_buffers(self.sock, bufs[start * per : stop * per], ends[stop - 1] - written)
                written = ends[stop - 1]
                start = stop
                yield written

        self._write([(0, ends)], send())

    def deliver_framed(self, runs: Iterable[tuple[bytes, array[int]]]) -> None:
        """Like ``deliver``, for messages already framed for this connection (by the
        decoders: ``encode.WireEncoder``): runs of bytes, each message of a run ending at its
        ``ends[i]``. ``TransportError.done`` counts from the first message of the first run."""
        sent: list[tuple[int, Sequence[int]]] = []  # (offset of the run, its ends)

        def send() -> Iterator[int]:
            written = 0
            for data, ends in runs:
                sent.append((written, ends))
                view = memoryview(data)
                while view:
                    n = self.sock.send(view[:CHUNK])
                    written += n
                    view = view[n:]
                    yield written

        self._write(sent, send())

    def _write(self, runs: Sequence[tuple[int, Sequence[int]]], send: Iterator[int]) -> None:
        """Write what ``send`` writes (it yields the bytes written so far; ``runs`` holds the
        offset and message ends of each run it has begun), wait until the receiver's TCP has
        taken it, then check that the connection is still healthy: what "delivered" means
        over TCP and TLS. A failure says how many messages the receiver's TCP acknowledged."""
        if self._closed_by_peer:
            raise TransportError(f"{self.where}: closed by the receiver")
        written = 0
        try:
            for n in send:
                written = n
            self._drain(written)
        except TransportError as e:
            raise TransportError(str(e), self._confirmed_runs(runs, written)) from None
        except (OSError, ssl.SSLError) as e:
            done = self._confirmed_runs(runs, written)
            raise TransportError(f"{self.where}: {_why(e)}", done) from e
        problem = _healthy(self.sock)
        if problem == "closed by the receiver":
            # Everything was acknowledged before the close arrived: the receiver read it and
            # closed in order (with unread data its TCP would have reset instead).
            self._closed_by_peer = True
        elif problem:
            raise TransportError(f"{self.where}: {problem}", self._confirmed_runs(runs, written))

    def _confirmed_runs(self, runs: Sequence[tuple[int, Sequence[int]]], written: int) -> range:
        """Messages wholly acknowledged by the receiver's TCP (plain TCP only), over runs of
        messages (offset of each run, its ends)."""
        if self._tls:
            return range(0)
        try:
            unacked = self._unacked()
        except OSError:
            unacked = None
        if unacked is None:
            return range(0)
        acked = max(0, written - unacked)
        done = 0
        for base, ends in runs:
            n = bisect.bisect_right(ends, acked - base)
            done += n
            if n < len(ends):
                break
        return range(done)

    def stale(self) -> bool:
        return self._closed_by_peer or _healthy(self.sock) is not None

    def _unacked(self) -> int | None:
        """Bytes not yet acknowledged by the receiver's TCP; None where that is unknown."""
        global _OUTQ
        if _OUTQ is None or fcntl is None:
            return None
        try:
            buf = fcntl.ioctl(self.sock.fileno(), _OUTQ, b"\0\0\0\0")
        except OSError as e:
            if e.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
                _OUTQ = None  # this system has no such query for sockets
                return None
            raise
        return int.from_bytes(buf, "little", signed=True)

    def _drain(self, written: int) -> None:
        """Wait until the receiver's TCP acknowledged every byte (one round trip)."""
        deadline = time.monotonic() + self.timeout
        pause = 0.0002
        while True:
            unacked = self._unacked()
            if not unacked:
                return
            problem = _healthy(self.sock)
            if problem:
                raise TransportError(f"{self.where}: {problem}")
            if time.monotonic() > deadline:
                raise TransportError(
                    f"{self.where}: {unacked} bytes not acknowledged after {self.timeout:g}s"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def close(self) -> None:
        try:
            if self._tls:
                self.sock.settimeout(1.0)
                self.sock.unwrap()  # type: ignore[attr-defined]
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            self.sock.close()


class DatagramConnection(Connection):
    """UDP: one datagram per message (sizes were checked by the output)."""

    def __init__(self, sock: socket.socket, where: str) -> None:
        self.sock = sock
        self.where = where

    def deliver(self, heads: Sequence[bytes], bodies: Sequence[bytes]) -> None:
        sock = self.sock
        i = 0
        try:
            if hasattr(sock, "sendmsg"):
                for i, head in enumerate(heads):  # noqa: B007 - i names the failed one
                    sock.sendmsg((head, bodies[i]))
            else:  # Windows
                for i, head in enumerate(heads):  # noqa: B007
                    sock.send(head + bodies[i])
        except OSError as e:
            if e.errno == errno.EMSGSIZE:
                size = len(heads[i]) + len(bodies[i])
                too_big = f"{self.where}: datagram too large ({size} bytes)"
                raise TransportError(too_big, range(i)) from e
            raise TransportError(f"{self.where}: {_why(e)}", range(i)) from e

    def close(self) -> None:
        self.sock.close()


def _why(e: BaseException) -> str:
    if isinstance(e, socket.timeout | TimeoutError):
        return "timed out (receiver not reading)"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__
