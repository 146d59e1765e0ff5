"""PowerShell ``Get-Counter`` samples exported with ``ConvertTo-Json``.

``Get-Counter`` returns ``PerformanceCounterSampleSet`` objects: ``Timestamp``,
``Timestamp100NSec``, ``Readings`` (text) and ``CounterSamples``, each sample a
``PerformanceCounterSample`` with ``Path`` (``\\\\host\\object(instance)\\counter``, in lower
case), ``InstanceName``, ``CookedValue`` (the value to ship), ``RawValue``, ``SecondValue``,
``CounterType``, ``Status`` (a PDH status; 0 and 1 mean valid data), ``Timestamp`` and
``Timestamp100NSec``. Exports come as one sample set (``Get-Counter | ConvertTo-Json``), an
array of them (``-MaxSamples n``, which needs ``-Depth 3`` or more: at the default depth the
samples become their type name, and such a record is quarantined saying so), or an array of
bare samples (``(Get-Counter).CounterSamples | ConvertTo-Json``).

Times: Windows PowerShell 5 writes ``/Date(ms since epoch)/`` (UTC), PowerShell 7 ISO 8601
with the local offset; both are exact. A time without an offset is local and read in the
input's ``timezone``; so is ``Timestamp100NSec``, which PDH fills with the local time (used
only when there is no ``Timestamp``). Records are found by the event JSON reader's scanner;
a sample set's samples are grouped into one record per time and counter instance.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from shipper.errors import RecordRejected
from shipper.sources.base import Chunk, Decoded
from shipper.sources.eventjson import JsonScanner
from shipper.sources.limits import HEAD
from shipper.sources.pdh import CounterPath, parse_path, utc_iso
from shipper.sources.text import (
    Records,
    TextChunk,
    TextFormat,
    quarantine,
)

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_ISO = re.compile(
    r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?\s*(Z|[+-]\d\d:?\d\d)?$", re.I
)
_SNIFF = re.compile(
    r'^\s*\[?\s*\{\s*"(?:Timestamp|Timestamp100NSec|CounterSamples|Readings|Path|InstanceName)"'
)
_FILETIME_EPOCH = datetime(1601, 1, 1)
#: the normaliser when the chunk's input names none (a format used on its own)
NORMALISER = "windows_perf"
_VALID = (0, 1)  # PDH_CSTATUS_VALID_DATA, PDH_CSTATUS_NEW_DATA


@lru_cache(maxsize=4096)
def _path(path: Any) -> CounterPath | None:
    return parse_path(path) if isinstance(path, str) else None


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def sample_time(value: Any, hundred_ns: Any, zone: str) -> str | None:
    """A sample's time as ISO UTC, from ``Timestamp`` or else ``Timestamp100NSec``."""
    if isinstance(value, dict):  # a DateTime with PowerShell's extended members
        value = value.get("value") or value.get("DateTime")
    if isinstance(value, str) and value:
        m = _MS_DATE.match(value.replace("\\/", "/"))
        if m:
            ms = int(m.group(1))
            dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
            return utc_iso(dt)
        m = _ISO.match(value.strip())
        if m is None:
            raise RecordRejected(f"Timestamp {value!r} is not a date")
        day, clock, frac, off = m.groups()
        try:
            when = datetime.fromisoformat(f"{day}T{clock}")
        except ValueError:
            raise RecordRejected(f"Timestamp {value!r} is not a date") from None
        micros = int(((frac or "") + "000000")[:6])
        when = when.replace(microsecond=micros)
        if off is None:
            return utc_iso(when.replace(tzinfo=_zone(zone)))
        if off.upper() == "Z":
            return utc_iso(when.replace(tzinfo=timezone.utc))
        sign = -1 if off[0] == "-" else 1
        delta = timedelta(hours=int(off[1:3]), minutes=int(off[-2:]))
        return utc_iso(when.replace(tzinfo=timezone(sign * delta)))
    if isinstance(hundred_ns, int) and hundred_ns > 0:
        local = _FILETIME_EPOCH + timedelta(microseconds=hundred_ns // 10)
        return utc_iso(local.replace(tzinfo=_zone(zone)))
    return None


def samples(obj: dict[str, Any]) -> tuple[list[Any], Any, Any]:
    """The samples of one top-level record, and the record's own time (a sample set's)."""
    if "CounterSamples" in obj:
        items = obj["CounterSamples"]
        if isinstance(items, dict):
            items = [items]
        if isinstance(items, str) or not isinstance(items, list):
            raise RecordRejected(
                "CounterSamples holds no samples (ConvertTo-Json wrote their type name: export"
                " with ConvertTo-Json -Depth 3 or more)"
            )
        return items, obj.get("Timestamp"), obj.get("Timestamp100NSec")
    if "Path" in obj:
        return [obj], None, None
    raise RecordRejected("not a Get-Counter sample set or sample (no CounterSamples or Path)")


Groups = dict[tuple[str, str, str, str | None], dict[str, Any]]


def records(obj: dict[str, Any], zone: str, grouped: Groups) -> list[str]:
    """Add a top-level JSON record's samples to ``grouped``, one record per (time, host,
    object, instance); return the reasons of the samples left out."""
    items, set_time, set_100ns = samples(obj)
    problems: list[str] = []
    times: dict[tuple[str | None, Any], str | None] = {}  # a set's samples share their time
    for s in items:
        if not isinstance(s, dict):
            problems.append(f"sample {str(s)[:80]!r} is not an object (ConvertTo-Json -Depth 3)")
            continue
        p = _path(s.get("Path"))
        if p is None:
            problems.append(f"sample path {s.get('Path')!r} is not a counter path")
            continue
        status = s.get("Status", 0)
        if isinstance(status, int) and status not in _VALID:
            continue  # no value at this time (PDH says why in Status): a missing sample
        value = s.get("CookedValue")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if value is not None:
                problems.append(f"{p.counter!r}: CookedValue {value!r} is not a number")
            continue
        if value != value or value in (float("inf"), float("-inf")):
            continue
        stamp, ticks = s.get("Timestamp"), s.get("Timestamp100NSec")
        key_t = (stamp if isinstance(stamp, str) else None, ticks)
        time = times.get(key_t) if key_t[0] is not None else None
        if time is None:
            time = sample_time(stamp, ticks, zone)
            if time is None:
                time = sample_time(set_time, set_100ns, zone)
            if key_t[0] is not None and len(times) < 64:
                times[key_t] = time
        if time is None:
            problems.append(f"{p.counter!r}: no Timestamp")
            continue
        key = (time, (p.host or "").casefold(), p.object.casefold(), p.instance)
        rec = grouped.get(key)
        if rec is None:
            rec = grouped[key] = {"time": time, "host": p.host, "object": p.object,
                                  "instance": p.instance, "counters": {}}  # fmt: skip
        rec["counters"][p.counter] = float(value)
    return problems


def decode(chunk: Chunk) -> Decoded:
    """Each top-level record of the chunk -> one event per time and counter instance; a record
    that is not valid JSON, or not a sample, is quarantined with the reason."""
    c = TextChunk(chunk, NORMALISER, base=0)
    if c.skipped is not None:
        return c.quarantine_skipped()
    st, sink, out, text, at = c.state, c, c.out, c.text, c.at
    zone = str(chunk.options.get("timezone") or "UTC")
    if len(text) * c.wide <= c.limit and _whole(sink, text, zone, lambda: at(0)):
        return out
    scanner = JsonScanner(st["base"])
    spans: list[tuple[int, int]] = []
    scanner.spans = spans
    scanner.feed(text)
    # bare samples (an array of them) are grouped over the whole chunk, sample sets alone
    loose: Groups = {}
    loose_at: list[tuple[int, str]] = []
    for s, e in sorted(spans + scanner.broken):
        raw = text[s:e]

        offset = c.offset(s)
        if c.too_big(None, s, e):
            continue
        try:
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise RecordRejected("not a JSON object")
            bare = "CounterSamples" not in obj
            grouped: Groups = loose if bare else {}
            problems = records(obj, zone, grouped)
        except (orjson.JSONDecodeError, RecordRejected, TypeError, ValueError) as err:
            quarantine(out, chunk.path, None, offset, f"bad counter sample JSON: {err}", raw)
            continue
        if bare:
            if not loose_at:
                loose_at.append((s, raw))
        else:
            for rec in grouped.values():
                sink.ship(rec, None, offset, raw)
        if problems:
            why = "samples not shipped (the record's others were): " + "; ".join(problems)
            quarantine(out, chunk.path, None, offset, why, raw)
    if loose:
        s0, raw0 = loose_at[0]
        for rec in loose.values():
            sink.ship(rec, None, lambda: at(s0), raw0)
    if scanner.start >= 0:  # only at the end of a file: what is left is not a whole record
        s = scanner.start
        quarantine(out, chunk.path, None, at(s), "the file ends inside this JSON record",
                   text[s : s + HEAD])  # fmt: skip
    return out


def _whole(sink: Records, text: str, zone: str, offset: Any) -> bool:
    """The fast way: the chunk's records parsed as one JSON array, in one call. True when
    that worked and every sample was fine; otherwise nothing was added and each record is
    taken on its own (finding them costs a scan of every string again)."""
    body = text.strip().removeprefix("[").strip().removeprefix(",").strip()
    body = body.removesuffix("]").strip().removesuffix(",")
    try:
        objs = orjson.loads("[" + body + "]")
        loose: Groups = {}
        groups: list[dict[str, Any]] = []
        for obj in objs:
            if not isinstance(obj, dict):
                return False
            grouped: Groups = loose if "CounterSamples" not in obj else {}
            if records(obj, zone, grouped):
                return False
            if grouped is not loose:
                groups += grouped.values()
    except (orjson.JSONDecodeError, RecordRejected, TypeError, ValueError):
        return False
    for rec in [*groups, *loose.values()]:
        sink.ship(rec, None, offset, lambda: text[:HEAD])
    return True


def _looks_like(text: str) -> bool:
    return bool(_SNIFF.match(text)) and ('"CounterSamples"' in text or '"CookedValue"' in text)


#: the ``perf_json`` format
PERF_JSON = TextFormat(
    "perf_json",
    _looks_like,
    JsonScanner.load,
    decode,
    defaults={"base": 0},
)
