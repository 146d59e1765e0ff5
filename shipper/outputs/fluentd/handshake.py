"""The Forward protocol v1 handshake, client side, as pure functions over decoded messages.

A receiver with a ``<security>`` section greets each connection with
``["HELO", {"nonce": bin, "auth": salt or "", "keepalive": bool}]``. The client answers
``["PING", self_hostname, shared_key_salt, sha512_hex(shared_key_salt + self_hostname + nonce +
shared_key), username or "", sha512_hex(auth_salt + username + password) or ""]`` and the
receiver replies ``["PONG", ok, reason, server_hostname, sha512_hex(shared_key_salt +
server_hostname + nonce + shared_key)]``. Both sides thus prove they know the key without
sending it, and the client checks the receiver's proof too: a server that does not know the
key cannot impersonate the aggregator.

Written here rather than taken from ``fluent-logger``, which implements no handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Helo", "HandshakeError", "KeyRefused", "check_pong", "digest", "parse_helo", "ping"]


class HandshakeError(Exception):
    """The receiver's messages do not follow the protocol (try again, maybe elsewhere)."""


class KeyRefused(Exception):
    """Wrong shared key or credentials, on either side: a configuration error, not transient."""


@dataclass(frozen=True, slots=True)
class Helo:
    nonce: bytes
    auth_salt: bytes  # empty: the receiver checks no username/password
    keepalive: bool


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return b""


def digest(*parts: str | bytes) -> str:
    """sha512 hex of the parts, concatenated as bytes (strings as UTF-8)."""
    h = hashlib.sha512()
    for p in parts:
        h.update(_bytes(p))
    return h.hexdigest()


def parse_helo(message: Any) -> Helo:
    if not (isinstance(message, list | tuple) and len(message) == 2 and message[0] == "HELO"):
        raise HandshakeError(f"expected HELO, got {_short(message)}")
    options = message[1] if isinstance(message[1], dict) else {}
    return Helo(
        nonce=_bytes(options.get("nonce")),
        auth_salt=_bytes(options.get("auth")),
        keepalive=bool(options.get("keepalive", True)),
    )


def new_salt() -> str:
    return os.urandom(16).hex()


def ping(
    helo: Helo,
    self_hostname: str,
    shared_key: str,
    salt: str,
    username: str | None = None,
    password: str | None = None,
) -> list[str]:
    key_digest = digest(salt, self_hostname, helo.nonce, shared_key)
    if helo.auth_salt:
        if not username or password is None:
            raise KeyRefused("the receiver asks for a username and password: set both")
        return ["PING", self_hostname, salt, key_digest, username,
                digest(helo.auth_salt, username, password)]  # fmt: skip
    return ["PING", self_hostname, salt, key_digest, "", ""]


def check_pong(message: Any, helo: Helo, salt: str, shared_key: str) -> str:
    """The receiver's hostname, once it has accepted us and proved it knows the key."""
    if not (isinstance(message, list | tuple) and len(message) == 5 and message[0] == "PONG"):
        raise HandshakeError(f"expected PONG, got {_short(message)}")
    _, ok, reason, hostname, their_digest = message
    if not ok:
        raise KeyRefused(f"the receiver refused us: {reason or 'no reason given'}")
    expected = digest(salt, hostname if isinstance(hostname, str) else "", helo.nonce, shared_key)
    if not (isinstance(their_digest, str) and hmac.compare_digest(their_digest, expected)):
        raise KeyRefused("the receiver could not prove it knows the shared key (PONG digest)")
    return str(hostname)


def _short(message: Any) -> str:
    text = repr(message)
    return text if len(text) <= 80 else text[:77] + "..."
