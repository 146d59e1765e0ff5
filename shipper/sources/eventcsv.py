"""Event Viewer CSV / tab-delimited text and PowerShell ``Export-Csv`` of ``Get-WinEvent``.

Event Viewer ("Save All Events As" CSV or Text) writes ``Level, Date and Time, Source, Event
ID, Task Category`` and a sixth, unnamed message column, quoted and often multi-line. Dates
are in the exporting machine's locale and time zone, which the file does not say: the input's
``date_format`` and ``timezone`` settings tell, and a date that does not match is quarantined
with a reason that says so (never guessed, a wrong day/month swap would be silent). These
exports carry no computer, channel or record id, so their events are identified by content.

``Export-Csv`` (with or without its ``#TYPE`` line; ``,``, ``;`` or tab) has one column per
``EventLogRecord`` property; ``TimeCreated`` is again a local, locale-formatted date, and
``Properties`` is only a type name, so event data is not available from this format.

Records are cut at line ends outside quotes (an even number of ``"`` so far), so a chunk never
splits a multi-line message. The header travels in the position state.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from shipper.errors import RecordRejected
from shipper.sources.base import Chunk, Decoded
from shipper.sources.text import Cut, TextChunk, TextFormat
from shipper.sources.wintime import from_datetime

# A record's size is bounded by max_record_bytes (checked by the reader and below), the same
# bound for every format; the csv module's own 128 KiB field limit must not be a second one.
csv.field_size_limit(2**31 - 1)

EVENT_VIEWER = ("level", "date and time", "source", "event id", "task category")
DEFAULT_DATE_FORMAT = "%m/%d/%Y %I:%M:%S %p"
_POWERSHELL_NEEDS = {"id", "timecreated"}


def _split_header(line: str) -> tuple[str, list[str]]:
    best = ","
    for d in ("\t", ";"):
        if line.count(d) > line.count(best):
            best = d
    cols = next(csv.reader([line], delimiter=best), [])
    return best, [c.strip().strip('"').strip() for c in cols]


def _kind(cols: list[str]) -> str | None:
    lower = [c.lower() for c in cols]
    if tuple(lower[:5]) == EVENT_VIEWER:
        return "eventviewer"
    if _POWERSHELL_NEEDS <= set(lower) and ({"providername", "logname"} & set(lower)):
        return "powershell"
    return None


def _header_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("#TYPE") or not line.strip():
            continue
        return line
    return None


class CsvScanner:
    """Record ends: line ends outside quotes (see ``text.Scanner``). The only state is
    whether an odd number of ``"`` has been seen, so a quoted field of any length costs one
    pass."""

    __slots__ = ("odd",)

    def __init__(self, odd: bool = False) -> None:
        self.odd = odd

    @classmethod
    def load(cls, d: dict[str, Any]) -> CsvScanner:
        return cls(d.get("odd", False))

    def save(self) -> dict[str, Any]:
        return {"odd": self.odd}

    def boundary_state(self) -> dict[str, Any]:
        return {}

    def lead(self, text: str) -> int:
        return 0

    def feed(self, text: str) -> list[int]:
        ends = []
        odd = self.odd
        pos = 0
        find, count = text.find, text.count
        while True:
            nl = find("\n", pos)
            if nl < 0:
                break
            if count('"', pos, nl) & 1:
                odd = not odd
            if not odd:
                ends.append(nl + 1)
            pos = nl + 1
        if count('"', pos) & 1:
            odd = not odd
        self.odd = odd
        return ends


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_time(value: str, fmt: str, zone: str) -> str:
    """A date in the exporting machine's format and zone as ISO UTC; clear error if no match."""
    value = value.strip().replace("\u200e", "").replace("\u200f", "")  # bidi marks (Event Viewer)
    try:
        naive = datetime.strptime(value, fmt)
    except ValueError:
        raise RecordRejected(
            f"date {value!r} does not match date_format {fmt!r}: set this input's date_format "
            "(and timezone) to the locale of the machine that exported the file"
        ) from None
    return from_datetime(naive.replace(tzinfo=_zone(zone)))


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return int(value, 16) if value[:2].lower() == "0x" else int(value)
    except ValueError:
        return None


def _useful(value: str | None) -> str | None:
    """PowerShell writes a type name for collections; that is not data."""
    if not value or value.startswith("System."):
        return None
    return value


def _eventviewer(row: list[str], fmt: str, zone: str) -> dict[str, Any]:
    if len(row) < 5:
        raise RecordRejected(f"expected at least 5 columns, found {len(row)}")
    task = row[4].strip()
    return {
        "level_name": row[0].strip() or None,
        "time": local_time(row[1], fmt, zone),
        "provider": row[2].strip(),
        "event_id": row[3].strip(),
        "task_name": task if task and task != "None" else None,
        "message": row[5].replace("\r\n", "\n") if len(row) > 5 else None,
    }


def _powershell(row: dict[str, str], fmt: str, zone: str) -> dict[str, Any]:
    g = row.get
    keywords = _int(g("Keywords"))
    rec: dict[str, Any] = {
        "time": local_time(g("TimeCreated") or "", fmt, zone),
        "provider": g("ProviderName"),
        "event_id": (g("Id") or "").strip(),
        "version": _int(g("Version")),
        "level": _int(g("Level")),
        "level_name": _useful(g("LevelDisplayName")),
        "task": _int(g("Task")),
        "task_name": _useful(g("TaskDisplayName")),
        "opcode": _int(g("Opcode")),
        "opcode_name": _useful(g("OpcodeDisplayName")),
        "keywords": None if keywords is None else keywords & 0xFFFFFFFFFFFFFFFF,
        "record_id": _int(g("RecordId")),
        "channel": g("LogName") or None,
        "computer": g("MachineName") or None,
        "pid": _int(g("ProcessId")),
        "tid": _int(g("ThreadId")),
        "user_sid": _useful(g("UserId")),
        "message": (g("Message") or "").replace("\r\n", "\n") or None,
    }
    guid = g("ProviderId")
    if guid:
        rec["provider_guid"] = "{" + guid.strip("{} ").lower() + "}"
    for key in ("ActivityId", "RelatedActivityId"):
        v = g(key)
        if v:
            rec["activity_id" if key == "ActivityId" else "related_activity_id"] = (
                "{" + v.strip("{} ").lower() + "}"
            )
    return rec


def decode(chunk: Chunk) -> Decoded:
    """Parse a chunk of CSV/TXT records; an unparsable row is quarantined with the reason."""
    c = TextChunk(chunk, cols=None, delim=",", kind=None)
    if c.skipped is not None:
        return c.quarantine_skipped()
    st, text, out = c.state, c.text, c.out
    fmt = str(chunk.options.get("date_format") or DEFAULT_DATE_FORMAT)
    zone = str(chunk.options.get("timezone") or "UTC")
    cols, kind = st["cols"], st["kind"]
    if cols is None:  # the first chunk: the header is in it
        line = _header_line(text)
        if line is not None:
            st["delim"], cols = _split_header(line)
            kind = _kind(cols)
        if kind is None:
            out.refused = f"{chunk.path}: not an Event Viewer or Export-Csv event export"
            return out
    at = c.at
    starts = [0]  # where each physical line begins, as the reader takes them
    reader = csv.reader(_lines(text, starts), delimiter=st["delim"])
    prev_line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            a, b = starts[prev_line], starts[reader.line_num]
            bad = _strip_eol(text[a:b])
            c.reject(chunk.first_line + prev_line, at(a), str(e), bad)
            prev_line = reader.line_num
            continue
        line_no = chunk.first_line + prev_line
        a, b = starts[prev_line], starts[reader.line_num]
        prev_line = reader.line_num

        offset = c.offset(a)

        def raw(a: int = a, b: int = b) -> str:
            return _strip_eol(text[a:b])

        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if text.startswith("#TYPE", a):  # the line as written: a field "#TYPE" is a value
            continue
        if [c.strip() for c in row[: len(cols)]] == cols:
            continue  # the header line itself
        if c.too_big(line_no, a, b):
            continue
        try:
            if kind == "eventviewer":
                rec = _eventviewer(row, fmt, zone)
            else:
                if len(row) != len(cols):
                    raise RecordRejected(f"expected {len(cols)} columns, found {len(row)}")
                rec = _powershell(dict(zip(cols, row, strict=True)), fmt, zone)
        except RecordRejected as e:
            c.reject(line_no, offset, str(e), raw)
            continue
        c.ship(rec, line_no, offset, raw)
    return out


def _lines(text: str, starts: list[int]) -> Iterator[str]:
    """The lines of ``text`` as the csv module wants them, noting where each one ends."""
    pos = 0
    for line in io.StringIO(text, newline=""):
        pos += len(line)
        starts.append(pos)
        yield line


def _strip_eol(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def _learn_header(st: dict[str, Any], cut: Cut) -> None:
    """The first chunk holds the header line: its columns decide how records are read."""
    if st["cols"] is None:
        line = _header_line(cut.text)
        if line is not None:
            st["delim"], st["cols"] = _split_header(line)
            st["kind"] = _kind(st["cols"])


def _looks_like_csv(text: str) -> bool:
    line = _header_line(text)
    return line is not None and _kind(_split_header(line)[1]) is not None


#: the ``event_csv`` format
EVENT_CSV = TextFormat(
    "event_csv",
    _looks_like_csv,
    CsvScanner.load,
    decode,
    _learn_header,
    defaults={"line": 1, "cols": None, "delim": ",", "kind": None},
)
