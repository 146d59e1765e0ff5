"""A performance counter sample, from any export format, to an ECS metric document.

Readers (PDH CSV/TSV from typeperf, relog and Export-Counter; Get-Counter as JSON) hand over
one record per sample time and counter instance, with every counter of that instance read at
that time::

    {"time": "2024-03-04T09:00:15.123Z",      # ISO 8601 UTC
     "host": "RMSCON01",                       # from \\\\HOST\\... (None when the path has none)
     "object": "Microsoft Rights Management connector",
     "instance": None,                         # "_Total", "C:", ...; None: single-instance
     "counters": {"Time since last authorization policy update": 412.0, ...}}

and get one document back, so a chart or a threshold reads one document per instance and
time. The RMS connector's own set becomes ``rms_connector.perf.*`` (dataset
``rms_connector.perf``) with names and units from ``mappings/windows/rms_connector_perf.yaml``;
any other object becomes ``windows.perf.<object>.<counter>``, snake-cased (dataset
``windows.perf``): unknown objects are kept, never refused. Values stay numbers (floats).

The event id (dedupe key, ``event.id``, Elasticsearch ``_id``) is the first 32 hex characters
of BLAKE2b over (host, object, instance, time to the millisecond, the sorted counter names),
case-folded: Get-Counter writes paths in lower case and typeperf in the case Windows reports,
and PowerShell 7 keeps 100 ns where PDH CSV keeps milliseconds, so the same sample exported
both ways is one event. The counter names are in it so that two logs of *different* counters
of one instance at the same instant (two collectors; a JSON export whose samples of one time
are cut apart) are two documents, not one shipped and one dropped as its duplicate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

from shipper.errors import RecordRejected
from shipper.mappings import load_yaml
from shipper.normalise.hosts import host_fields

ECS_VERSION = "9.4.0"
TABLE = "windows/rms_connector_perf.yaml"
GENERIC_DATASET = "windows.perf"

_NON_WORD = re.compile(r"[^0-9a-z]+")


def snake(name: str) -> str:
    """A counter or object name as a field name: ``% Processor Time`` -> ``pct_processor_time``,
    ``Avg. Disk sec/Read`` -> ``avg_disk_sec_per_read``, ``Bytes/sec`` -> ``bytes_per_sec``."""
    text = name.casefold().replace("%", " pct ").replace("/", " per ").replace("#", " num ")
    return _NON_WORD.sub("_", text).strip("_") or "_"


def _h(*parts: object) -> str:
    text = "\x1f".join("" if p is None else str(p).casefold() for p in parts)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def event_id(
    host: str | None, obj: str, instance: str | None, time: str, counters: list[str]
) -> str:
    """Stable id of one instance's sample; ``time`` is cut to milliseconds (see above)."""
    return _h(host, obj, instance, _millis(time), _names(tuple(counters)))


@lru_cache(maxsize=4096)
def _names(counters: tuple[str, ...]) -> str:
    """The counter names' part of an id (a log's rows repeat the same few sets)."""
    return "\x1e".join(sorted(c.strip().casefold() for c in counters))


def _millis(time: str) -> str:
    dot = time.find(".")
    if dot < 0:
        return time.removesuffix("Z") + ".000"
    frac = time[dot + 1 :].removesuffix("Z")
    return time[:dot] + "." + (frac + "000")[:3]


class _Rules:
    """The RMS connector table compiled once: counter name -> field path (a tuple)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.object = str(raw["object"]).casefold()
        self.dataset = str(raw["dataset"])
        self.module = str(raw["module"])
        self.instance_field = str(raw.get("instance_field") or "instance")
        self.table = {str(k).casefold(): _path(str(v)) for k, v in raw["counters"].items()}
        self.patterns = [
            (re.compile(p["match"], re.IGNORECASE), str(p["field"]))
            for p in raw.get("patterns") or ()
        ]
        self.suffixes = [
            (re.compile(s["match"], re.IGNORECASE), str(s.get("suffix") or ""))
            for s in raw.get("fallback_suffixes") or ()
        ]
        for path in self.table.values():
            if path[0] == self.instance_field:
                raise ValueError(f"{TABLE}: field {'.'.join(path)} collides with the instance")

    def field(self, counter: str) -> tuple[str, ...]:
        key = counter.strip().casefold()
        found = self.table.get(key)
        if found is not None:
            return found
        for pattern, template in self.patterns:
            m = pattern.match(key)
            if m:
                parts = {k: snake(v) for k, v in m.groupdict().items() if v is not None}
                return _path(template.format(**parts))
        name = snake(key)
        for pattern, suffix in self.suffixes:
            if pattern.search(key):
                name += suffix
                break
        if name == self.instance_field:
            name += "_value"
        return (name,)


def _path(dotted: str) -> tuple[str, ...]:
    return tuple(p for p in dotted.split(".") if p)


@cache
def _rules() -> _Rules:
    return _Rules(load_yaml(TABLE))


class _Shape:
    """Where one object's counters go: dataset, module, and the field path of each counter."""

    __slots__ = (
        "dataset",
        "module",
        "root",
        "instance_key",
        "fields",
        "object_name",
        "object_key",
        "rules",
    )

    def __init__(self, obj: str) -> None:
        rules = _rules()
        self.fields: dict[str, tuple[str, ...]] = {}
        if obj.strip().casefold() == rules.object:
            self.rules: _Rules | None = rules
            self.dataset, self.module = rules.dataset, rules.module
            self.root: tuple[str, ...] = tuple(rules.dataset.split("."))
            self.instance_key = rules.instance_field
            self.object_name: str | None = None
            self.object_key = ""
        else:
            self.rules = None
            self.dataset, self.module = GENERIC_DATASET, "windows"
            self.root = ("windows", "perf")
            self.instance_key = "instance"
            self.object_name = obj
            key = snake(obj)
            self.object_key = key + "_object" if key in ("object", "instance") else key

    def field(self, counter: str) -> tuple[str, ...]:
        path = self.fields.get(counter)
        if path is None:
            if self.rules is not None:
                path = self.rules.field(counter)
            else:
                path = (self.object_key, snake(counter))
            if len(self.fields) < 65536:
                self.fields[counter] = path
        return path


_SHAPES: dict[str, _Shape] = {}


def _shape(obj: str) -> _Shape:
    shape = _SHAPES.get(obj)
    if shape is None:
        if len(_SHAPES) > 4096:
            _SHAPES.clear()
        shape = _SHAPES[obj] = _Shape(obj)
    return shape


def normalise(rec: dict[str, Any], path: str) -> dict[str, Any]:
    """One sample of one counter instance -> ECS metric document; ``RecordRejected`` when it
    has no time, no object or no value."""
    time = rec.get("time")
    if not time:
        raise RecordRejected("no sample time")
    obj = rec.get("object")
    if not obj:
        raise RecordRejected("no counter object in the counter path")
    counters: dict[str, float] = rec.get("counters") or {}
    if not counters:
        raise RecordRejected("no counter value in this sample")
    host = rec.get("host") or None
    instance = rec.get("instance")
    shape = _shape(obj)

    metrics: dict[str, Any] = {}
    for counter, value in counters.items():
        field = shape.field(counter)
        node = metrics
        for part in field[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[field[-1]] = value
    if shape.object_name is not None:
        metrics["object"] = shape.object_name
    if instance is not None:
        metrics[shape.instance_key] = instance

    event: dict[str, Any] = {
        "@timestamp": time,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "metric",
            "module": shape.module,
            "dataset": shape.dataset,
            "id": event_id(host, obj, instance, time, list(counters)),
        },
        "log": {"file": {"path": path}},
    }
    original = rec.get("original")
    if original is not None:
        event["event"]["original"] = original
    if host:
        event["host"] = host_fields(host)
    root = shape.root
    event.setdefault(root[0], {})[root[1]] = metrics
    return event


def make(options: dict[str, Any]) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """The ``windows_perf`` normaliser for a chunk's options (see ``shipper.normalise``)."""
    from shipper.normalise import labelled

    return labelled(normalise, options)


__all__ = ["GENERIC_DATASET", "TABLE", "event_id", "make", "normalise", "snake"]
