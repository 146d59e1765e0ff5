"""One connection to one receiver: TCP or TLS, the handshake, writing messages, reading acks.

Errors are translated here, at the edge: anything a retry may cure (refused, reset, timed out,
a malformed reply, a close during the handshake) becomes ``ReceiverDown``, which the output
answers by marking the receiver down and failing over; what no retry can cure (a refused
shared key or credentials, a certificate that fails verification, a receiver that demands a
handshake we have no key for) becomes ``OutputFailed`` naming the receiver.

Replies are read with msgpack's streaming ``Unpacker``: acks can arrive split or several in one
read.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Sequence
from typing import Any

import msgpack
import msgspec

from shipper.errors import OutputFailed
from shipper.outputs.fluentd import handshake
from shipper.outputs.fluentd.settings import Settings

__all__ = ["Connection", "ReceiverDown", "tls_context"]

_READ = 64 * 1024
#: buffers per sendmsg (POSIX's IOV_MAX is at least 16; Linux takes 1024)
_IOV_MAX = 512
#: seconds to listen for an unexpected HELO after connecting without a shared key
HELO_GRACE = 0.05


class ReceiverDown(Exception):
    """This receiver cannot take data now (mark it down, try another)."""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context, or None for plain TCP. Verification is on unless switched off."""
    if not settings.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
        if not settings.verify_certs:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if settings.client_cert is not None:
            ctx.load_cert_chain(
                str(settings.client_cert),
                str(settings.client_key) if settings.client_key else None,
            )
    except (OSError, ssl.SSLError) as e:
        raise OutputFailed(f"fluentd: TLS files: {e}") from None
    return ctx


class Connection:
    """A connected, authenticated session with one receiver."""

    def __init__(
        self,
        host: str,
        port: int,
        settings: Settings,
        ctx: ssl.SSLContext | None,
        shared_key: str | None,
        password: str | None,
    ) -> None:
        self.label = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
        self.keepalive = True
        self.server_hostname = ""
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 20)
        self._pack = msgspec.msgpack.Encoder().encode
        timeout = self._connect_timeout = settings.connect_timeout
        deadline = time.monotonic() + timeout
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ReceiverDown(f"cannot connect: {_reason(e)}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ctx is not None:
                sock = ctx.wrap_socket(sock, server_hostname=settings.tls_server_name or host)
        except ssl.SSLCertVerificationError as e:
            sock.close()
            raise OutputFailed(
                f"fluentd receiver {self.label}: TLS certificate not trusted: "
                f"{e.verify_message or e.reason}"
            ) from None
        except (OSError, ssl.SSLError) as e:
            sock.close()
            raise ReceiverDown(f"TLS handshake failed: {_reason(e)}") from None
        self.sock = sock
        try:
            if shared_key is not None:
                self._handshake(settings, shared_key, password, deadline)
            else:
                # A receiver with <security> greets at once; its HELO would otherwise be
                # noticed only when it closes on our first message, if at all (a reset
                # discards it), and the output would retry forever instead of saying why.
                self._recv(HELO_GRACE)
                self._drain([])
        except BaseException:
            self.close()
            raise

    def _handshake(
        self, settings: Settings, shared_key: str, password: str | None, deadline: float
    ) -> None:
        helo_msg = self._read_one(deadline, "HELO")
        try:
            helo = handshake.parse_helo(helo_msg)
            salt = handshake.new_salt()
            ping = handshake.ping(
                helo, settings.self_hostname, shared_key, salt, settings.username, password
            )
            self.send((self._pack(ping),), deadline - time.monotonic())
            pong = self._read_one(deadline, "PONG")
            self.server_hostname = handshake.check_pong(pong, helo, salt, shared_key)
        except handshake.KeyRefused as e:
            raise OutputFailed(f"fluentd receiver {self.label}: {e}") from None
        except handshake.HandshakeError as e:
            raise ReceiverDown(str(e)) from None
        self.keepalive = helo.keepalive

    def _read_one(self, deadline: float, what: str) -> Any:
        while True:
            for message in self._unpacker:
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise ReceiverDown(
                    f"no {what} within {self._connect_timeout:g} s"
                    + (" (does the receiver have a <security> section?)" if what == "HELO" else "")
                )
            self._recv(left)

    def _recv(self, timeout: float) -> bool:
        """Read what is there within ``timeout`` into the unpacker; False when nothing came."""
        try:
            self.sock.settimeout(max(timeout, 0.0))
            data = self.sock.recv(_READ)
        except (TimeoutError, BlockingIOError, ssl.SSLWantReadError):
            return False
        except (OSError, ssl.SSLError) as e:
            raise ReceiverDown(f"connection lost: {_reason(e)}") from None
        if not data:
            raise ReceiverDown("the receiver closed the connection")
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise ReceiverDown("reply too large") from None
        return True

    def send(self, parts: Sequence[bytes | memoryview], timeout: float) -> None:
        """Write a message given in parts: gathered by ``sendmsg`` on a plain socket where it
        exists, joined once for TLS (``SSLSocket`` has no ``sendmsg``) and on Windows."""
        try:
            self.sock.settimeout(max(timeout, 0.001))
            if isinstance(self.sock, ssl.SSLSocket) or not hasattr(self.sock, "sendmsg"):
                self.sock.sendall(b"".join(parts))
            else:
                _send_gathered(self.sock, parts)
        except TimeoutError:
            raise ReceiverDown("write timed out (the receiver reads nothing)") from None
        except (OSError, ssl.SSLError) as e:
            raise ReceiverDown(f"connection lost while writing: {_reason(e)}") from None

    def acks(self, timeout: float) -> list[str]:
        """Chunk ids acknowledged within ``timeout`` seconds (0: only what already arrived)."""
        got: list[str] = []
        self._drain(got)
        if got:
            return got
        if self._recv(timeout):
            self._drain(got)
        return got

    def _drain(self, got: list[str]) -> None:
        try:
            for message in self._unpacker:
                if isinstance(message, dict) and "ack" in message:
                    got.append(str(message["ack"]))
                elif isinstance(message, list | tuple) and message and message[0] == "HELO":
                    raise OutputFailed(
                        f"fluentd receiver {self.label} asks for a handshake (HELO): set shared_key"
                    )
                else:
                    raise ReceiverDown(f"unexpected reply: {message!r:.80}")
        except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as e:
            raise ReceiverDown(f"malformed reply: {e}") from None

    def check_alive(self) -> None:
        """Raise ``ReceiverDown`` if the receiver closed the connection while it sat idle."""
        got: list[str] = []
        self._recv(0)
        self._drain(got)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _send_gathered(sock: socket.socket, parts: Sequence[bytes | memoryview]) -> None:
    """``sendall`` for a list of buffers: ``sendmsg`` as often as it takes, at most
    ``_IOV_MAX`` buffers a call, going on from where a partial write stopped."""
    views = [memoryview(p) for p in parts if len(p)]
    i = 0
    while i < len(views):
        sent = sock.sendmsg(views[i : i + _IOV_MAX])
        while sent:
            n = len(views[i])
            if sent < n:
                views[i] = views[i][sent:]
                break
            sent -= n
            i += 1


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return e.reason or str(e)
    if isinstance(e, OSError):
        return e.strerror or str(e) or type(e).__name__
    return str(e)
