"""Enrichment the detection rules need: GeoIP for ``source.ip``, and working hours.

Both are off unless configured (``enrich:`` of an ``rms_usage`` input), because both cost:

- **GeoIP** adds ``source.geo.*`` and ``source.as.*`` (ECS) from MaxMind-format databases the
  user points to (GeoIP2/GeoLite2 City or Country, and ASN; none is bundled, their licences
  forbid it). Read with ``maxminddb``, MaxMind's own reader; which record paths become which
  ECS fields is ``mappings/rms/geoip.yaml``. Addresses that are not globally routable
  (private, loopback, link-local, ...) are not looked up: no database knows them.
- **Working hours** add ``azure_rms.after_hours`` (boolean; the after-hours detection rule
  reads exactly this field): whether the event happened outside the working days and hours
  of the user's domain, in that domain's time zone (``domains``, matched on ``user.domain``
  and its parent domains), else of ``default`` (the tenant's). Time zones are IANA names, so
  daylight saving time is handled by ``zoneinfo``. Working time is ``start`` inclusive to
  ``end`` exclusive, to the minute.

No I/O per record: the databases are opened once per process (memory-mapped) and the
normaliser caches what this module answers, per distinct address and per (working hours,
minute). The settings model ``EnrichSettings`` is made on first use (``from ... import
EnrichSettings`` works as usual): decoder processes import this module for ``Enricher`` and
must not import pydantic.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shipper.errors import ConfigError
from shipper.mappings import load_yaml

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["EnrichSettings", "Enricher", "WorkingHours"]  # noqa: F822 (EnrichSettings: __getattr__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {
    **{d: i for i, d in enumerate(DAYS)},
    **{
        name: i
        for i, name in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
}
DEFAULT_HOURS: dict[str, Any] = {
    "timezone": "UTC",
    "days": list(DAYS[:5]),
    "start": "08:00",
    "end": "18:00",
}


def _minutes(text: str, what: str) -> int:
    """``"08:30"`` -> 510; ``"24:00"`` is the end of the day."""
    hh, colon, mm = str(text).strip().partition(":")
    if colon and hh.isdigit() and mm.isdigit() and len(mm) == 2 and 1 <= len(hh) <= 2:
        minutes = int(hh) * 60 + int(mm)
        if int(mm) < 60 and minutes <= 24 * 60:
            return minutes
    raise ValueError(f"{what}: {text!r} is not a time of day HH:MM (00:00 to 24:00)")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: unknown time zone {name!r} (use an IANA name)") from None


class WorkingHours:
    """One calendar: working days and hours in a time zone."""

    __slots__ = ("zone", "days", "start", "end")

    def __init__(self, spec: dict[str, Any]) -> None:
        spec = {**DEFAULT_HOURS, **spec}
        self.zone = _zone(spec["timezone"])
        days = []
        for day in spec["days"]:
            index = _DAY_NAMES.get(str(day).strip().lower())
            if index is None:
                raise ValueError(f"days: {day!r} is not a day ({', '.join(DAYS)})")
            days.append(index)
        self.days = frozenset(days)
        self.start = _minutes(spec["start"], "start")
        self.end = _minutes(spec["end"], "end")
        if self.end <= self.start:
            raise ValueError(f"end {spec['end']} is not after start {spec['start']}")

    def after_hours(self, when: datetime) -> bool:
        local = when.astimezone(self.zone)
        if local.weekday() not in self.days:
            return True
        minute = local.hour * 60 + local.minute
        return not self.start <= minute < self.end


def _open_database(path: str, setting: str) -> Any:
    import maxminddb

    try:
        return maxminddb.open_database(path)
    except FileNotFoundError:
        raise ConfigError(f"enrich.{setting}: {path}: no such file") from None
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as e:
        raise ConfigError(
            f"enrich.{setting}: {path}: not a readable MaxMind database ({e})"
        ) from None


@cache
def _geoip_map() -> tuple[tuple[str, Any], ...]:
    """(ECS field below source., how to get it) from ``mappings/rms/geoip.yaml``."""
    compiled: list[tuple[str, Any]] = []
    for field, spec in load_yaml("rms/geoip.yaml")["fields"].items():
        if isinstance(spec, str):
            compiled.append((field, ("path", _path(spec))))
        elif "join" in spec:
            compiled.append((field, ("join", spec["join"], tuple(_path(p) for p in spec["of"]))))
        else:
            compiled.append((field, ("point", _path(spec["lat"]), _path(spec["lon"]))))
    return tuple(compiled)


def _path(dotted: str) -> tuple[str | int, ...]:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split("."))


def _dig(record: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(record, list) or step >= len(record):
                return None
        elif not isinstance(record, dict):
            return None
        else:
            record = record.get(step)
            continue
        record = record[step]
    return record


def _record_fields(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, how in _geoip_map():
        if how[0] == "path":
            value = _dig(record, how[1])
            if value is not None:
                out[field] = value
        elif how[0] == "join":
            parts = [_dig(record, p) for p in how[2]]
            if all(p is not None and p != "" for p in parts):
                out[field] = how[1].join(str(p) for p in parts)
        else:
            lat, lon = _dig(record, how[1]), _dig(record, how[2])
            if lat is not None and lon is not None:
                out[field] = {"lat": lat, "lon": lon}
    return out


class Enricher:
    """What the normaliser asks, built from ``EnrichSettings.options()`` (plain data)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._readers = [
            _open_database(str(options[setting]), setting)
            for setting in ("geoip_database", "asn_database")
            if options.get(setting)
        ]
        #: whether source.geo / source.as are looked up
        self.geo = bool(self._readers)
        hours = options.get("working_hours")
        try:
            self._calendars = [WorkingHours(hours.get("default") or {})] if hours else []
            self._domains = {
                name.strip().lower(): WorkingHours(spec)
                for name, spec in ((hours or {}).get("domains") or {}).items()
            }
        except ValueError as e:
            raise ConfigError(f"enrich.working_hours: {e}") from None
        #: whether azure_rms.after_hours is set
        self.hours = bool(self._calendars)
        self._calendar_index: dict[int, int] = {id(self._calendars[0]): 0} if self.hours else {}

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> Enricher | None:
        """The enricher, or None when nothing is configured (the normaliser then skips it)."""
        if not options or not (
            options.get("geoip_database")
            or options.get("asn_database")
            or options.get("working_hours")
        ):
            return None
        return cls(options)

    def source_fields(self, address: str) -> dict[str, Any]:
        """ECS fields below ``source.`` for an address (dotted names); {} when none is known."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return {}
        if not ip.is_global:
            return {}
        found: dict[str, Any] = {}
        for reader in self._readers:
            try:
                record = reader.get(ip)
            except ValueError:  # an IPv6 address in an IPv4-only database
                continue
            if isinstance(record, dict):
                found.update(_record_fields(record))
        return found

    def calendar(self, domain: str | None) -> int:
        """The working hours of a user domain (or of its parent domains), else the default,
        as a small number for the normaliser's caches."""
        hours = self._calendars[0]
        if domain:
            name = domain.strip().lower()
            while name:
                found = self._domains.get(name)
                if found is not None:
                    hours = found
                    break
                name = name.partition(".")[2]
        index = self._calendar_index.get(id(hours))
        if index is None:
            index = self._calendar_index[id(hours)] = len(self._calendars)
            self._calendars.append(hours)
        return index

    def after_hours(self, calendar: int | None, timestamp: str) -> bool:
        """Whether ``timestamp`` (ISO 8601 UTC, ``2024-03-04T21:59:28...``) is outside the
        calendar's working hours; minutes count, seconds do not."""
        when = datetime(
            int(timestamp[0:4]),
            int(timestamp[5:7]),
            int(timestamp[8:10]),
            int(timestamp[11:13]),
            int(timestamp[14:16]),
            tzinfo=timezone.utc,
        )
        return self._calendars[calendar or 0].after_hours(when)


# --- the settings model, made on first use (pydantic stays out of decoder processes) ---------


@cache
def _settings_model() -> type[BaseModel]:
    from typing import Literal

    from pydantic import Field, field_validator, model_validator

    from shipper.settings import Settings

    Day = Literal[
        "mon", "tue", "wed", "thu", "fri", "sat", "sun",
        "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    ]  # fmt: skip

    class Hours(Settings):
        """Working days and hours in one time zone."""

        timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin")
        days: list[Day] = Field(default_factory=lambda: list(DAYS[:5]), min_length=1)
        start: str = Field(default="08:00", description="start of the working day, HH:MM")
        end: str = Field(default="18:00", description="end of the working day, HH:MM")

        @model_validator(mode="after")
        def _check(self) -> Hours:
            WorkingHours(self.model_dump())  # raises ValueError naming what is wrong
            return self

    class WorkingHoursSettings(Settings):
        """The tenant's working hours, and those of user domains that differ."""

        default: Hours = Field(default_factory=Hours)
        domains: dict[str, Hours] = Field(
            default_factory=dict, description="user domain (and its subdomains) -> hours"
        )

    class EnrichSettings(Settings):
        """Enrichment of RMS usage events; everything off by default."""

        geoip_database: Path | None = Field(
            default=None, description="MaxMind City or Country database (.mmdb): source.geo.*"
        )
        asn_database: Path | None = Field(
            default=None, description="MaxMind ASN database (.mmdb): source.as.*"
        )
        working_hours: WorkingHoursSettings | None = Field(
            default=None, description="working hours: sets azure_rms.after_hours"
        )

        @field_validator("geoip_database", "asn_database")
        @classmethod
        def _readable(cls, value: Path | None, info: Any) -> Path | None:
            if value is not None:
                try:
                    _open_database(str(value), info.field_name).close()
                except ConfigError as e:
                    raise ValueError(str(e).partition(": ")[2]) from None
            return value

        @property
        def enabled(self) -> bool:
            return bool(self.geoip_database or self.asn_database or self.working_hours)

        def options(self) -> dict[str, Any]:
            """Plain data for the decoders ({} when nothing is configured)."""
            if not self.enabled:
                return {}
            return self.model_dump(mode="json", exclude_none=True)

    EnrichSettings.__module__ = __name__
    return EnrichSettings


def __getattr__(name: str) -> Any:
    if name == "EnrichSettings":
        return _settings_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
