"""What the performance-counter readers share: counter paths, the PDH CSV header, local time.

**Counter paths** are ``\\\\HOST\\Object(Instance)\\Counter``; the instance is optional
(single-instance objects), may hold a parent (``Parent/Instance``) and a ``#n`` index, and may
itself hold parentheses, so it is found by balancing from the last ``)`` of the object part.

**Time.** PDH CSV (typeperf, relog, Export-Counter) writes wall-clock times of the collecting
machine, ``MM/DD/YYYY hh:mm:ss.fff`` whatever the locale, and says in its first header cell
``(PDH-CSV 4.0) (<zone>)(<bias>)`` which zone: ``<zone>`` is the zone's *standard* name as
Windows reports it (``GMT Standard Time`` in summer too; on an English system the zone's key
name, bar ``Coordinated Universal Time``; translated on others), and ``<bias>`` is
the bias in effect when the log was started, in minutes, UTC = local + bias: daylight saving
included (a log started in British summer time says ``(GMT Standard Time)(-60)``). The header
is written once; the timestamps that follow keep the wall clock across a DST change, so a log
running through one has an hour missing in spring and an hour repeated in autumn while the
header still gives the first bias. Reading every row with that one bias would put every sample
after a change an hour off, and collapse the repeated autumn hour onto the first one (same
times, same event ids: half of it dropped as duplicates). So:

1. the zone name is mapped to its IANA zone (CLDR's table, as ``tzlocal`` ships it); when that
   zone's offset at the first sample equals the header's bias, every row is read in the zone,
   so DST changes inside the file are followed. In the repeated autumn hour a time is read in
   the first pass (``fold=0``) unless that would go back before the previous row, which is
   how the second pass shows itself (the previous row's time travels in the position state).
   A log started *in* the second pass has the bias after the change (``(0)`` in London) and
   a first time the zone has twice: the zone is matched against the bias in either pass, and
   the first row is read in the pass that matched;
2. when the name is unknown (a translated one) the input's ``timezone`` takes its place, if
   its offset at the first sample agrees with the bias; when nothing agrees with the bias (a
   machine with "adjust for daylight saving time" switched off keeps its standard bias all
   year), the bias is used as a fixed offset for the whole file;
3. a file whose header has no zone (hand-made, older tools) is read in the input's
   ``timezone`` setting (UTC by default), again with DST rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shipper.errors import RecordRejected

#: ``(PDH-CSV 4.0) (W. Europe Standard Time)(-60)``; the zone part may be missing
_HEADER = re.compile(
    r"^\s*\(PDH-(?P<kind>CSV|TSV)\s+(?P<version>[\d.]+)\)"
    r"(?:\s*\((?P<zone>[^()]*)\)\s*\((?P<bias>[+-]?\d+)\))?\s*$",
    re.IGNORECASE,
)
_STAMP = re.compile(
    r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s+(\d{1,2}):(\d\d):(\d\d)(?:\.(\d{1,7}))?\s*$"
)
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Header:
    delimiter: str
    zone: str | None
    bias: int | None


def parse_header(cell: str) -> Header | None:
    """The first header cell of a PDH CSV/TSV file, or None if it is not one."""
    m = _HEADER.match(cell.strip().strip('"'))
    if m is None:
        return None
    bias = m.group("bias")
    return Header(
        "\t" if m.group("kind").upper() == "TSV" else ",",
        (m.group("zone") or "").strip() or None,
        int(bias) if bias is not None else None,
    )


@dataclass(frozen=True, slots=True)
class CounterPath:
    host: str | None
    object: str
    instance: str | None
    counter: str


def parse_path(path: str) -> CounterPath | None:
    """``\\\\HOST\\Object(Instance)\\Counter`` (host and instance optional), or None."""
    text = path.strip().strip('"')
    host: str | None = None
    if text.startswith("\\\\"):
        host, sep, text = text[2:].partition("\\")
        if not sep:
            return None
    elif text.startswith("\\"):
        text = text[1:]
    else:
        return None
    part, sep, counter = text.rpartition("\\")
    if not sep or not part or not counter:
        return None
    instance: str | None = None
    if part.endswith(")"):
        depth = 0
        for i in range(len(part) - 1, -1, -1):
            c = part[i]
            if c == ")":
                depth += 1
            elif c == "(":
                depth -= 1
                if depth == 0:
                    instance = part[i + 1 : -1]
                    part = part[:i]
                    break
    if not part:
        return None
    return CounterPath(host or None, part, instance, counter)


def parse_stamp(value: str) -> datetime:
    """A PDH CSV timestamp (local wall clock) as a naive datetime; ``RecordRejected`` if not."""
    m = _STAMP.match(value)
    if m is None:
        raise RecordRejected(f"time {value.strip()!r} is not a PDH time (MM/DD/YYYY hh:mm:ss.fff)")
    mo, d, y, hh, mi, ss, frac = m.groups()
    try:
        return datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss),
                        int(((frac or "") + "000000")[:6]))  # fmt: skip
    except ValueError as e:
        raise RecordRejected(f"time {value.strip()!r}: {e}") from None


#: English standard names that are not the zone's key name
_STANDARD_NAMES = {"Coordinated Universal Time": "UTC"}


@cache
def windows_zone(name: str) -> str | None:
    """The IANA zone of a Windows time zone's (English) standard name, which is its key name
    (``W. Europe Standard Time``) but for UTC's."""
    from tzlocal.windows_tz import win_tz

    found = win_tz.get(name) or _STANDARD_NAMES.get(name)
    if found is None:  # case and spacing as typed by hand
        wanted = " ".join(name.split()).casefold()
        found = next((v for k, v in win_tz.items() if k.casefold() == wanted), None)
    return found


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def clock_for(header: Header | None, first: datetime | None, fallback: str) -> str:
    """How a file's local times become UTC (see the module docstring): ``zone:<IANA>`` or
    ``fixed:<minutes east of UTC>``. ``first`` is the file's first sample time, ``fallback``
    the input's ``timezone``: the zone when the header names none, and, when it names one
    that is not known here (translated), the zone if its offset agrees with the bias."""
    if header is None or header.bias is None:
        return f"zone:{fallback or 'UTC'}"
    east = -header.bias
    iana = windows_zone(header.zone) if header.zone else None
    for candidate in (iana, fallback):
        if candidate is None:
            continue
        try:
            zone = _zone(candidate)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        if first is None:
            return f"zone:{candidate}"
        aware = first.replace(tzinfo=zone)
        if aware.utcoffset() == timedelta(minutes=east):
            return f"zone:{candidate}"
        # a log started in the second pass of the autumn hour: the bias is the offset after
        # the change, the wall clock the same as before it (see Clock: its first row is read
        # in that pass too)
        if aware.replace(fold=1).utcoffset() == timedelta(minutes=east):
            return f"zone:{candidate}{_SECOND_PASS}"
    return f"fixed:{east}"


#: appended to a ``zone:`` clock whose first sample is in the second pass of a repeated hour
_SECOND_PASS = ";fold=1"


def zone_name(spec: str) -> str | None:
    """The IANA zone of a ``zone:`` clock spec (None for a fixed offset)."""
    kind, _, arg = spec.partition(":")
    return arg.split(";", 1)[0] if kind == "zone" else None


class Clock:
    """Local times of one file -> UTC, in row order (the previous row decides the autumn
    hour's pass). ``prev`` is the previous row's UTC time, as seconds since the epoch."""

    __slots__ = ("zone", "fixed", "prev", "second_pass", "_cache_key", "_cache_val")

    def __init__(self, spec: str, prev: float | None = None) -> None:
        kind, _, arg = spec.partition(":")
        self.zone: ZoneInfo | None = None
        self.fixed: timedelta | None = None
        #: with no previous row, a repeated hour's time is in its second pass (the header's
        #: bias said so of the file's first sample)
        self.second_pass = arg.endswith(_SECOND_PASS)
        if kind == "zone":
            self.zone = _zone(arg.removesuffix(_SECOND_PASS))
        else:
            self.fixed = timedelta(minutes=int(arg))
        self.prev = prev
        self._cache_key: tuple[int, int, int, int] | None = None
        self._cache_val = timedelta(0)

    def utc(self, local: datetime) -> float:
        """Seconds since the epoch (UTC) of a local wall-clock time."""
        if self.fixed is not None:
            off = self.fixed
        else:
            off = self._offset(local)
        t = (local - _EPOCH - off).total_seconds()
        self.prev = t
        return t

    def _offset(self, local: datetime) -> timedelta:
        zone = self.zone
        assert zone is not None
        # offsets change on the hour or half hour at most: one lookup per hour of samples,
        # unless the hour is ambiguous
        key = (local.year, local.month, local.day, local.hour)
        if key == self._cache_key:
            return self._cache_val
        aware = local.replace(tzinfo=zone)
        off0 = aware.utcoffset() or timedelta(0)
        off1 = aware.replace(fold=1).utcoffset() or timedelta(0)
        if off0 == off1:
            if all(
                (t.utcoffset(), t.replace(fold=1).utcoffset()) == (off0, off0)
                for t in (
                    datetime(*key, tzinfo=zone),
                    datetime(*key, 59, 59, 999999, tzinfo=zone),
                )
            ):
                self._cache_key, self._cache_val = key, off0
            return off0
        # the repeated hour: the first pass unless that goes back in time (or, for the first
        # row, unless the header's bias said the log started in the second pass)
        if self.prev is None:
            return off1 if self.second_pass else off0
        t0 = (local - _EPOCH - off0).total_seconds()
        if t0 < self.prev:
            return off1
        return off0


def iso(seconds: float) -> str:
    """Seconds since the epoch as ISO 8601 UTC with milliseconds (PDH's precision)."""
    ms = round(seconds * 1000)
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@dataclass(slots=True)
class Group:
    """The columns of one counter instance: one record per row."""

    host: str | None
    object: str
    instance: str | None
    columns: list[tuple[int, str]]  # (column index, counter name)


def group_columns(paths: Iterable[tuple[int, CounterPath]]) -> list[Group]:
    """Columns grouped by (host, object, instance), in the order they first appear."""
    groups: dict[tuple[str, str, str | None], Group] = {}
    for i, p in paths:
        key = ((p.host or "").casefold(), p.object.casefold(), p.instance)
        g = groups.get(key)
        if g is None:
            g = groups[key] = Group(p.host, p.object, p.instance, [])
        g.columns.append((i, p.counter))
    return list(groups.values())


def number(cell: str) -> float | None:
    """A sample value: None for a missing sample (blank, ``" "``); ``ValueError`` if garbage.
    Non-finite values (``1.#INF``, NaN) are missing samples too: JSON has no place for them."""
    s = cell.strip()
    if not s:
        return None
    try:
        v = float(s)
    except ValueError:
        if s.count(",") == 1 and "." not in s:  # a decimal comma
            v = float(s.replace(",", "."))
        elif s.startswith(("1.#", "-1.#")):
            return None
        else:
            raise
    if v != v or v in (float("inf"), float("-inf")):
        return None
    return v


def utc_iso(dt: datetime) -> str:
    """An aware datetime as ISO 8601 UTC (``...Z``): milliseconds, as PDH CSV has them, or
    microseconds when there are any (PowerShell 7 keeps 100 ns)."""
    dt = dt.astimezone(timezone.utc)
    us = dt.microsecond
    frac = f".{us // 1000:03d}" if us % 1000 == 0 else f".{us:06d}"
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
