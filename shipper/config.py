"""The YAML configuration, validated into typed settings with pydantic.

Every setting has a default that makes the quick start work: with no outputs configured, events
go to an NDJSON file. ``${VAR}`` and ``${VAR:-default}`` in any string value are replaced from
the environment after YAML parsing (so a secret can never inject YAML syntax). Errors name the
setting by its path in the file, e.g. ``outputs[0].path: Field required``.

Each ``inputs[]`` / ``outputs[]`` entry is validated by the settings model of the component its
``type`` names, found in ``shipper.registry`` (entry points): this module knows no component by
name, and imports only the components a configuration uses.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SerializeAsAny, ValidationError, field_validator

from shipper import redact, registry
from shipper.errors import ConfigError, ShipperError
from shipper.settings import Duration, Settings, Size, SourceSettings
from shipper.units import parse_size

__all__ = ["Config", "load_config", "parse_config", "parse_size"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


_Model = Settings


# --- inputs and outputs: each entry validated by its component's own settings model ----------

#: the list in the file -> the registry's kind of component
_LISTS = {"inputs": "sources", "outputs": "outputs"}
_WHAT = {"sources": "input", "outputs": "output"}


class _Invalid(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _component(kind: str, item: Any, where: str) -> Settings:
    """One ``inputs[]`` / ``outputs[]`` entry, validated by the model its ``type`` names."""
    if isinstance(item, Settings):
        return item
    installed = ", ".join(registry.names(kind)) or "none"
    if not isinstance(item, dict):
        raise _Invalid([f"{where}: expected a mapping with a type (installed: {installed})"])
    name = item.get("type")
    if name is None:
        raise _Invalid([f"{where}.type: Field required (installed: {installed})"])
    if not isinstance(name, str):
        raise _Invalid([f"{where}.type: expected the name of an {_WHAT[kind]} type"])
    try:
        model = registry.settings_model(kind, name)
    except ShipperError as e:
        raise _Invalid([f"{where}.type: {e}"]) from None
    try:
        settings: Settings = model.model_validate(item)
    except ValidationError as e:
        raise _Invalid(
            [f"{where}{_sub(_loc(err['loc'], item))}: {err['msg']}" for err in e.errors()]
        ) from None
    if kind == "sources":
        unknown = _unknown_readers(settings, where)
        if unknown:
            raise _Invalid(unknown)
    return settings


def _unknown_readers(settings: Any, where: str) -> list[str]:
    """The input's formats and normaliser that no installed distribution registers, looked up
    in the registry without importing them (validating a configuration imports only the
    sources and outputs it names; ``shipper check`` imports the rest, see
    ``shipper.check.reader_problems``). Caught here, a typo is a configuration error listing
    what is installed, not a refusal of every file at run time."""
    lines = []
    for setting, kind, name in settings.readers():
        try:
            registry.entry(kind, name)
        except registry.UnknownComponent as e:
            lines.append(f"{where}.{setting}: {e}")
    return lines


def _sub(loc: str) -> str:
    if loc == "(top level)":
        return ""
    return loc if loc.startswith("[") else f".{loc}"


def _components(kind: str, items: Any, where: str) -> Any:
    if not isinstance(items, list):
        return items  # pydantic reports the wrong shape
    try:
        return [_component(kind, item, f"{where}[{i}]") for i, item in enumerate(items)]
    except _Invalid as e:
        raise ValueError(str(e)) from None


def _default_outputs() -> list[Settings]:
    """The quick start's output (an NDJSON file), for a configuration without ``outputs:``:
    the one component this module names, because a default has to name something."""
    return [registry.settings_model("outputs", "ndjson")()]


# --- the whole file -----------------------------------------------------------------------


class PipelineSettings(_Model):
    workers: int | Literal["auto"] = Field(
        default="auto", description="decoder processes; auto = one per core, 1 = in-process"
    )
    batch_events: int = Field(default=10000, ge=1, description="events per delivered batch")
    poll_interval: float = Field(default=1.0, gt=0, le=60, description="follow mode, seconds")
    keep_original: bool = Field(default=False, description="add event.original")
    max_record_bytes: Size = Field(
        default=16 * 1024 * 1024,
        ge=64 * 1024,
        description="a bigger record is quarantined (its size and first 64 KiB), not read",
    )
    once_retry_seconds: float = Field(
        default=60.0,
        gt=0,
        description="--once: give up on an output still unavailable after this long",
    )
    shutdown_timeout: Duration = Field(
        default=10.0,
        gt=0,
        description="after SIGINT/SIGTERM, exit at the latest this long after the request,"
        " committed or not (what is not committed is read again at the next run)",
    )
    heartbeat_interval: Duration = Field(
        default=60.0,
        gt=0,
        description="follow mode: log events shipped, backlog and lag this often",
    )


class DedupeSettings(_Model):
    retention_days: float = Field(
        default=90, gt=0, description="forget an event id this long after it was shipped"
    )


class MetricsSettings(_Model):
    """The Prometheus endpoint (``shipper.metrics``): off unless ``listen`` is set."""

    listen: str | None = Field(
        default=None,
        description='"host:port" (or ":port" / "port": on 127.0.0.1) of the Prometheus endpoint',
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is None:
            return None
        host, port = _host_port(v)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to listen on, or None when off."""
        return None if self.listen is None else _host_port(self.listen)


def _host_port(text: str) -> tuple[str, int]:
    """ "127.0.0.1:9108", "[::1]:9108", ":9108" or "9108" (the loopback by default: metrics
    say what is shipped and from where, which is nobody else's business)."""
    text = str(text).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'expected "host:port", e.g. "127.0.0.1:9108", not {text!r}')
    return host, int(port)


class Config(_Model):
    data_dir: str = Field(default=".shipper-data", description="checkpoint store and quarantine")
    #: each validated by its source's ``Settings`` (see ``shipper.registry``)
    inputs: list[SerializeAsAny[SourceSettings]] = Field(default_factory=list)
    #: each validated by its output's ``Settings``
    outputs: list[SerializeAsAny[Settings]] = Field(default_factory=_default_outputs)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    dedupe: DedupeSettings = Field(default_factory=DedupeSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs(cls, v: Any) -> Any:
        return _components("sources", v, "inputs")

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, v: Any) -> Any:
        return _components("outputs", v, "outputs")

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
    redact.remember(data)  # before anything can echo them
    # inputs and outputs first, each by its own model, so that errors keep their path
    lines: list[str] = []
    for key, kind in _LISTS.items():
        items = data.get(key)
        if isinstance(items, list):
            built = []
            for i, item in enumerate(items):
                try:
                    built.append(_component(kind, item, f"{key}[{i}]"))
                except _Invalid as e:
                    lines += e.lines
            data = {**data, key: built}
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        lines += [f"{_loc(err['loc'], data)}: {err['msg']}" for err in e.errors()]
    if lines:
        raise ConfigError(redact.mask("\n".join(lines)))
    return cfg


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    try:
        with open(path, encoding="utf-8-sig") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {redact.mask(str(e))}") from None
    return parse_config(data, env)
