"""Azure RMS usage-log records to ECS events, fast enough to keep up with bulk downloads.

A tenant's usage logs run to millions of records a day, so the per-record path must cost a few
microseconds. The event is made as JSON text, once: everything that depends only on the
``#Fields`` header is decided once per header (``_Layout``); every value that repeats across
records (request type and result, user ids, e-mail addresses, client strings, IP addresses,
file names, templates, dates, paths) becomes pieces of JSON text once, in bounded caches, one
per field (a cache keyed by a combination of fields would see a new key in a large share of
records, and a miss costs more than not caching); the few values that are new in most records
(row ids, times, content ids, publication dates) are checked cheaply and spliced in as they are
when JSON needs no escaping for them. The event as a dict (``bind``) is that JSON parsed, so
there is one mapping, not two kept in step by hand.

What goes where is data: ``mappings/rms/fields.yaml`` (W3C field -> ECS), with
``request_types.yaml``, ``service_principals.yaml`` and ``client_info.yaml`` beside it
(``fieldmap``); how a value is read is ``readers``. What stays code: the rules that join
fields (``@timestamp``, ``event.id``, ``related.*``) and the place each field's pieces take in
the event (checked against the map at load). Hand-written rather than a templating library:
per record the work is one f-string over pieces made once per value, and walking a template
per record would add to the few microseconds a record may cost
(``benchmarks/bench_normalise.py`` measures it).

Records are bound to the header by field name, never by position: Microsoft has added fields
(``admin-action``, ``acting-as-user``) and may add more. A field the map does not know is
kept, raw, under ``azure_rms.<name>``.

ECS 9.4 has no ``log.offset`` (it is a Filebeat field), so the line's byte offset goes to
``azure_rms.log_offset``; ``log.file.path`` is ECS.

For outputs that want the event as msgpack (Fluentd's records; ``msgpack=True``), the same
pieces are packed too, each once per distinct piece of JSON (``_packed``), and put together
into a map beside the JSON: decoding the JSON back and packing it would cost the output more
than normalising did. The JSON stays the one mapping; the msgpack form follows its pieces, and a
test checks it is the same event, member for member and in the same order, for every record.

Enrichment (``shipper.normalise.enrich``; off unless configured) rides on the same caches: the
GeoIP fields of an address are looked up once per distinct address, and ``azure_rms.after_hours``
once per user domain's working hours and minute.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from operator import itemgetter
from typing import Any

import msgspec
import orjson

from shipper.errors import RecordRejected
from shipper.normalise.rms import readers
from shipper.normalise.rms.fieldmap import FieldMap, MappingError, field_map, nest
from shipper.normalise.rms.readers import EMPTY, field_key, parse_date, parse_time
from shipper.sources.base import HeaderFields

__all__ = [
    "DATASET",
    "ECS_VERSION",
    "MODULE",
    "KNOWN_FIELDS",
    "RmsNormaliser",
    "BoundNormaliser",
    "BoundJsonNormaliser",
]

_pack = msgspec.msgpack.Encoder().encode
_MAP = field_map()
DATASET: str = _MAP.constants["event.dataset"]
ECS_VERSION: str = _MAP.constants["ecs.version"]
MODULE: str = _MAP.constants["event.module"]
#: Every field Microsoft documents, in the order of the current 17-field layout.
KNOWN_FIELDS: tuple[str, ...] = _MAP.known

#: A cache that grows past this many entries is emptied (cheaper than LRU bookkeeping). Caches
#: are per field; a tenant-day has a few thousand distinct users, addresses or file names.
CACHE_LIMIT = 8192
#: the msgpack pieces are kept by piece of JSON, of every field at once: their caches may
#: hold this many times ``CACHE_LIMIT``
PACKED_SHARE = 4
#: (member count, the members packed one after the other): a msgpack map without its header
_Packed = tuple[int, bytes]
_K_TIMESTAMP, _K_EVENT, _K_ID, _K_ORIGINAL, _K_USER, _K_SOURCE, _K_RELATED = (
    _pack(k) for k in ("@timestamp", "event", "id", "original", "user", "source", "related")
)
_K_AZURE_RMS, _K_LOG_OFFSET = _pack("azure_rms"), _pack("log_offset")
_MAP_HEADERS = [bytes([0x80 | n]) for n in range(16)]


def _map_header(n: int) -> bytes:
    """msgpack's map header for ``n`` members (fixmap, map 16, map 32)."""
    if n < 16:
        return _MAP_HEADERS[n]
    return b"\xde" + n.to_bytes(2, "big") if n < 1 << 16 else b"\xdf" + n.to_bytes(4, "big")


def _mp_members(obj: dict[str, Any]) -> _Packed:
    """An object's members as msgpack (``_Packed``): the map packed, less its header."""
    n = len(obj)
    return n, _pack(obj)[1 if n < 16 else 3 if n < 1 << 16 else 5 :]


Event = dict[str, Any]
BoundNormaliser = Callable[[list[str], str, int, str], Event]
#: (event.id, @timestamp, the event as JSON, its header fields: see ``Decoded.header_fields``)
BoundJsonNormaliser = Callable[[list[str], str, int, str], tuple[str, str, bytes, HeaderFields]]

#: the fields the per-record function reads by name, in the order it unpacks them
_HOT = (
    "date time row-id request-type user-id result correlation-id content-id owner-email issuer "
    "template-id file-name date-published c-info c-ip admin-action acting-as-user"
).split()
#: readers of fields that go through the generic (top-level members, azure_rms members) pieces
_SIMPLE_READERS: dict[str, Callable[[str], dict[str, Any]]] = {
    "guid": readers.guid_parts,
    "file_name": readers.file_name,
    "flag": readers.flag,
    "email": readers.email,
    "ip": readers.ip,
    "date_published": readers.date_published,
    "identity": lambda raw: {"value": v} if (v := readers.unquote(raw)) else {},
}
_unread = [name for name in _HOT if name not in _MAP.readers] + [
    name
    for name, reader in _MAP.readers.items()
    if name not in _HOT and reader not in _SIMPLE_READERS and reader != "client_info"
]
if _unread:
    raise MappingError(f"rms/fields.yaml: fields {_unread} are missing or have no usable reader")

# "HH:MM" and ":SS" as RMS writes them: "09:14:07" is valid when both halves are in these sets
_HHMM = frozenset(f"{h:02d}:{m:02d}" for h in range(24) for m in range(60))
_SS = frozenset(f":{s:02d}" for s in range(60))
# ASCII spliced into JSON strings as it is (1), or not (0): what JSON escapes, and the space and
# braces (a content-id with them inside its braces needs readers.guid)
_JSON_PLAIN = bytes(0 if b <= 0x20 or b >= 0x7F or b in b'"\\{}' else 1 for b in range(256))


def _members(obj: dict[str, Any]) -> str:
    """``,"key":value,...``: an object's members as JSON text to splice into another object.

    Every cached piece is made here, by ``orjson``, so escaping is always right.
    """
    return "," + orjson.dumps(obj).decode()[1:-1] if obj else ""


def _json_str(value: str) -> str:
    return orjson.dumps(value).decode()


def _objects(places: dict[str, str]) -> str:
    """``{"file": ',"name":"a"'}`` -> ``,"file":{"name":"a"}``: objects from their members."""
    return "".join(f",{_json_str(place)}:{{{text[1:]}}}" for place, text in places.items())


#: per user-id: (``user`` members or None, related.user values, the same as JSON array items,
#: azure_rms members, working-hours calendar)
_UserJson = tuple[str | None, tuple[str, ...], str, str, Any]
#: per e-mail value: owner-email's related.user value (or None), its JSON and azure_rms
#: members; the same for the issuer; the owner's and the issuer's azure_rms members together
#: (the same value in both fields is the common case)
_EmailJson = tuple[str | None, str, str, str | None, str, str, str]
_Related = tuple[tuple[str, str], ...]


class RmsNormaliser:
    """Turns Azure RMS usage-log records into ECS events; one instance per worker process.

    Call ``bind_json(fields)`` once per ``#Fields`` header, then the returned function once per
    record: it gives ``(event.id, @timestamp, JSON bytes, header fields)``, and the event as
    msgpack after them when ``msgpack`` is set. ``bind`` is the same with the event parsed into
    a dict. Caches live on the instance and are shared by
    every header it binds.

    Event identity: ``event.id`` is the ``row-id``, or the ``correlation-id`` when the row-id is
    empty (Microsoft's rule). A record with neither is rejected with ``RecordRejected``: without
    an identity it cannot be deduplicated, so re-downloads would ship it again and again.
    A record whose date or time cannot be parsed is rejected too.

    Request types missing from ``mappings/rms/request_types.yaml`` still ship, with the table's
    ``default`` category/type (``api``/``info``) and ``event.action`` set to the request type.

    ``enrich`` is a ``shipper.normalise.enrich.Enricher`` (GeoIP, working hours), or None;
    ``tags`` and ``labels`` are the input's, added to every event.
    """

    def __init__(
        self,
        keep_original: bool = False,
        enrich: Any = None,
        tags: list[str] | None = None,
        labels: dict[str, str] | None = None,
        msgpack: bool = False,
    ) -> None:
        self.keep_original = keep_original
        self.msgpack = msgpack
        #: msgpack: JSON members text -> the same members packed (see ``_packed``); user
        #: objects; per c-ip, its source and the address for related.ip
        self._packed_members: dict[str, _Packed] = {"": (0, b"")}
        self._packed_users: dict[str, bytes] = {}
        self._packed_ips: dict[str, tuple[_Packed, str | None]] = {}
        self.enrich = enrich
        self._map: FieldMap = _MAP
        self._dates: dict[str, str] = {}
        # JSON text per request type and result, and per value of one field, keyed by the raw
        # value (see the _*_fragments methods)
        self._event_json: dict[tuple[str, str], tuple[str, str, HeaderFields]] = {}
        self._path_json: dict[str, str] = {}
        self._user_json: dict[str, _UserJson] = {}
        self._email_json: dict[str, _EmailJson] = {}
        self._acting_json: dict[str, tuple[_Related, str]] = {}
        self._ip_json: dict[str, tuple[str, bool, str]] = {}
        self._agent_json: dict[str, tuple[str, str]] = {}
        self._file_json: dict[str, tuple[str, str]] = {}
        self._template_json: dict[str, tuple[str, str]] = {}
        self._admin_json: dict[str, tuple[str, str]] = {}
        self._other_json: dict[tuple[str, str], tuple[str, str]] = {}
        self._hours_json: dict[tuple[Any, str], str] = {}
        m = self._map
        #: every event's ``event.dataset``
        self.dataset = str(m.constants["event.dataset"])
        # `"ecs":...,"log":{"file":{"path":` -- the path and two closing braces follow; the
        # input's tags and labels are constants too (see ``shipper.normalise``)
        self._ecs_log = (
            _members(nest({k: v for k, v in m.constants.items() if not k.startswith("event.")}))
            + _members({"tags": tags} if tags else {})
            + _members({"labels": labels} if labels else {})
            + ',"log":{"file":{"path":'
        )
        # the constant event members (every dict on the instance is a bounded cache)
        self._event_head = _members(
            nest({k: v for k, v in m.constants.items() if k.startswith("event.")})["event"]
        )

    # --- cache misses: a value's pieces of JSON, made from the reader's parts and the map ----

    @staticmethod
    def _remember(cache: dict[Any, Any], key: Any, value: Any, share: int = 1) -> Any:
        """``cache[key] = value``, the cache emptied first when it holds ``share`` times
        ``CACHE_LIMIT`` entries."""
        if len(cache) >= share * CACHE_LIMIT:
            cache.clear()
        cache[key] = value
        return value

    def _related(self, field: str, parts: dict[str, Any]) -> _Related:
        """The (value, value as JSON) that ``field`` adds to related.user, each once."""
        names = self._map.related[field]
        if len(names) == 1:  # most fields
            value = parts.get(names[0])
            return () if value is None else ((value, _json_str(value)),)
        found: dict[str, str] = {}
        for name in names:
            value = parts.get(name)
            if value is not None and value not in found:
                found[value] = _json_str(value)
        return tuple(found.items())

    def _event_fragments(self, request: str, result: str) -> tuple[str, str, HeaderFields]:
        """(``event`` members before ``id``, other top-level members such as ``error``, the
        header fields: read back from those two and the map's constants, the only places of the
        event they can be in)."""
        m = self._map
        places = {"event": self._event_head}
        for field, parts in (
            ("request-type", readers.request_type(request, m.request_types, m.default_request)),
            ("result", readers.result(result)),
        ):
            for place, text in m.members(field, parts).items():
                places[place] = places.get(place, "") + text
        head, error = places.pop("event")[1:], _objects(places)
        part = orjson.loads(f'{{"event":{{{head}}}{error}}}')
        const = m.constants
        fields = (
            part["event"].get("outcome"),
            part["event"].get("action"),
            (part.get("log") or {}).get("level", const.get("log.level")),
            (part.get("host") or {}).get("name", const.get("host.name")),
        )
        return self._remember(self._event_json, (request, result), (head, error, fields))

    def _user_fragments(self, raw: str) -> _UserJson:
        """A user-id's pieces (see ``_UserJson``)."""
        m = self._map
        parts = readers.principal(raw, m.principal_ids, m.tenant_services)
        places = m.members("user-id", parts)
        user = places.get("user")
        related = self._related("user-id", parts)
        calendar = None
        if self.enrich is not None and self.enrich.hours:
            calendar = self.enrich.calendar(parts.get("domain"))
        entry = (
            user[1:] if user else None,
            tuple(v for v, _ in related),
            ",".join(q for _, q in related),
            places.get("azure_rms", ""),
            calendar,
        )
        return self._remember(self._user_json, raw, entry)

    def _email_fragments(self, raw: str) -> _EmailJson:
        """An owner-email or issuer's pieces (see ``_EmailJson``)."""
        parts = readers.email(raw)
        members = self._map.members
        # fieldmap allows owner-email and issuer one related.user part each
        (owner, owner_q), *_ = self._related("owner-email", parts) or ((None, ""),)
        (issuer, issuer_q), *_ = self._related("issuer", parts) or ((None, ""),)
        owner_rms = members("owner-email", parts).get("azure_rms", "")
        issuer_rms = members("issuer", parts).get("azure_rms", "")
        entry = (
            owner,
            owner_q,
            owner_rms,
            issuer,
            issuer_q,
            issuer_rms,
            owner_rms + issuer_rms,
        )
        return self._remember(self._email_json, raw, entry)

    def _acting_fragments(self, raw: str) -> tuple[_Related, str]:
        """An acting-as-user's (related.user values and their JSON, ``user`` members)."""
        parts = readers.email(raw)
        user = self._map.members("acting-as-user", parts).get("user")
        entry = (self._related("acting-as-user", parts), user[1:] if user else "")
        return self._remember(self._acting_json, raw, entry)

    def _ip_fragments(self, raw: str) -> tuple[str, bool, str]:
        """c-ip -> (``,"source":{...}`` and, for an address, ``,"related":{"ip":[...]`` with the
        related object left open; whether it is; azure_rms members)."""
        parts = readers.ip(raw)
        places = self._map.members("c-ip", parts)
        source = places.get("source", "")
        address = parts.get("ip")
        if address is not None and self.enrich is not None and self.enrich.geo:
            found = self.enrich.source_fields(address)
            if found:
                source += _members(nest(found))
        near = ',"source":{' + source[1:] + "}" if source else ""
        if address is not None:
            near += ',"related":{"ip":[' + _json_str(address) + "]"
        entry = (near, address is not None, places.get("azure_rms", ""))
        return self._remember(self._ip_json, raw, entry)

    def _fragments(
        self, cache: dict[Any, tuple[str, str]], field: str, raw: str, key: Any = None
    ) -> tuple[str, str]:
        """(top-level members, azure_rms members) of a field's value; each "" when empty."""
        m = self._map
        reader = m.readers[field]
        if reader == "client_info":
            nested = nest(readers.client_info(raw, m.client_info))
            rms = _members(nested.pop("azure_rms", None) or {})
            pair = (_members(nested), rms)
        else:
            places = m.members(field, _SIMPLE_READERS[reader](raw))
            rms = places.pop("azure_rms", "")
            pair = (_objects(places), rms)
        return self._remember(cache, raw if key is None else key, pair)

    def _hours_fragment(self, calendar: Any, ts: str) -> str:
        """``,"after_hours":true|false`` for a calendar and a minute (``ts[:16]``)."""
        late = self.enrich.after_hours(calendar, ts)
        text = ',"after_hours":' + ("true" if late else "false")
        return self._remember(self._hours_json, (calendar, ts[:16]), text)

    def _packed(self, members: str) -> _Packed:
        """``,"a":1,"b":{...}`` (or the same without the first comma) as msgpack members: a
        piece of JSON made once per value is packed once per value too."""
        text = members[1:] if members[:1] == "," else members
        found = _mp_members(orjson.loads(f"{{{text}}}"))
        return self._remember(self._packed_members, members, found, PACKED_SHARE)

    def _packed_near(
        self, user: str | None, c_ip: str, near: str, related_open: bool, related: tuple[str, ...]
    ) -> _Packed:
        """The ``user``, ``source`` and ``related`` members, as ``normalise_json`` completes
        ``near`` from these, packed: user and source once per value, related per record."""
        count, parts = 0, []
        if user is not None:
            found = self._packed_users.get(user)
            if found is None:
                found = _K_USER + _pack(orjson.loads(f"{{{user}}}"))
                self._remember(self._packed_users, user, found, PACKED_SHARE)
            count, parts = 1, [found]
        address = None
        if near:
            ip = self._packed_ips.get(c_ip)
            if ip is None:
                whole = orjson.loads(f"{{{near[1:]}{'}' if related_open else ''}}}")
                source = whole.get("source")
                ip = (
                    (0, b"") if source is None else (1, _K_SOURCE + _pack(source)),
                    whole["related"]["ip"][0] if "related" in whole else None,
                )
                self._remember(self._packed_ips, c_ip, ip, PACKED_SHARE)
            (k, b), address = ip
            count += k
            parts.append(b)
        if address is not None or related:
            link: dict[str, Any] = {}
            if address is not None:
                link["ip"] = [address]
            if related:
                link["user"] = list(related)
            count += 1
            parts += (_K_RELATED, _pack(link))
        return count, b"".join(parts)

    # --- binding ---------------------------------------------------------------------------

    def bind(self, fields: list[str]) -> BoundNormaliser:
        """Like ``bind_json``, but the function returns the event as a dict (the JSON parsed;
        ``event.category`` and ``event.type`` are tuples, as the request-type table has them)."""
        encode = self.bind_json(fields)
        loads = orjson.loads

        def normalise(values: list[str], path: str, offset: int, raw_line: str) -> Event:
            event = loads(encode(values, path, offset, raw_line)[2])
            head = event.get("event")
            if head is not None:
                for key in ("category", "type"):
                    if key in head:
                        head[key] = tuple(head[key])
            return event

        return normalise

    def bind_json(self, fields: list[str]) -> BoundJsonNormaliser:
        """Return the per-record function for records under this ``#Fields`` header: it gives
        ``(event.id, @timestamp, event as JSON, header fields)`` or raises ``RecordRejected``."""
        layout = _Layout(fields)
        pad, getter, extras, others = layout.pad, layout.getter, layout.extras, layout.others
        no_clock = layout.no_clock
        m = self._map

        keep_original = self.keep_original
        hours = self.enrich is not None and self.enrich.hours
        date_get, remember = self._dates.get, self._remember
        hhmm, ss, parse_time_ = _HHMM, _SS, parse_time
        guid, published, fromisoformat = (
            readers.guid,
            readers.date_published,
            datetime.fromisoformat,
        )
        plain = _JSON_PLAIN
        empty = EMPTY
        # azure_rms members of the inline values, from the map
        row_pre = ',"' + m.key("row-id", "value") + '":'
        corr_pre = ',"' + m.key("correlation-id", "value") + '":'
        content_pre = ',"' + m.key("content-id", "value") + '":'
        published_pre = ',"' + m.key("date-published", "value") + '":"'
        row_key, corr_key = _pack(m.key("row-id", "value")), _pack(m.key("correlation-id", "value"))
        headers = _MAP_HEADERS
        members = m.members
        # the caches' get methods (a full cache is cleared, never replaced)
        event_get, event_fragments = self._event_json.get, self._event_fragments
        path_get, path_json, ecs_log = self._path_json.get, self._path_json, self._ecs_log
        user_get, user_fragments = self._user_json.get, self._user_fragments
        email_get, email_fragments = self._email_json.get, self._email_fragments
        acting_get, acting_fragments = self._acting_json.get, self._acting_fragments
        ip_get, ip_fragments = self._ip_json.get, self._ip_fragments
        fragments = self._fragments
        agent_json, admin_json = self._agent_json, self._admin_json
        file_json, template_json = self._file_json, self._template_json
        agent_get, admin_get = agent_json.get, admin_json.get
        file_get, template_get = file_json.get, template_json.get
        other_get, other_json = self._other_json.get, self._other_json
        hours_get, hours_fragment = self._hours_json.get, self._hours_fragment
        packing, packed, pack, loads = self.msgpack, self._packed, _pack, orjson.loads
        pm, mp_members = self._packed_members.get, _mp_members

        def escaped(row_id: str, correlation_id: str, content_id: str) -> tuple[str, str, str]:
            """(event.id inside its quotes, ids, content-id) as JSON, for values with something
            to escape."""
            ids = row_pre + _json_str(row_id) if row_id else ""
            if correlation_id:
                ids += corr_pre + _json_str(correlation_id)
            value = guid(content_id) if content_id else ""
            what = content_pre + _json_str(value) if value else ""
            return _json_str(row_id or correlation_id)[1:-1], ids, what

        def normalise_json(values: list[str], path: str, offset: int, raw_line: str) -> Any:
            record = values
            if pad:
                if no_clock:
                    raise RecordRejected("the #Fields header has no date or no time field")
                record = [*values, ""]
            (
                d,
                t,
                row_id,
                request,
                user_id,
                result,
                correlation_id,
                content_id,
                owner,
                issuer,
                template_id,
                file_name,
                date_published,
                c_info,
                c_ip,
                admin_action,
                acting_as,
            ) = getter(record)

            prefix = date_get(d)
            if prefix is None:
                prefix = remember(self._dates, d, parse_date(d))
            if t[:5] in hhmm and t[5:] in ss:
                ts = f"{prefix}{t}.000Z"
            else:
                ts = prefix + parse_time_(t)

            # from here on an id that is absent (an empty marker) is ""
            # `len() > 2` spares hashing every id: only short values can be empty markers
            if len(row_id) > 2 or row_id not in empty:
                event_id = row_id
                if len(correlation_id) > 2 or correlation_id not in empty:
                    ids = f'{row_pre}"{row_id}"{corr_pre}"{correlation_id}"'
                else:
                    correlation_id = ""
                    ids = f'{row_pre}"{row_id}"'
            elif correlation_id not in empty:
                event_id = correlation_id
                row_id = ""
                ids = f'{corr_pre}"{correlation_id}"'
            else:
                raise RecordRejected(
                    "no row-id and no correlation-id: the record has no identity to dedupe on"
                )

            # values that are new in most records, checked here and never cached
            value = what = ""
            if content_id:
                # readers.guid, inline: the same when the braces hold no space and no brace
                if len(content_id) == 38 and content_id[0] == "{" and content_id[37] == "}":
                    value = content_id[1:37].lower()
                else:
                    value = guid(content_id)
                if value:
                    what = f'{content_pre}"{value}"'
            eid = event_id  # as it goes between quotes in the JSON
            probe = row_id + correlation_id + value  # an empty marker is plain text too
            if not probe.isascii() or 0 in probe.encode().translate(plain):
                eid, ids, what = escaped(row_id, correlation_id, content_id)
            if date_published:
                # readers.date_published, inline: a value fromisoformat takes is JSON as it is
                dp = date_published
                if len(dp) == 19 and dp[10] == "T" and dp[4] == "-" and dp[7] == "-":
                    try:
                        if dp[18].isdigit():
                            fromisoformat(dp)
                            what = f'{what}{published_pre}{dp}"'
                            dp = ""
                    except ValueError:
                        pass
                if dp:
                    what += members("date-published", published(dp)).get("azure_rms", "")
            if template_id:  # a tenant has a few templates
                top, rms_template = template_get(template_id) or fragments(
                    template_json, "template-id", template_id
                )
            else:
                top = rms_template = ""

            head, error, header = event_get((request, result)) or event_fragments(request, result)

            # who: user, related.user (values, and as JSON: rel), azure_rms members
            user, related, rel, rms_user, calendar = user_get(user_id) or user_fragments(user_id)
            rms_owner = rms_issuer = ""
            if acting_as:
                acting, target = acting_get(acting_as) or acting_fragments(acting_as)
                for v, q in acting:
                    if v not in related:
                        related += (v,)
                        rel = f"{rel},{q}" if rel else q
                if target:
                    user = target if user is None else f"{user},{target}"
            if owner:
                entry = email_get(owner) or email_fragments(owner)
                v = entry[0]
                if v is not None and v not in related:
                    related += (v,)
                    rel = f"{rel},{entry[1]}" if rel else entry[1]
                if issuer == owner:  # the same value: its related.user value is in already
                    rms_owner = entry[6]
                    issuer = ""
                else:
                    rms_owner = entry[2]
            if issuer:
                entry = email_get(issuer) or email_fragments(issuer)
                rms_issuer = entry[5]
                v = entry[3]
                if v is not None and v not in related:
                    related += (v,)
                    rel = f"{rel},{entry[4]}" if rel else entry[4]
            # from where: source and related.ip, or azure_rms.c_ip
            if c_ip:
                near, related_open, rms_ip = ip_get(c_ip) or ip_fragments(c_ip)
            else:
                near = rms_ip = ""
                related_open = False
            if packing:  # before near is completed: the user and related parts come apart
                people = self._packed_near(user, c_ip, near, related_open, related)
            if related_open:
                near = f'{near},"user":[{rel}]}}' if rel else near + "}"
            elif rel:
                near = f'{near},"related":{{"user":[{rel}]}}'
            if user is not None:
                near = f',"user":{{{user}}}{near}'

            agent, rms_client = agent_get(c_info) or fragments(agent_json, "c-info", c_info)
            if file_name:
                file, rms_file = file_get(file_name) or fragments(file_json, "file-name", file_name)
            else:
                file = rms_file = ""
            if admin_action:
                more, rms = admin_get(admin_action) or fragments(
                    admin_json, "admin-action", admin_action
                )
                top += more
                what += rms
            if others:
                for i, name in others:
                    raw = record[i]
                    if raw:
                        more, rms = other_get((name, raw)) or fragments(
                            other_json, name, raw, (name, raw)
                        )
                        top += more
                        what += rms
            if extras:
                found = {}
                for i, key in extras:
                    raw = record[i]
                    if raw not in empty:
                        found[key] = raw
                what += _members(found)
            if hours:
                what += hours_get((calendar, ts[:16])) or hours_fragment(calendar, ts)
            where = path_get(path)  # ,"ecs":...,"log":{"file":{"path":...}}
            if where is None:
                where = remember(path_json, path, ecs_log + _json_str(path) + "}}")
            original = ',"original":' + _json_str(raw_line.rstrip("\r\n")) if keep_original else ""
            data = (
                f'{{"@timestamp":"{ts}","event":{{{head},"id":"{eid}"{original}}}'
                f"{where}{error}{near}{agent}{file}{top}"
                f',"azure_rms":{{"log_offset":{offset}{ids}{rms_user}{rms_owner}{rms_issuer}'
                f"{rms_ip}{rms_client}"
                f"{rms_file}{rms_template}{what}}}}}"
            )
            if not packing:
                return event_id, ts, data.encode(), header
            # msgpack: the same pieces, each packed once ((member count, bytes): ``_packed``)
            en, eb = pm(head) or packed(head)
            eb += _K_ID + pack(event_id)
            if original:
                en += 1
                eb += _K_ORIGINAL + pack(raw_line.rstrip("\r\n"))
            wn, wb = pm(where) or packed(where)
            xn, xb = pm(error) or packed(error)
            an, ab = pm(agent) or packed(agent)
            fn_, fb = pm(file) or packed(file)
            tn, tb = pm(top) or packed(top)
            body = [_K_LOG_OFFSET, pack(offset)]
            count = 0
            if row_id:
                count = 1
                body += (row_key, pack(row_id))
            if correlation_id:
                count += 1
                body += (corr_key, pack(correlation_id))
            for piece in (rms_user, rms_owner, rms_issuer, rms_ip, rms_client, rms_file):
                k, b = pm(piece) or packed(piece)
                count += k
                body.append(b)
            k, b = pm(rms_template) or packed(rms_template)
            count += k
            body.append(b)
            if what:
                k, b = mp_members(loads(f"{{{what[1:]}}}"))
                count += k
                body.append(b)
            n = 3 + wn + xn + people[0] + an + fn_ + tn
            count += 1
            record = b"".join(
                (
                    headers[n] if n < 16 else _map_header(n),
                    _K_TIMESTAMP,
                    pack(ts),
                    _K_EVENT,
                    headers[en + 1] if en < 15 else _map_header(en + 1),
                    eb,
                    wb,
                    xb,
                    people[1],
                    ab,
                    fb,
                    tb,
                    _K_AZURE_RMS,
                    headers[count] if count < 16 else _map_header(count),
                    *body,
                )
            )
            return event_id, ts, data.encode(), header, record

        return normalise_json


class _Layout:
    """What a ``#Fields`` header decides: where each known field is, and the unknown ones."""

    __slots__ = ("pad", "getter", "extras", "others", "no_clock")

    def __init__(self, fields: list[str]) -> None:
        names = [f.strip().lower() for f in fields]
        position: dict[str, int] = {}
        for i, name in enumerate(names):
            position.setdefault(name, i)
        missing_index = len(names)  # points at the "" appended to records when fields are absent
        #: True when a field the per-record function reads is absent: records get a "" for it
        self.pad = any(name not in position for name in _HOT)
        #: record -> the values of the fields the per-record function reads, in _HOT order
        self.getter = itemgetter(*(position.get(name, missing_index) for name in _HOT))
        #: (index, field) of each field the map knows beyond _HOT (generic pieces)
        self.others = tuple(
            (i, name)
            for i, name in enumerate(names)
            if name in _MAP.readers and name not in _HOT and position[name] == i
        )
        #: (index, azure_rms key) of each field the map does not know
        self.extras = tuple(
            (i, _extra_key(name))
            for i, name in enumerate(names)
            if name not in _MAP.readers and position[name] == i and name
        )
        self.no_clock = "date" not in position or "time" not in position


def _extra_key(name: str) -> str:
    """azure_rms.* key for a field the map does not know (``x-foo`` -> ``x_foo``)."""
    key = field_key(name)
    return "field_" + key if key in _MAP.own_keys else key


def make(options: dict[str, Any]) -> RmsNormaliser:
    """The ``azure_rms`` normaliser for a chunk's options (see ``shipper.normalise``)."""
    from shipper.normalise import tags_and_labels
    from shipper.normalise.enrich import Enricher

    tags, labels = tags_and_labels(options)
    enrich = Enricher.from_options(options.get("enrich") or {})  # type: ignore[arg-type]
    msgpack = bool(options.get("msgpack"))
    return RmsNormaliser(bool(options.get("keep_original")), enrich, tags, labels, msgpack)
