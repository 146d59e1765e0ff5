"""A Windows event, from any export format, to Winlogbeat-compatible ECS.

Every reader (``.evtx``, event XML, Event Viewer CSV/TXT, PowerShell CSV/JSON) parses its
records into the same plain dict, so that the mapping to ECS is written once and a record
looks the same whatever file it arrived in. The keys of that dict (all optional except
``time``):

``provider``, ``provider_guid``, ``event_id`` (str), ``version``, ``level`` (int),
``level_name``, ``task`` (int), ``task_name``, ``opcode`` (int), ``opcode_name``, ``keywords``
(int bit mask), ``keyword_names`` (list), ``time`` (ISO 8601 UTC, full precision), ``record_id``
(int), ``pid``, ``tid``, ``channel``, ``computer``, ``user_sid``, ``event_data`` (dict of str,
unnamed data already named ``param1..N``), ``user_data`` (dict), ``message``, ``activity_id``,
``related_activity_id``, ``original`` (raw record text, kept only with ``keep_original``).

Names (level, opcode, keywords) that the export does not render are filled from Windows'
well-known values (winmeta.xml), as Winlogbeat does; a provider-specific task name cannot be
known without the provider's manifest, so ``winlog.task`` is then left out.

``host.name`` is the Computer lower-cased, ``host.hostname`` its first label: the name the
same server's performance counters carry too (``shipper.normalise.hosts``). Winlogbeat keeps
the Computer's case in ``host.name``; it stays as written in ``winlog.computer_name``.

Event ids (the dedupe key, ``event.id`` and the Elasticsearch ``_id``): the first 32 hex
characters of BLAKE2b over ``computer, channel, provider, record id`` (case-folded, joined by
U+001F). Exports without a record id (Event Viewer CSV and text) are identified by their
content instead: ``@timestamp, provider, event id, message``. The same event exported twice
in one format, in overlapping windows, gets the same id; across a record-id format and a
content-hash format it does not (the CSV carries too little to tell).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import cache
from typing import Any

from shipper.errors import RecordRejected
from shipper.normalise.hosts import host_fields

ECS_VERSION = "9.4.0"

LEVELS = {0: "information", 1: "critical", 2: "error", 3: "warning", 4: "information", 5: "verbose"}
OPCODES = {
    0: "Info",
    1: "Start",
    2: "Stop",
    3: "DCStart",
    4: "DCStop",
    5: "Extension",
    6: "Reply",
    7: "Resume",
    8: "Suspend",
    9: "Send",
    240: "Receive",
}
KEYWORDS = (
    (0x80000000000000, "Classic"),
    (0x40000000000000, "Correlation Hint"),
    (0x20000000000000, "Audit Success"),
    (0x10000000000000, "Audit Failure"),
    (0x8000000000000, "SQM"),
    (0x4000000000000, "WDI Diag"),
    (0x1000000000000, "Response Time"),
)


def _h(*parts: object) -> str:
    text = "\x1f".join("" if p is None else str(p).casefold() for p in parts)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def event_id(rec: dict[str, Any], timestamp: str) -> str:
    """Stable id: record identity when the export has a record id, else the content."""
    rid = rec.get("record_id")
    if rid is not None:
        return _h(rec.get("computer"), rec.get("channel"), rec.get("provider"), rid)
    return _h("content", timestamp, rec.get("provider"), rec.get("event_id"), rec.get("message"))


def keyword_names(mask: int) -> list[str]:
    return [name for bit, name in KEYWORDS if mask & bit]


Enricher = Callable[[dict[str, Any], dict[str, Any]], None]


def _dataset_of(provider: str | None, channel: str | None) -> str:
    p = (provider or "").casefold()
    if p == "microsoft rms connector":
        return "rms_connector.events"
    if p in ("microsoft ecma2host", "connectorslog") or (channel or "").casefold() == "ecma2host":
        return "ecma2host.events"
    return "windows.events"


@cache
def _enrichers() -> dict[str, Enricher]:
    from shipper.normalise.ecma2host import build as build_ecma
    from shipper.normalise.rms_connector import build as build_rms

    return {"rms_connector.events": build_rms(), "ecma2host.events": build_ecma()}


@cache
def _redactor() -> Callable[[str], str]:
    from shipper.normalise.ecma2host import redact

    return redact


def _redact_values(values: dict[str, Any], redact: Callable[[str], str]) -> dict[str, Any]:
    """``{k: redact(v)}``, with one look at all the values together: most hold no secret."""
    if all(type(v) is str for v in values.values()):
        joined = "\n".join(values.values())
        if redact(joined) is joined:
            return dict(values)
    return {k: redact(v) for k, v in values.items()}


_KEYWORD_CACHE: dict[int, list[str]] = {}


def _keyword_names(mask: int) -> list[str]:
    names = _KEYWORD_CACHE.get(mask)
    if names is None:
        if len(_KEYWORD_CACHE) > 4096:
            _KEYWORD_CACHE.clear()
        names = _KEYWORD_CACHE[mask] = keyword_names(mask)
    return list(names)


def normalise(rec: dict[str, Any], path: str) -> dict[str, Any]:
    """Parsed Windows record -> ECS event dict. Raises ``RecordRejected`` when unusable."""
    get = rec.get
    time = get("time")
    if not time:
        raise RecordRejected("no event time (System/TimeCreated/@SystemTime)")
    code = get("event_id")
    if code is None or code == "":
        raise RecordRejected("no event id (System/EventID)")
    provider = get("provider")
    channel = get("channel")
    dataset = _dataset_of(provider, channel)
    redact = _redactor()

    winlog: dict[str, Any] = {"event_id": code}
    if provider:
        winlog["provider_name"] = provider
    value = get("provider_guid")
    if value:
        winlog["provider_guid"] = value
    if channel:
        winlog["channel"] = channel
    rid = get("record_id")
    if rid is not None:
        winlog["record_id"] = rid
    computer = get("computer")
    if computer:
        winlog["computer_name"] = computer
    value = get("version")
    if value is not None:
        winlog["version"] = value
    names = get("keyword_names")
    if names is None:
        mask = get("keywords")
        if mask is not None:
            names = _keyword_names(mask)
    if names:
        winlog["keywords"] = names
    opcode = get("opcode_name") or OPCODES.get(get("opcode"))  # type: ignore[arg-type]
    if opcode:
        winlog["opcode"] = opcode
    task = get("task_name")
    if task:
        winlog["task"] = task
    else:
        task = get("task")
        if task:
            winlog["task"] = str(task)
    pid, tid = get("pid"), get("tid")
    if pid is not None or tid is not None:
        proc: dict[str, Any] = {}
        if pid is not None:
            proc["pid"] = pid
        if tid is not None:
            proc["thread"] = {"id": tid}
        winlog["process"] = proc
    value = get("user_sid")
    if value:
        winlog["user"] = {"identifier": value}
    value = get("activity_id")
    if value:
        winlog["activity_id"] = value
    value = get("related_activity_id")
    if value:
        winlog["related_activity_id"] = value
    data = get("event_data")
    if data:
        winlog["event_data"] = _redact_values(data, redact)
    value = get("user_data")
    if value:
        winlog["user_data"] = _redact_values(value, redact)

    level = get("level_name")
    level = level.lower() if level else LEVELS.get(get("level"))  # type: ignore[arg-type]

    message = get("message")
    if not message and dataset != "windows.events" and data and list(data) == ["param1"]:
        # .NET's EventLog sources (both connectors) log through EventLogMessages.dll, whose
        # message is "%1": the one unnamed data element *is* the message.
        message = data["param1"]

    ev_id = event_id(rec, time)
    ev: dict[str, Any] = {
        "kind": "event",
        "code": code,
        "id": ev_id,
        "module": _MODULES[dataset],
        "dataset": dataset,
    }
    log: dict[str, Any] = {"file": {"path": path}}
    event: dict[str, Any] = {
        "@timestamp": time,
        "ecs": {"version": ECS_VERSION},
        "event": ev,
        "log": log,
        "winlog": winlog,
    }
    if provider:
        ev["provider"] = provider
    if level:
        log["level"] = level
    if computer:
        event["host"] = host_fields(computer)
    if message:
        event["message"] = redact(message.replace("\r\n", "\n").rstrip())
    value = get("original")
    if value is not None:
        ev["original"] = redact(value)
    enrich = _enrichers().get(dataset)
    if enrich is not None:
        enrich(event, rec)
    return event


_MODULES = {
    "rms_connector.events": "rms_connector",
    "ecma2host.events": "ecma2host",
    "windows.events": "windows",
}


def make(options: dict[str, Any]) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """The ``windows`` normaliser for a chunk's options (see ``shipper.normalise``)."""
    from shipper.normalise import labelled

    return labelled(normalise, options)
