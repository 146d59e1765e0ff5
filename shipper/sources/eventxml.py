"""Windows event XML: ``wevtutil qe /f:xml``, Event Viewer "Save as XML", rendered XML.

All three are runs of ``<Event>`` elements: wevtutil writes them back to back with no root
element (so the file as a whole is not XML), Event Viewer wraps them in ``<Events>``, and
``/f:RenderedXml`` adds ``<RenderingInfo>`` with the message and level/task/opcode/keyword
names. Chunks are therefore cut after the last ``</Event>`` in a block and each event is parsed
on its own: a broken event costs only itself, and the root (or its absence) never matters.

The same ``parse_event`` reads the records of ``.evtx`` files (rendered to XML by the ``evtx``
package), so a record ships identically from either.

Parsing uses the standard library's expat, which refuses external entities and (from expat
2.4) bounds entity expansion, so an export cannot make the parser fetch or explode anything.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from shipper.errors import RecordRejected
from shipper.sources.base import Chunk, Decoded
from shipper.sources.limits import HEAD
from shipper.sources.text import TextChunk, TextFormat, clean
from shipper.sources.wintime import iso_utc

_START = re.compile(r"<Event[\s>]")
_END = "</Event>"
_SNIFF = re.compile(r"^\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<Events?[\s>]", re.S)


_LOCAL: dict[str, str] = {}


def _local(tag: str) -> str:
    """Tag name without its namespace (memoised: exports repeat a few dozen tag names)."""
    name = _LOCAL.get(tag)
    if name is None:
        name = tag.rpartition("}")[2] if tag[:1] == "{" else tag
        if len(_LOCAL) > 10000:
            _LOCAL.clear()
        _LOCAL[tag] = name
    return name


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)  # the common case; int() ignores surrounding whitespace itself
    except ValueError:
        pass
    value = value.strip()
    try:
        return int(value, 16) if value[:2].lower() == "0x" else None
    except ValueError:
        return None


def _guid(value: str | None) -> str | None:
    if not value:
        return None
    return "{" + value.strip("{} ").lower() + "}"


def _text(elem: ET.Element) -> str:
    if len(elem):
        return "".join(elem.itertext())
    return elem.text or ""


#: System children whose text is a number / a string, by local name -> record key
_SYSTEM_INT = {
    "EventRecordID": "record_id",
    "Level": "level",
    "Task": "task",
    "Opcode": "opcode",
    "Keywords": "keywords",
    "Version": "version",
}
_SYSTEM_STR = {"Channel": "channel", "Computer": "computer"}


def _system(elem: ET.Element, rec: dict[str, Any]) -> None:
    local = _LOCAL
    for child in elem:
        tag = child.tag
        name = local.get(tag) or _local(tag)
        key = _SYSTEM_INT.get(name)
        if key is not None:
            rec[key] = _int(child.text)
            continue
        key = _SYSTEM_STR.get(name)
        if key is not None:
            rec[key] = child.text
        elif name == "Provider":
            get = child.get
            rec["provider"] = get("Name") or get("EventSourceName")
            rec["provider_guid"] = _guid(get("Guid"))
        elif name == "EventID":
            rec["event_id"] = (child.text or "").strip()
        elif name == "TimeCreated":
            st = child.get("SystemTime")
            if st:
                rec["time"] = iso_utc(st)
        elif name == "Execution":
            rec["pid"] = _int(child.get("ProcessID"))
            rec["tid"] = _int(child.get("ThreadID"))
        elif name == "Security":
            rec["user_sid"] = child.get("UserID")
        elif name == "Correlation":
            rec["activity_id"] = _guid(child.get("ActivityID"))
            rec["related_activity_id"] = _guid(child.get("RelatedActivityID"))


def _event_data(elem: ET.Element) -> dict[str, str]:
    data: dict[str, str] = {}
    unnamed = 0
    local = _LOCAL
    for child in elem:
        tag = child.tag
        name = local.get(tag) or _local(tag)
        if name == "Data":
            key = child.get("Name")
            value = "".join(child.itertext()) if len(child) else child.text
            if not key:
                unnamed += 1
                key = f"param{unnamed}"
            if value:
                data[key] = value
        elif name == "Binary":
            value = _text(child)
            if value:
                data["Binary"] = value
    return data


def _user_data(elem: ET.Element) -> dict[str, str] | None:
    for root in elem:  # UserData holds one provider-defined element
        out = {"xml_name": _local(root.tag)}
        for child in root:
            value = _text(child)
            if value:
                out[_local(child.tag)] = value
        return out
    return None


def _rendering(elem: ET.Element, rec: dict[str, Any]) -> None:
    for child in elem:
        name = _local(child.tag)
        if name == "Message":
            rec["message"] = _text(child)
        elif name == "Level" and child.text:
            rec["level_name"] = child.text
        elif name == "Task" and child.text:
            rec["task_name"] = child.text
        elif name == "Opcode" and child.text:
            rec["opcode_name"] = child.text
        elif name == "Keywords":
            names = [k.text for k in child if k.text]
            if names:
                rec["keyword_names"] = names


def parse_event(elem: ET.Element) -> dict[str, Any]:
    """An ``<Event>`` element as the common Windows record dict (see ``normalise.winlog``)."""
    rec: dict[str, Any] = {}
    local = _LOCAL
    for child in elem:
        tag = child.tag
        name = local.get(tag) or _local(tag)
        if name == "System":
            _system(child, rec)
        elif name == "EventData":
            rec["event_data"] = _event_data(child)
        elif name == "UserData":
            rec["user_data"] = _user_data(child)
        elif name == "RenderingInfo":
            _rendering(child, rec)
    return rec


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def parse_event_xml(text: str | bytes) -> dict[str, Any]:
    """Parse one ``<Event>``; raises ``ET.ParseError`` when it is not well-formed.

    Control characters are not allowed in XML, yet renderers (the evtx package, some
    exporters) copy them raw out of binary strings; such a record is retried with each one
    written as ``\\xNN`` rather than lost. Undecodable bytes become U+FFFD.
    """
    try:
        return parse_event(ET.fromstring(text))
    except UnicodeEncodeError:
        # bytes that were not valid in the file's encoding (kept as lone surrogates by the
        # lossless decode): they become U+FFFD rather than costing the record
        return parse_event_xml(clean(text))  # type: ignore[arg-type]
    except ET.ParseError:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        fixed = _CONTROL.sub(_escape_control, text)
        if fixed == text:
            raise
        return parse_event(ET.fromstring(fixed))


def _escape_control(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


class XmlScanner:
    """Record ends (just past each ``</Event>``), fed piece by piece (see ``text.Scanner``).

    The only state is the last few characters of the previous piece, in case a ``</Event>``
    straddles two pieces."""

    __slots__ = ("tail",)

    def __init__(self, tail: str = "") -> None:
        self.tail = tail

    @classmethod
    def load(cls, d: dict[str, Any]) -> XmlScanner:
        return cls(d.get("tail", ""))

    def save(self) -> dict[str, Any]:
        return {"tail": self.tail}

    def boundary_state(self) -> dict[str, Any]:
        return {}

    def lead(self, text: str) -> int:
        m = _START.search(text)
        return m.start() if m else 0

    def feed(self, text: str) -> list[int]:
        tail = self.tail
        both = tail + text if tail else text
        ends = []
        i = both.find(_END)
        while i >= 0:
            ends.append(i + len(_END) - len(tail))
            i = both.find(_END, i + len(_END))
        self.tail = both[-(len(_END) - 1) :]
        return ends


def decode(chunk: Chunk) -> Decoded:
    """Parse and normalise every ``<Event>`` in the chunk; a malformed one is quarantined.

    An event cut short (an ``<Event`` whose ``</Event>`` never comes before the next event
    starts) is quarantined on its own and the event after it is read as usual; so is what is
    left of an event when the file ends inside it.
    """
    c = TextChunk(chunk, line=1)
    if c.skipped is not None:
        return c.quarantine_skipped()
    text, at, reject = c.text, c.at, c.reject
    lines = _Lines(text, chunk.first_line)
    pos = 0
    while True:
        m = _START.search(text, pos)
        stray = text.find(_END, pos, m.start() if m else len(text))
        if stray >= 0:  # an event's end without its beginning (its start tag was damaged)
            why = "malformed event XML: </Event> without <Event>"
            piece = text[pos : stray + len(_END)].strip()
            reject(lines(pos), at(pos), why, piece[-HEAD:])
        if not m:
            break
        s = m.start()
        e = text.find(_END, s)
        if e < 0:
            if text[s:].strip():  # the file ends inside this event
                why = "the file ends inside this event"
                reject(lines(s), at(s), why, text[s : s + HEAD])
            break
        e += len(_END)
        later = _last_start(text, s + 1, e)
        if later > s:  # an event cut short before the next one began
            why = "malformed event XML: no </Event> before the next <Event>"
            reject(lines(s), at(s), why, text[s:later][:HEAD])
            s = later
        line = lines(s)
        pos = e
        if c.too_big(line, s, e):
            continue
        fragment = text[s:e]
        try:
            rec = parse_event_xml(fragment)
        except ET.ParseError as err:
            reject(line, c.offset(s), f"malformed event XML: {err}", fragment)
        except RecordRejected as err:  # e.g. a SystemTime that is not a time
            reject(line, c.offset(s), str(err), fragment)
        else:
            c.ship(rec, line, c.offset(s), fragment)
    return c.out


def _last_start(text: str, lo: int, hi: int) -> int:
    """Where the last ``<Event`` start between ``lo`` and ``hi`` is, or -1."""
    i = text.rfind("<Event", lo, hi)
    while i >= 0:
        if _START.match(text, i):
            return i
        i = text.rfind("<Event", lo, i)
    return -1


class _Lines:
    """Line numbers of indices visited in order (counting only the text since the last)."""

    __slots__ = ("text", "i", "line")

    def __init__(self, text: str, first: int) -> None:
        self.text, self.i, self.line = text, 0, first

    def __call__(self, i: int) -> int:
        if i >= self.i:
            self.line += self.text.count("\n", self.i, i)
        else:
            self.line -= self.text.count("\n", i, self.i)
        self.i = i
        return self.line


#: the ``event_xml`` format
EVENT_XML = TextFormat(
    "event_xml",
    lambda text: bool(_SNIFF.match(text)),
    XmlScanner.load,
    decode,
    defaults={"line": 1},
)
