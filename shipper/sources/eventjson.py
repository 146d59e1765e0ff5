"""PowerShell ``Get-WinEvent | ConvertTo-Json`` exports.

The file is a JSON array of ``EventLogRecord`` objects (or one object, when one event was
exported). Windows PowerShell 5 writes ``TimeCreated`` as ``/Date(ms since epoch)/`` (UTC,
millisecond precision), PowerShell 7 as ISO 8601 with the local offset; both are honoured.
``Properties`` (at ConvertTo-Json's default depth) is a list of ``{"Value": ...}``: the
unnamed event data, shipped as ``param1..N``.

A JSON array cannot be parsed piecewise by ``json``, so chunks are cut after each top-level
record's closing brace by a small scanner that skips over strings; the scanner's only state
across chunks is whether records sit inside a top-level array, which the position state keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, BinaryIO

import orjson

from shipper.errors import RecordRejected
from shipper.normalise.winlog import from_datetime, iso_utc, normalise
from shipper.sources.base import Chunk, Decoded
from shipper.sources.text import (
    Cut,
    byte_length,
    emit,
    head_text,
    load_state,
    quarantine,
    text_chunks,
    to_text,
)

_TOKEN = re.compile(r'[{}\[\]"]')
_STRING_END = re.compile(r'(?:[^"\\]|\\.)*"', re.S)
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_SNIFF = re.compile(r'^\s*[\[{]\s*\{?\s*"(?:Message|Id|TimeCreated|ProviderName|LogName)"')


def records(text: str, base: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each complete top-level record; ``base`` is 1 inside an array."""
    depth = base
    start = -1
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN.search(text, pos)
        if not m:
            return
        c = m.group()
        i = m.start()
        if c == '"':
            e = _STRING_END.match(text, i + 1)
            if not e:
                return  # string runs past the end: incomplete
            pos = e.end()
            continue
        if c in "{[":
            if depth == base and c == "{":
                start = i
            elif depth == 0 and c == "[":
                base = 1  # the top-level array opens
            depth += 1
        else:
            depth -= 1
            if depth == base and c == "}" and start >= 0:
                yield start, i + 1
                start = -1
            if depth < base:
                base = depth = 0
        pos = i + 1


class EventJson:
    """The ``event_json`` format."""

    name = "event_json"
    exact_time = False  # copies in other export formats may carry a local time

    def sniff(self, head: bytes, path: str) -> bool:
        return bool(_SNIFF.match(head_text(head)))

    def chunks(
        self,
        f: BinaryIO,
        path: str,
        start: int,
        state: str,
        final: bool,
        options: dict[str, object],
    ) -> Iterator[Chunk]:
        return text_chunks(
            self.name, f, path, start, state, final, options, _cut, _learn_array, base=0
        )

    def decode(self, chunk: Chunk) -> Decoded:
        return decode(chunk)


def _cut(st: dict[str, Any], text: str, at_eof: bool) -> int:
    """Just past the last complete record of ``text``."""
    last = (0, 0)
    for last in records(text, st["base"]):  # noqa: B007 - the last one is wanted
        pass
    return last[1]


def _learn_array(st: dict[str, Any], cut: Cut) -> None:
    """Whether the export is one JSON array (ConvertTo-Json of many events)."""
    if st["base"] == 0 and cut.text.lstrip().startswith("["):
        st["base"] = 1


EVENT_JSON = EventJson()


def _time(value: Any) -> str:
    if isinstance(value, dict):  # a DateTime with PowerShell's extended members
        value = value.get("value") or value.get("DateTime")
    if not isinstance(value, str):
        raise RecordRejected(f"TimeCreated {value!r} is not a date")
    m = _MS_DATE.match(value.replace("\\/", "/"))
    if m:
        ms = int(m.group(1))
        dt = datetime.fromtimestamp(ms // 1000, timezone.utc).replace(
            microsecond=(ms % 1000) * 1000
        )
        return from_datetime(dt)
    return iso_utc(value)


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Value" in value:
        return _str(value["Value"])
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


def _guid(value: Any) -> str | None:
    if not value or not isinstance(value, str):
        return None
    return "{" + value.strip("{} ").lower() + "}"


def _sid(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("Value")
    return value if isinstance(value, str) and value else None


def parse_record(obj: dict[str, Any]) -> dict[str, Any]:
    """A ConvertTo-Json'd EventLogRecord as the common Windows record dict."""
    g = obj.get
    if "TimeCreated" not in obj or "Id" not in obj:
        raise RecordRejected("not an event record (no Id / TimeCreated)")
    keywords = g("Keywords")
    data: dict[str, str] = {}
    props = g("Properties")
    if isinstance(props, list):
        for i, p in enumerate(props, 1):
            value = _str(p)
            if value:
                data[f"param{i}"] = value
    names = g("KeywordsDisplayNames")
    message = g("Message")
    return {
        "time": _time(g("TimeCreated")),
        "provider": g("ProviderName"),
        "provider_guid": _guid(g("ProviderId")),
        "event_id": str(g("Id")),
        "version": g("Version"),
        "level": g("Level"),
        "level_name": g("LevelDisplayName") or None,
        "task": g("Task"),
        "task_name": g("TaskDisplayName") or None,
        "opcode": g("Opcode"),
        "opcode_name": g("OpcodeDisplayName") or None,
        "keywords": keywords & 0xFFFFFFFFFFFFFFFF if isinstance(keywords, int) else None,
        "keyword_names": [n for n in names if n] if isinstance(names, list) else None,
        "record_id": g("RecordId"),
        "channel": g("LogName"),
        "computer": g("MachineName"),
        "pid": g("ProcessId"),
        "tid": g("ThreadId"),
        "user_sid": _sid(g("UserId")),
        "activity_id": _guid(g("ActivityId")),
        "related_activity_id": _guid(g("RelatedActivityId")),
        "event_data": data,
        "message": message.replace("\r\n", "\n") if isinstance(message, str) else None,
    }


def decode(chunk: Chunk) -> Decoded:
    """Parse each record of the chunk; a record that is not valid JSON is quarantined."""
    st = load_state(chunk.state_in, enc="utf-8", base=0)
    enc = st["enc"]
    text = to_text(chunk.payload, enc)
    keep = bool(chunk.options.get("keep_original", False))
    out = Decoded()
    for s, e in records(text, st["base"]):
        raw = text[s:e]

        def offset(s: int = s) -> int:
            return chunk.start + byte_length(text[:s], enc)

        try:
            obj = orjson.loads(raw)
            if not isinstance(obj, dict):
                raise RecordRejected("not a JSON object")
            rec = parse_record(obj)
        except (orjson.JSONDecodeError, RecordRejected, TypeError) as err:
            quarantine(out, chunk.path, None, offset, f"bad JSON event: {err}", raw)
            continue
        if keep:
            rec["original"] = raw
        emit(out, normalise, rec, chunk.path, None, offset, raw)
    return out
