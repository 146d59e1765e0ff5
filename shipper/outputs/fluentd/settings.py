"""User-facing settings of the Fluentd output (Forward protocol v1).

Receivers are ``host:port`` strings (``[::1]:24224`` for IPv6), tried in the order given: the
first one that is not marked down gets the chunks, the others take over when it fails.

Secrets (``shared_key``, ``password``) are ``SecretStr`` so that a config dump, a validation
error or a log line never shows them; they come from the environment (``${VAR}`` in the YAML) or
from a file (``shared_key_file``, ``password_file``), read when the output starts.

TLS is off by default because Fluentd's ``in_forward`` listens in plain TCP unless told
otherwise; once ``tls: true``, the receiver's certificate and name are verified unless
``verify_certs: false`` says not to.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shipper.settings import Settings as _Base
from shipper.settings import Size, resolved_secret, secret_or_file

_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]+))(?::(?P<port>\d+))?$"
)
_TAG_PART = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
DEFAULT_PORT = 24224


def split_host(value: str) -> tuple[str, int]:
    """``host[:port]`` or ``[v6][:port]`` -> (host, port); port 24224 when left out."""
    m = _HOST_PORT.match(value.strip())
    if not m:
        raise ValueError(f"not host:port: {value!r} (write IPv6 addresses as [::1]:24224)")
    port = int(m.group("port") or DEFAULT_PORT)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range in {value!r}")
    return m.group("v6") or m.group("host"), port


class Settings(_Base):
    """Events to Fluentd / Fluent Bit over the Forward protocol, acknowledged per chunk."""

    type: Literal["fluentd"] = "fluentd"
    hosts: list[str] = Field(
        default_factory=lambda: [f"localhost:{DEFAULT_PORT}"],
        min_length=1,
        description="receivers as host:port, in order of preference (failover)",
    )
    tag_prefix: str = Field(default="shipper", description="tag = <tag_prefix>.<dataset>")
    mode: Literal["packed_forward", "forward", "compressed_packed_forward"] = Field(
        default="packed_forward",
        description="message mode: one msgpack blob of entries per chunk, an array of entries, "
        "or the blob gzipped",
    )
    gzip_level: int = Field(default=1, ge=1, le=9, description="compressed_packed_forward only")
    chunk_events: int = Field(default=2000, ge=1, description="events per chunk at most")
    chunk_bytes: Size = Field(default=4 * 1024 * 1024, ge=1024, description="encoded bytes")
    require_ack: bool = Field(
        default=True, description="a chunk counts as delivered only when the receiver acks it"
    )
    ack_timeout: float = Field(default=30.0, gt=0, description="seconds to wait for an ack")
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds, handshake included")
    max_in_flight: int = Field(default=4, ge=1, le=64, description="unacknowledged chunks")
    backoff_initial: float = Field(default=0.5, gt=0, description="first down time, seconds")
    backoff_max: float = Field(default=30.0, gt=0, description="cap on a receiver's down time")

    # --- handshake (the receiver's <security> section) --------------------------------------
    shared_key: SecretStr | None = None
    shared_key_file: Path | None = None
    self_hostname: str = Field(
        default_factory=socket.gethostname, description="our name in the handshake"
    )
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None

    # --- TLS ----------------------------------------------------------------------------------
    tls: bool = False
    ca_file: Path | None = Field(default=None, description="PEM bundle of the receivers' CA")
    verify_certs: bool = True
    tls_server_name: str | None = Field(
        default=None, description="name to verify instead of the host (when connecting by IP)"
    )
    client_cert: Path | None = Field(default=None, description="PEM certificate for mutual TLS")
    client_key: Path | None = Field(default=None, description="its key (if not in client_cert)")

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for h in v:
            split_host(h)
        return v

    @field_validator("tag_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _TAG_PART.match(v):
            raise ValueError("letters, digits, '_', '-' and dots between them")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        secret_or_file(self, "shared_key")
        secret_or_file(self, "password")
        has_password = self.password is not None or self.password_file is not None
        if has_password and not self.username:
            raise ValueError("password given without username")
        if (self.username or has_password) and not self.has_shared_key:
            raise ValueError("username/password are checked in the handshake: set a shared_key")
        tls_only = ("ca_file", "client_cert", "client_key", "tls_server_name")
        if not self.tls and any(getattr(self, f) is not None for f in tls_only):
            raise ValueError(f"{', '.join(tls_only)} need tls: true")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key given without client_cert")
        return self

    @property
    def has_shared_key(self) -> bool:
        return self.shared_key is not None or self.shared_key_file is not None

    def receivers(self) -> list[tuple[str, int]]:
        return [split_host(h) for h in self.hosts]

    def display_name(self) -> str:
        more = f"+{len(self.hosts) - 1}" if len(self.hosts) > 1 else ""
        return f"fluentd:{self.hosts[0]}{more}"

    # --- resolved at start ----------------------------------------------------------------

    def resolved_shared_key(self) -> str | None:
        return resolved_secret(self, "shared_key")

    def resolved_password(self) -> str | None:
        return resolved_secret(self, "password")
