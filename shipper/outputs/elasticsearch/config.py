"""User-facing settings of the Elasticsearch / OpenSearch output, and the component entry points.

This module is what the ``elasticsearch`` and ``opensearch`` entry points name (see
``shipper.registry``): ``Settings``, ``build``, ``check`` and ``setup`` at the end, which import
the client library only when called, so validating a configuration does not. (Not the package's
``__init__``: its ``setup`` attribute is the ``setup`` submodule.)

Secrets are ``SecretStr`` so that a config dump, a validation error or a log line never shows
them; they come from the environment (``${VAR}`` in the YAML) or from a file named by
``api_key_file`` / ``password_file`` (read when the output starts, so a rotated file is picked up
by a restart without editing the config).

Documents go to a data stream per dataset (``logs-<dataset>-<namespace>``) unless ``index`` is
set. An ``index`` may contain ``{dataset}``, ``{namespace}`` and ``%{+yyyy.MM.dd}`` (any of
``yyyy``, ``MM``, ``dd``, ``HH``), taken from the event's own ``@timestamp``. Server-side date
math (``<name-{now/d}>``) is refused: a batch re-sent after midnight would land in a new index
and be indexed twice, which the ``create`` + ``_id`` scheme exists to prevent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from shipper.errors import OutputFailed
from shipper.retired import RETRY_ROUNDS, drop_retired
from shipper.settings import Settings, resolved_secret, secret_or_file
from shipper.units import parse_size as _size

if TYPE_CHECKING:
    from shipper.outputs.elasticsearch.output import BulkOutput

_NAMESPACE = re.compile(r"^[a-z0-9_]{1,100}$")


class ElasticsearchOutput(Settings):
    """Bulk ``create`` into Elasticsearch or OpenSearch, ``_id`` = event id (exactly once)."""

    type: Literal["elasticsearch", "opensearch"] = "elasticsearch"
    hosts: list[str] = Field(
        default_factory=lambda: ["https://localhost:9200"], description="node URLs"
    )
    cloud_id: str | None = Field(default=None, description="Elastic Cloud deployment id")

    # --- credentials: one of api_key(/_file) or username + password(/_file) ----------------
    api_key: SecretStr | None = Field(default=None, description="base64 'id:key' or encoded key")
    api_key_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None

    # --- TLS ------------------------------------------------------------------------------
    ca_file: Path | None = Field(default=None, description="PEM bundle of the cluster's CA")
    ssl_assert_fingerprint: str | None = Field(
        default=None, description="SHA-256 of the server certificate (hex, colons allowed)"
    )
    verify_certs: bool = True

    # --- where documents go ---------------------------------------------------------------
    namespace: str = Field(default="default", description="data stream namespace")
    index: str | None = Field(default=None, description="classic index instead of data streams")

    # --- batching and flow ------------------------------------------------------------------
    bulk_max_docs: int = Field(default=5000, ge=1, description="documents per _bulk request")
    bulk_max_bytes: int = Field(default=10 * 10**6, ge=1024, description="bytes per request")
    max_in_flight: int = Field(default=2, ge=1, le=32, description="concurrent _bulk requests")
    request_timeout: float = Field(default=60.0, gt=0, description="seconds per request")
    backoff_initial: float = Field(default=0.5, gt=0, description="first retry delay, seconds")
    backoff_max: float = Field(default=30.0, gt=0, description="cap on the retry delay")
    dead_letter: Path | None = Field(
        default=None, description="JSONL file; default <data_dir>/dead_letter/<type>.jsonl"
    )

    # --- setup ------------------------------------------------------------------------------
    kibana_url: str | None = Field(
        default=None, description="Kibana / OpenSearch Dashboards URL for `shipper setup`"
    )
    kibana_space: str | None = None
    ilm: bool = Field(default=True, description="install and use a lifecycle policy")

    #: HTTP library under the client ("requests" lets tests use the `responses` mock)
    http_client: Literal["urllib3", "requests"] = "urllib3"

    @field_validator("bulk_max_bytes", mode="before")
    @classmethod
    def _bytes(cls, v: Any) -> int:
        return _size(v)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if not _NAMESPACE.match(v):
            raise ValueError("lowercase letters, digits and '_' only (it is part of a data stream)")
        return v

    @field_validator("index")
    @classmethod
    def _index(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "{now" in v or v.startswith("<"):
            raise ValueError(
                "server-side date math would put a re-sent event into a new index; use "
                "%{+yyyy.MM.dd} (from the event's @timestamp) instead"
            )
        if re.sub(r"%\{\+[^}]*\}", "", v) != re.sub(r"%\{\+[^}]*\}", "", v).lower():
            raise ValueError("index names must be lowercase")
        return v

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: Any) -> Any:
        kind = data.get("type", "elasticsearch") if isinstance(data, dict) else ""
        return drop_retired(data, f"{kind} output", {"retry_rounds": RETRY_ROUNDS})

    @field_validator("ssl_assert_fingerprint")
    @classmethod
    def _fingerprint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        hexed = v.replace(":", "").lower()
        if not re.fullmatch(r"[0-9a-f]{64}", hexed):
            raise ValueError("expected a SHA-256 fingerprint (64 hex digits)")
        return hexed

    @model_validator(mode="after")
    def _consistent(self) -> ElasticsearchOutput:
        secret_or_file(self, "api_key")
        secret_or_file(self, "password")
        has_key = self.api_key is not None or self.api_key_file is not None
        has_password = self.password is not None or self.password_file is not None
        if has_key and (self.username or has_password):
            raise ValueError("set either an API key or username/password, not both")
        if has_password and not self.username:
            raise ValueError("password given without username")
        if self.cloud_id and self.type == "opensearch":
            raise ValueError("cloud_id is an Elastic Cloud setting; not for type: opensearch")
        if not self.hosts and not self.cloud_id:
            raise ValueError("set hosts or cloud_id")
        return self

    # --- resolved at start ------------------------------------------------------------------

    def resolved_api_key(self) -> str | None:
        return resolved_secret(self, "api_key")

    def resolved_password(self) -> str | None:
        return resolved_secret(self, "password")

    def display_name(self) -> str:
        where = "cloud" if self.cloud_id else (self.hosts[0] if self.hosts else "?")
        return f"{self.type}:{where}"

    def dead_letter_path(self, data_dir: Path) -> Path:
        return self.dead_letter or Path(data_dir) / "dead_letter" / f"{self.type}.jsonl"


# --- the component ------------------------------------------------------------------------

Settings = ElasticsearchOutput


def build(settings: ElasticsearchOutput, data_dir: Path) -> BulkOutput:
    from shipper.outputs.elasticsearch.output import BulkOutput

    return BulkOutput(settings, Path(data_dir))


def check(settings: ElasticsearchOutput, data_dir: Path) -> str:
    """Product, version and whether every template is installed (``shipper check --outputs``)."""
    from shipper.outputs.elasticsearch.setup import status

    st = status(settings)
    if st.ok:
        return f"{st.product} {st.version}, all templates installed"
    if st.version:
        raise OutputFailed(f"{st.product} {st.version}: {st.message}")
    raise OutputFailed(st.message)


def setup(
    settings: ElasticsearchOutput, data_dir: Path, dry_run: bool = False, kibana: bool = True
) -> Iterator[str]:
    """``shipper setup``: templates, lifecycle policy and (with ``kibana``) Kibana objects and
    detection rules, one line a step (with ``dry_run``: what would be done, contacting nothing);
    raises ``OutputFailed`` at the end when a step failed."""
    from shipper.outputs.elasticsearch import setup as content

    report = content.install(settings, kibana=kibana, dry_run=dry_run)
    for step in report.steps:
        detail = f" ({step.detail})" if step.detail else ""
        yield f"{step.what}: {step.result}{detail}"
    if not report.ok:
        failed = sum(step.result == "failed" for step in report.steps)
        raise OutputFailed(f"{failed} setup step(s) failed")
