"""Performance counter logs in PDH CSV/TSV: ``typeperf -f CSV``, ``relog -f CSV`` and
PowerShell's ``Export-Counter -FileFormat CSV`` (and their TSV twins).

The first line is the header: a first cell ``(PDH-CSV 4.0) (<zone>)(<bias>)`` and one cell per
counter, ``\\\\HOST\\Object(Instance)\\Counter``. Each later line is one sample time: the local
time, then one quoted number per counter, blank (or a single space) where that counter had no
value at that time (a rate counter's first sample, a counter that could not be read): that
value is skipped, not the row. How local times become UTC is in ``shipper.sources.pdh``.

typeperf appends one line per interval while it runs, so in follow mode only complete lines
are read (the shared text reader cuts at line ends outside quotes); the header, the time rule
decided from it and the previous row's time travel in the position state. A header line
found again further down (logs concatenated) starts a new column layout.

A line is turned into one record per counter instance (normalised by ``windows_perf``,
``shipper.normalise.perf``, unless the input chooses another). A line
whose time cannot be read or whose cell count is wrong is quarantined with its line number;
a value that is not a number is reported the same way, while the line's other values ship.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from shipper.errors import RecordRejected
from shipper.sources.base import Chunk, Decoded
from shipper.sources.eventcsv import CsvScanner
from shipper.sources.pdh import (
    Clock,
    Group,
    Header,
    clock_for,
    group_columns,
    iso,
    number,
    parse_header,
    parse_path,
    parse_stamp,
    zone_name,
)
from shipper.sources.text import (
    Cut,
    TextChunk,
    TextFormat,
    quarantine,
)

#: the normaliser when the chunk's input names none (a format used on its own)
NORMALISER = "windows_perf"

_DEFAULTS: dict[str, Any] = {
    "line": 1,
    "cols": None,  # the header's cells
    "clock": None,  # pdh.clock_for's answer, once the first sample was seen
    "prev": None,  # the previous sample's UTC time (seconds), for the autumn hour
    # "tz": the input's timezone when the file was begun (from _zone, TextFormat.starting)
}


@cache
def _layout(cols: tuple[str, ...]) -> tuple[Header | None, list[Group], list[tuple[int, str]]]:
    """A header's meaning: its zone cell, the counter columns grouped by instance, and the
    columns that are not counter paths (index, text)."""
    header = parse_header(cols[0]) if cols else None
    paths, bad = [], []
    for i, cell in enumerate(cols[1:], 1):
        p = parse_path(cell)
        if p is None:
            bad.append((i, cell))
        else:
            paths.append((i, p))
    return header, group_columns(paths), bad


def _cells(line: str, delim: str) -> list[str]:
    return next(csv.reader([line], delimiter=delim), [])


def _is_header(line: str) -> bool:
    return line.lstrip().lstrip('"').startswith("(PDH-")


def _delim(cols: list[str] | None) -> str:
    header = parse_header(cols[0]) if cols else None
    return header.delimiter if header else ","


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line
    return None


def _looks_like(text: str) -> bool:
    line = _first_line(text)
    return line is not None and _is_header(line) and parse_header(_head_cell(line)) is not None


def _head_cell(line: str) -> str:
    """The first cell of a header line, whatever its delimiter (the cell holds neither)."""
    return _cells(line, "\t" if line.lstrip().lstrip('"')[:9].upper() == "(PDH-TSV " else ",")[0]


def _header_cols(line: str) -> list[str]:
    return _cells(line, "\t" if "(PDH-TSV" in line[:12].upper() else ",")


def _stamp_of(line: str, delim: str) -> str:
    """The time cell of a data line, without the csv module (only the first cell is wanted)."""
    s = line.lstrip()
    if s.startswith('"'):
        end = s.find('"', 1)
        return s[1:end] if end > 0 else s[1:]
    return s.split(delim, 1)[0]


def _learn(st: dict[str, Any], cut: Cut) -> None:
    """What a chunk teaches the next: the header (the last one in it), the time rule once the
    first sample is seen, and the last sample's UTC time. Only the last line's time is read,
    unless it falls in an autumn hour that happens twice (then back to a time that does not)."""
    lines = [ln for ln in cut.text.splitlines() if ln.strip()]
    last_header = max((i for i, ln in enumerate(lines) if _is_header(ln)), default=None)
    if last_header is not None:
        st["cols"] = _header_cols(lines[last_header])
        st["clock"] = st["prev"] = None
        lines = lines[last_header + 1 :]
    if st["cols"] is None or not lines:
        return
    delim = _delim(st["cols"])
    if st["clock"] is None:  # the file's first sample is in this chunk
        first = next(_stamps(lines, delim), None)
        if first is None:
            return
        st["clock"] = _decide(st["cols"], first, st["tz"])
    spec = st["clock"]
    stamps = []
    for t in _stamps(reversed(lines), delim):
        stamps.append(t)
        if not _ambiguous(spec, t):
            break
    if not stamps:
        return
    clock = Clock(spec, st["prev"])
    for t in reversed(stamps):
        clock.utc(t)
    st["prev"] = clock.prev


def _stamps(lines: Iterable[str], delim: str) -> Iterator[datetime]:
    for ln in lines:
        try:
            yield parse_stamp(_stamp_of(ln, delim))
        except RecordRejected:
            continue


def _ambiguous(spec: str, local: datetime) -> bool:
    """Whether ``local`` is within an hour of a time the zone has twice."""
    name = zone_name(spec)
    if name is None:
        return False
    zone = ZoneInfo(name)
    for t in (local, local + _HOUR, local - _HOUR):
        a = t.replace(tzinfo=zone)
        if a.utcoffset() != a.replace(fold=1).utcoffset():
            return True
    return False


_HOUR = timedelta(hours=1)


def _decide(cols: list[str], first: datetime | None, tz: str) -> str:
    return clock_for(parse_header(cols[0]) if cols else None, first, tz)


def decode(chunk: Chunk) -> Decoded:
    """Parse a chunk of PDH CSV lines into one record per sample and counter instance."""
    c = TextChunk(chunk, NORMALISER, **_DEFAULTS)
    if c.skipped is not None:
        return c.quarantine_skipped()
    st, sink, out, text = c.state, c, c.out, c.text
    st["tz"] = st.get("tz") or str(chunk.options.get("timezone") or "UTC")
    cols: list[str] | None = st["cols"]
    spec: str | None = st["clock"]
    clock: Clock | None = None
    if spec is not None:
        clock = Clock(spec, st["prev"])
    layout = _layout(tuple(cols)) if cols else None
    delim = _delim(cols)
    path = chunk.path
    pos = 0
    line_no = chunk.first_line
    for line in io.StringIO(text, newline=""):
        a, pos = pos, pos + len(line)
        this_line = line_no
        line_no += 1
        body = line.rstrip("\r\n")
        if not body.strip():
            continue

        offset = c.offset(a)

        if _is_header(body):
            cols = _header_cols(body)
            layout = _layout(tuple(cols))
            delim = _delim(cols)
            spec, clock = None, None
            for i, cell in layout[2]:
                why = (
                    f"column {i + 1} of the header, {cell!r}, is not a counter path"
                    " (\\\\HOST\\Object(Instance)\\Counter): its values are not shipped"
                )
                quarantine(out, path, this_line, offset, why, body)
            continue
        if layout is None or cols is None:
            out.refused = f"{path}: not a PDH CSV counter log (no (PDH-CSV 4.0) header line)"
            return out
        if c.too_big(this_line, a, a + len(body)):
            continue
        row = _cells(body, delim)
        if len(row) != len(cols):
            why = (
                f"expected {len(cols)} cells (time and {len(cols) - 1} counters), found {len(row)}"
            )
            quarantine(out, path, this_line, offset, why, body)
            continue
        try:
            local = parse_stamp(row[0])
        except RecordRejected as e:
            quarantine(out, path, this_line, offset, str(e), body)
            continue
        if clock is None:
            spec = _decide(cols, local, st["tz"])
            clock = Clock(spec)
        ts = iso(clock.utc(local))
        bad: list[str] = []
        for g in layout[1]:
            counters: dict[str, float] = {}
            for i, name in g.columns:
                try:
                    v = number(row[i])
                except ValueError:
                    bad.append(f"{cols[i]!r}: {row[i].strip()!r}")
                    continue
                if v is not None:
                    counters[name] = v
            if counters:
                rec = {"time": ts, "host": g.host, "object": g.object, "instance": g.instance,
                       "counters": counters}  # fmt: skip
                sink.ship(rec, this_line, offset, body)
        if bad:
            why = "not a number, so not shipped (the line's other values were): " + "; ".join(bad)
            quarantine(out, path, this_line, offset, why, body)
    return out


def _zone(options: dict[str, object]) -> dict[str, Any]:
    """The input's ``timezone`` in the position state from a file's start: ``_learn`` decides
    the time rule from the header and needs it when the header names no zone it knows. A
    file keeps the zone it started with."""
    return {"tz": str(options.get("timezone") or "UTC")}


#: the ``perf_csv`` format
PERF_CSV = TextFormat(
    "perf_csv",
    _looks_like,
    CsvScanner.load,
    decode,
    _learn,
    defaults=_DEFAULTS,
    starting=_zone,
)
