"""The YAML configuration, validated into typed settings with pydantic.

Every setting has a default that makes the quick start work: with no outputs configured, events
go to an NDJSON file. ``${VAR}`` and ``${VAR:-default}`` in any string value are replaced from
the environment after YAML parsing (so a secret can never inject YAML syntax). Errors name the
setting by its path in the file, e.g. ``outputs[0].path: Field required``.

Inputs and outputs are tagged unions on ``type``; a component adds its settings model here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shipper.errors import ConfigError
from shipper.units import parse_size

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- inputs -------------------------------------------------------------------------------


class RmsUsageInput(_Model):
    """Azure RMS usage logs (W3C) downloaded by Get-AadrmUserLog / Get-AadrmUsageLog."""

    #: formats tried, in order, on each new file of this input (names in shipper.sources.FORMATS)
    formats: ClassVar[tuple[str, ...]] = ("w3c_rms",)

    type: Literal["rms_usage"] = "rms_usage"
    paths: list[str] = Field(min_length=1, description="glob patterns of the download folders")
    exclude: list[str] = Field(default_factory=list, description="glob patterns to skip")

    def options(self) -> dict[str, object]:
        """Settings the decoder needs, passed to worker processes with each chunk."""
        return {}


class WindowsEventsInput(_Model):
    """RMS connector / ECMA2Host event exports: .evtx, event XML, CSV/TXT and JSON."""

    formats: ClassVar[tuple[str, ...]] = ("evtx", "event_xml", "event_json", "event_csv")

    type: Literal["windows_events"] = "windows_events"
    paths: list[str] = Field(min_length=1, description="glob patterns of the export folders")
    exclude: list[str] = Field(default_factory=list, description="glob patterns to skip")
    timezone: str = Field(
        default="UTC",
        description="IANA time zone of the exporting machine, for CSV/TXT local dates",
    )
    date_format: str = Field(
        default="%m/%d/%Y %I:%M:%S %p",
        description="strptime format of CSV/TXT dates (exporting machine's locale; en-US default)",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return v

    def options(self) -> dict[str, object]:
        """Settings the decoder needs, passed to worker processes with each chunk."""
        return {"timezone": self.timezone, "date_format": self.date_format}


InputConfig = Annotated[RmsUsageInput | WindowsEventsInput, Field(discriminator="type")]


# --- outputs ------------------------------------------------------------------------------


class NdjsonOutput(_Model):
    """One JSON event a line, fsynced before the checkpoint moves; rotated by size."""

    type: Literal["ndjson"] = "ndjson"
    path: str = "out/events.ndjson"
    max_bytes: int = Field(default=256 * 10**6, gt=0, description="rotate at this size")
    keep_files: int = Field(default=10, ge=1, description="rotated files to keep")

    @field_validator("max_bytes", mode="before")
    @classmethod
    def _size(cls, v: Any) -> int:
        return parse_size(v)


class StdoutOutput(_Model):
    """One JSON event a line on standard output (for piping into other tools)."""

    type: Literal["stdout"] = "stdout"


# Imported here, not at the top: the output package imports NdjsonOutput from this module.
from shipper.outputs.elasticsearch.config import ElasticsearchOutput  # noqa: E402

OutputConfig = Annotated[
    NdjsonOutput | StdoutOutput | ElasticsearchOutput, Field(discriminator="type")
]


# --- the whole file -----------------------------------------------------------------------


class PipelineSettings(_Model):
    workers: int | Literal["auto"] = Field(
        default="auto", description="decoder processes; auto = one per core, 1 = in-process"
    )
    batch_events: int = Field(default=10000, ge=1, description="events per delivered batch")
    poll_interval: float = Field(default=1.0, gt=0, le=60, description="follow mode, seconds")
    keep_original: bool = Field(default=False, description="add event.original")


class DedupeSettings(_Model):
    retention_days: float = Field(
        default=90, gt=0, description="forget an event id this long after it was shipped"
    )


class Config(_Model):
    data_dir: str = Field(default=".shipper-data", description="checkpoint store and quarantine")
    inputs: list[InputConfig] = Field(default_factory=list)
    outputs: list[OutputConfig] = Field(default_factory=lambda: [NdjsonOutput()])
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    dedupe: DedupeSettings = Field(default_factory=DedupeSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


def _interpolate(node: Any, where: str, env: dict[str, str]) -> Any:
    if isinstance(node, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {name} is not set")

        return _ENV.sub(repl, node)
    if isinstance(node, list):
        return [_interpolate(v, f"{where}[{i}]", env) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {
            k: _interpolate(v, f"{where}.{k}" if where else str(k), env) for k, v in node.items()
        }
    return node


def _loc(loc: tuple[int | str, ...], data: Any) -> str:
    """Render a pydantic error location as the path a user sees in the file."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue  # the union tag pydantic inserts, not a key in the file
        out += f".{part}" if out else part
        node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def parse_config(data: Any, env: dict[str, str] | None = None) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("(top level): expected a mapping of settings")
    data = _interpolate(data, "", dict(os.environ) if env is None else env)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        lines = [f"{_loc(err['loc'], data)}: {err['msg']}" for err in e.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return parse_config(data, env)
