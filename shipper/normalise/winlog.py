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

Event ids (the dedupe key, ``event.id`` and the Elasticsearch ``_id``): the first 32 hex
characters of BLAKE2b over ``computer, channel, provider, record id`` (case-folded, joined by
U+001F). Exports without a record id (Event Viewer CSV and text) are identified by their
content instead: ``@timestamp, provider, event id, message``. The same event exported twice
in one format, in overlapping windows, gets the same id; across a record-id format and a
content-hash format it does not (the CSV carries too little to tell).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cache
from typing import Any

from shipper.errors import RecordRejected

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

_ISO = re.compile(
    r"^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:[.,](\d+))?\s*(Z|UTC|[+-]\d\d:?\d\d)?$", re.I
)


def iso_utc(value: str) -> str:
    """An ISO 8601 time as UTC ``...Z``, keeping every fractional digit (100 ns in .evtx).

    Times without a zone are taken as UTC (``SystemTime`` always is).
    """
    m = _ISO.match(value.strip())
    if not m:
        raise RecordRejected(f"time {value!r} is not ISO 8601")
    day, clock, frac, zone = m.groups()
    frac_s = f".{frac}" if frac else ""
    if zone and zone.upper() not in ("Z", "UTC") and zone not in ("+00:00", "-00:00", "+0000"):
        sign = -1 if zone[0] == "-" else 1
        hh, mm = int(zone[1:3]), int(zone[-2:])
        try:
            local = datetime.fromisoformat(f"{day}T{clock}")
        except ValueError as e:
            raise RecordRejected(f"time {value!r}: {e}") from None
        utc = local.replace(tzinfo=timezone.utc).timestamp() - sign * (hh * 3600 + mm * 60)
        return datetime.fromtimestamp(utc, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + (
            frac_s + "Z"
        )
    return f"{day}T{clock}{frac_s}Z"


def from_datetime(dt: datetime, extra_digits: str = "") -> str:
    """A timezone-aware datetime as ISO UTC; ``extra_digits`` extends microseconds."""
    dt = dt.astimezone(timezone.utc)
    frac = f".{dt.microsecond:06d}{extra_digits}" if dt.microsecond or extra_digits else ""
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


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


def normalise(rec: dict[str, Any], path: str) -> dict[str, Any]:
    """Parsed Windows record -> ECS event dict. Raises ``RecordRejected`` when unusable."""
    time = rec.get("time")
    if not time:
        raise RecordRejected("no event time (System/TimeCreated/@SystemTime)")
    provider = rec.get("provider")
    channel = rec.get("channel")
    code = rec.get("event_id")
    if code is None or code == "":
        raise RecordRejected("no event id (System/EventID)")
    dataset = _dataset_of(provider, channel)
    redact = _redactor()

    winlog: dict[str, Any] = {"event_id": code}
    if provider:
        winlog["provider_name"] = provider
    if rec.get("provider_guid"):
        winlog["provider_guid"] = rec["provider_guid"]
    if channel:
        winlog["channel"] = channel
    if rec.get("record_id") is not None:
        winlog["record_id"] = rec["record_id"]
    computer = rec.get("computer")
    if computer:
        winlog["computer_name"] = computer
    if rec.get("version") is not None:
        winlog["version"] = rec["version"]
    names = rec.get("keyword_names")
    if names is None and rec.get("keywords") is not None:
        names = keyword_names(rec["keywords"])
    if names:
        winlog["keywords"] = names
    opcode = rec.get("opcode_name") or OPCODES.get(rec.get("opcode"))  # type: ignore[arg-type]
    if opcode:
        winlog["opcode"] = opcode
    task = rec.get("task_name")
    if task:
        winlog["task"] = task
    elif rec.get("task"):
        winlog["task"] = str(rec["task"])
    pid, tid = rec.get("pid"), rec.get("tid")
    if pid is not None or tid is not None:
        proc: dict[str, Any] = {}
        if pid is not None:
            proc["pid"] = pid
        if tid is not None:
            proc["thread"] = {"id": tid}
        winlog["process"] = proc
    if rec.get("user_sid"):
        winlog["user"] = {"identifier": rec["user_sid"]}
    if rec.get("activity_id"):
        winlog["activity_id"] = rec["activity_id"]
    if rec.get("related_activity_id"):
        winlog["related_activity_id"] = rec["related_activity_id"]
    data = rec.get("event_data")
    if data:
        winlog["event_data"] = {k: redact(v) for k, v in data.items()}
    if rec.get("user_data"):
        winlog["user_data"] = {k: redact(v) for k, v in rec["user_data"].items()}

    level = rec.get("level_name")
    level = level.lower() if level else LEVELS.get(rec.get("level"))  # type: ignore[arg-type]

    message = rec.get("message")
    if not message and dataset != "windows.events" and data and list(data) == ["param1"]:
        # .NET's EventLog sources (both connectors) log through EventLogMessages.dll, whose
        # message is "%1": the one unnamed data element *is* the message.
        message = data["param1"]

    ev_id = event_id(rec, time)
    event: dict[str, Any] = {
        "@timestamp": time,
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "event",
            "code": code,
            "id": ev_id,
            "module": dataset.partition(".")[0],
            "dataset": dataset,
        },
        "log": {"file": {"path": path}},
        "winlog": winlog,
    }
    if provider:
        event["event"]["provider"] = provider
    if level:
        event["log"]["level"] = level
    if computer:
        event["host"] = {"name": computer}
    if message:
        event["message"] = redact(message.replace("\r\n", "\n").rstrip())
    if rec.get("original") is not None:
        event["event"]["original"] = redact(rec["original"])
    enrich = _enrichers().get(dataset)
    if enrich is not None:
        enrich(event, rec)
    return event
