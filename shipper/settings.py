"""The strict base of every component's settings (sources, outputs, third-party plugins).

Each component module defines ``Settings``, a subclass of ``Settings`` here with
``type: Literal["<name>"] = "<name>"``; ``shipper.config`` looks ``type`` up in the registry and
validates the rest of the entry with that model. The base forbids unknown keys, so that a typo
(``max_byte:``) is an error naming the setting instead of a silently ignored line.

``Size`` is an ``int`` field that also accepts ``"10MB"`` / ``"1GiB"`` (``shipper.units``), and
``Duration`` a ``float`` of seconds that also accepts ``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``,
for every model to spell sizes and durations the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from shipper.errors import ConfigError
from shipper.private import parse_mode
from shipper.units import parse_size

#: bytes; "100MB", "1GiB" or a plain number in the YAML
Size = Annotated[int, BeforeValidator(parse_size)]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_LABEL = re.compile(r"^[A-Za-z0-9_]+$")


def parse_duration(value: Any) -> Any:
    """``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"``, ``"1d"`` or a number -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"not a duration: {value!r} (use e.g. 500ms, 30s, 5m, 1h or seconds)")
    return float(m.group(1)) * _SECONDS[(m.group(2) or "s").lower()]


#: seconds; "500ms", "30s", "5m", "1h" or a plain number in the YAML
Duration = Annotated[float, BeforeValidator(parse_duration)]

#: permission bits of files an output creates: "0640", or 0640 unquoted (YAML reads it as
#: octal); owner-only (0600) is every output's default (see ``shipper.private``)
FileMode = Annotated[int, BeforeValidator(parse_mode)]


def check_zone(name: str) -> str:
    """``name`` when ``zoneinfo`` knows it (an IANA name; Windows needs the tzdata package)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None
    return name


#: an IANA time zone name, checked when the configuration is loaded
TimeZone = Annotated[str, AfterValidator(check_zone)]


def secret_or_file(model: BaseModel, name: str) -> None:
    """Refuse a secret given both inline (``name``) and as a file (``name_file``)."""
    if getattr(model, name) is not None and getattr(model, f"{name}_file") is not None:
        raise ValueError(f"set {name} or {name}_file, not both")


def resolved_secret(model: BaseModel, name: str) -> str | None:
    """The secret ``name``: read from ``name_file`` when that is set (stripped; a missing or
    empty file is a configuration error naming the setting), else the inline value."""
    path = getattr(model, f"{name}_file")
    if path is None:
        value = getattr(model, name)
        return value.get_secret_value() if value else None
    setting = f"{name}_file"
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{setting}: cannot read {path}: {e.strerror}") from None
    if not text:
        raise ConfigError(f"{setting}: {path} is empty")
    return text


class Settings(BaseModel):
    """Strict settings: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    def display_name(self) -> str:
        """The name a component goes by (an output's ``name``, in messages, metrics and
        ``shipper status``): its type, and the file it writes where it has one. Outputs that
        reach hosts say which, in their own ``display_name``."""
        path = getattr(self, "path", None)
        kind = getattr(self, "type", type(self).__name__)
        return f"{kind}:{path}" if path is not None else str(kind)


class SourceSettings(Settings):
    """What every input has: where its files are, and which formats may read them.

    A source module subclasses this as its ``Settings``, sets ``default_formats`` (format
    names registered under ``shipper.formats``, tried in order on each new file unless the
    configuration lists its own in ``formats:``) and ``normaliser`` (a name registered under
    ``shipper.normalisers``: what turns the formats' records into events) and, when its
    decoders need more settings, extends ``options()``. The names are checked against the
    registry when the configuration is loaded (``shipper.config``).
    """

    #: format names tried, in order, on each new file of this input, unless ``formats:`` says
    default_formats: ClassVar[tuple[str, ...]] = ()
    #: the normaliser of this input's records
    normaliser: ClassVar[str] = ""

    type: str
    paths: list[str] = Field(min_length=1, description="glob patterns of the folders to read")
    formats: list[str] = Field(
        default_factory=list,
        min_length=1,
        validate_default=True,
        description="format names tried, in order, on each new file (default: the input's"
        " own); a format a plugin registers can be named here",
    )
    exclude: list[str] = Field(default_factory=list, description="glob patterns to skip")
    tags: list[str] = Field(
        default_factory=list,
        description="added to every event's ECS `tags` (say, the tenant or the site)",
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="added to every event as ECS `labels.<name>` (e.g. {tenant: contoso})",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_formats(cls, data: Any) -> Any:
        """The input's own formats when the configuration names none (a default computed per
        class: a ``Field`` default cannot see the subclass). A source that still declares
        ``formats`` as a ``ClassVar`` (written before this setting) shadows the field: its
        fixed list is used, and ``formats:`` is refused for it as an unknown key."""
        if isinstance(data, dict) and "formats" not in data and "formats" in cls.model_fields:
            return {**data, "formats": list(cls.default_formats)}
        return data

    def readers(self) -> Iterator[tuple[str, str, str]]:
        """``(setting, registry kind, name)`` of each format and of the normaliser this input
        uses: what the configuration looks up and ``shipper check`` imports."""
        for name in self.formats:
            yield "formats", "formats", name
        yield "normaliser", "normalisers", self.normaliser

    @field_validator("fields")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not _LABEL.match(name):
                raise ValueError(
                    f"{name!r} cannot be an ECS label name (letters, digits and _ only, as"
                    " labels.<name> must not nest)"
                )
        return v

    def options(self) -> dict[str, object]:
        """Settings the decoder needs, passed to worker processes with each chunk (plain data:
        the decoder processes do not import pydantic). A subclass adds to these."""
        options: dict[str, object] = {"normaliser": self.normaliser}
        if self.tags:
            options["tags"] = list(self.tags)
        if self.fields:
            options["labels"] = dict(self.fields)
        return options


__all__ = ["Duration", "FileMode", "Settings", "Size", "SourceSettings", "parse_duration"]
