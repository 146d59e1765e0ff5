"""User-facing settings of the syslog output, validated once so that the hot path trusts them.

Everything that ends up in an RFC 5424 header from the configuration (APP-NAME, SD-ID) is
checked here against the RFC's grammar, so a bad value is a config error naming the setting,
never a malformed message on the wire. TLS verification is on by default; the client key's
password comes from the environment (``${VAR}``) or a file, never from the YAML in clear.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shipper.retired import RETRY_ROUNDS, drop_retired
from shipper.settings import Settings as _Base
from shipper.settings import Size, resolved_secret, secret_or_file

#: RFC 5424 facility names -> codes
FACILITIES = {
    "kern": 0,
    "user": 1,
    "mail": 2,
    "daemon": 3,
    "auth": 4,
    "syslog": 5,
    "lpr": 6,
    "news": 7,
    "uucp": 8,
    "cron": 9,
    "authpriv": 10,
    "ftp": 11,
    "ntp": 12,
    "security": 13,
    "console": 14,
    "solaris-cron": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}
DEFAULT_PORTS = {"tcp": 514, "tls": 6514, "udp": 514, "relp": 2514, "relp_tls": 2514}
_PRINTUSASCII = re.compile(r"^[\x21-\x7e]+$")
_SD_NAME = re.compile(r"^[\x21-\x7e]{1,32}$")


def split_host(hostport: str, default_port: int) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    s = hostport.strip()
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"{hostport!r}: missing ']'")
        host, rest = s[1:end], s[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{hostport!r}: expected :port after ']'")
        port = rest[1:]
    elif s.count(":") == 1:
        host, port = s.split(":")
    else:  # a name, or a bare IPv6 address
        host, port = s, ""
    if not host:
        raise ValueError(f"{hostport!r}: no host")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{hostport!r}: port must be 1-65535")
    return host, int(port)


class Settings(_Base):
    """RFC 5424 syslog over TCP (octet counting or LF), TLS, UDP or RELP."""

    type: Literal["syslog"] = "syslog"
    hosts: list[str] = Field(
        default_factory=lambda: ["localhost"],
        min_length=1,
        description="receivers as host[:port], tried in order: the next one when one fails",
    )
    transport: Literal["tcp", "tls", "udp", "relp", "relp_tls"] = "tcp"
    framing: Literal["octet_counting", "lf"] = Field(
        default="octet_counting", description="tcp/tls: RFC 6587 octet counting or LF"
    )
    format: Literal["json", "cef", "leef"] = Field(default="json", description="MSG body")

    # --- the RFC 5424 header --------------------------------------------------------------
    facility: str = "local0"
    app_name: str = Field(default="shipper", description="APP-NAME (48 printable ASCII)")
    msgid: Literal["dataset", "action"] = Field(
        default="dataset", description="MSGID: event.dataset or event.action"
    )
    sd_id: str = Field(
        default="meta",
        description="SD-ID carrying event_id and dataset (an IANA name, or name@<your PEN>)",
    )
    hostname: str | None = Field(
        default=None, description="HOSTNAME for events without host.name (default: this host)"
    )
    utf8_bom: bool = Field(
        default=False, description="start MSG with a BOM (RFC 5424 MSG-UTF8; many SIEMs choke)"
    )

    # --- TLS (tls, relp_tls) ----------------------------------------------------------------
    ca_file: Path | None = Field(default=None, description="PEM bundle of the receiver's CA")
    cert_file: Path | None = Field(default=None, description="client certificate (PEM)")
    key_file: Path | None = Field(default=None, description="client key (PEM)")
    key_password: SecretStr | None = None
    key_password_file: Path | None = None
    verify_certs: bool = Field(default=True, description="verify the receiver's certificate")
    server_name: str | None = Field(
        default=None, description="name checked in the receiver's certificate (default: host)"
    )

    # --- sizes, UDP -------------------------------------------------------------------------
    max_message_size: Size | None = Field(
        default=None,
        description="bytes per message, header included (udp default 8KB; others unlimited)",
    )
    oversize: Literal["dead_letter", "truncate"] = Field(
        default="dead_letter",
        description="a message over max_message_size: to the dead-letter file, or its MSG "
        "cut with a marker",
    )

    # --- flow -------------------------------------------------------------------------------
    relp_window: int = Field(default=1024, ge=1, le=100_000, description="unacknowledged frames")
    timeout: float = Field(default=10.0, gt=0, description="seconds for connect, writes, acks")
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    dead_letter: Path | None = Field(
        default=None, description="JSONL file; default <data_dir>/dead_letter/syslog.jsonl"
    )

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        return drop_retired(data, "syslog output", {"retry_rounds": RETRY_ROUNDS})

    @field_validator("facility")
    @classmethod
    def _facility(cls, v: str) -> str:
        if v.lower() not in FACILITIES:
            raise ValueError(f"unknown facility {v!r}; one of {', '.join(FACILITIES)}")
        return v.lower()

    @field_validator("app_name")
    @classmethod
    def _app_name(cls, v: str) -> str:
        if not _PRINTUSASCII.match(v) or len(v) > 48:
            raise ValueError("1-48 printable ASCII characters, no spaces (RFC 5424 APP-NAME)")
        return v

    @field_validator("sd_id")
    @classmethod
    def _sd_id(cls, v: str) -> str:
        if not _SD_NAME.match(v) or any(c in v for c in '= ]"'):
            raise ValueError('1-32 printable ASCII characters without = ] " or space (SD-ID)')
        if "@" not in v and v not in ("meta", "origin", "timeQuality"):
            raise ValueError(
                "an SD-ID without '@' must be IANA-registered (meta, origin, timeQuality); "
                "use name@<private enterprise number> for your own"
            )
        return v

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str | None) -> str | None:
        if v is not None and (not _PRINTUSASCII.match(v) or len(v) > 255):
            raise ValueError("1-255 printable ASCII characters (RFC 5424 HOSTNAME)")
        return v

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for h in v:
            split_host(h, 1)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.framing == "lf" and self.transport not in ("tcp", "tls"):
            raise ValueError("framing: lf applies to transport tcp or tls only")
        secret_or_file(self, "key_password")
        if (self.cert_file is None) != (self.key_file is None) and self.key_file is not None:
            raise ValueError("key_file given without cert_file")
        tls = self.transport in ("tls", "relp_tls")
        if not tls and any(
            x is not None for x in (self.ca_file, self.cert_file, self.key_file, self.server_name)
        ):
            raise ValueError(
                "ca_file/cert_file/key_file/server_name need transport tls or relp_tls"
            )
        if self.max_message_size is not None and self.max_message_size < 480:
            raise ValueError("max_message_size: at least 480 bytes (RFC 5426's minimum)")
        return self

    # --- resolved at start ------------------------------------------------------------------

    def addresses(self) -> list[tuple[str, int]]:
        port = DEFAULT_PORTS[self.transport]
        return [split_host(h, port) for h in self.hosts]

    def size_limit(self) -> int | None:
        if self.max_message_size is None and self.transport == "udp":
            return 8192
        return self.max_message_size

    def resolved_key_password(self) -> str | None:
        return resolved_secret(self, "key_password")

    def display_name(self) -> str:
        return f"syslog:{self.transport}://{self.hosts[0]}"

    def dead_letter_path(self, data_dir: Path) -> Path:
        return self.dead_letter or Path(data_dir) / "dead_letter" / "syslog.jsonl"
