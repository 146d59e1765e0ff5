"""Azure RMS usage-log records to ECS events, fast enough to keep up with bulk downloads.

A tenant's usage logs run to millions of records a day, so the per-record path must cost a few
microseconds. Everything that depends only on the ``#Fields`` header is decided once, in
``RmsNormaliser.bind``; everything that repeats across records (user ids, client strings, IP
addresses, dates, file names, request types) is parsed once and kept in bounded caches, one per
field: a cache keyed by a combination of fields would see a new key in a large share of records,
and a miss costs more than not caching. Values that are new in most records (row ids, times,
content ids, publication dates) are checked cheaply on every record and never cached. Cached
pieces are immutable (tuples, strings) or are copied before they go into an event, so a caller
that changes an event never changes the next one.

Records are bound to the header by field name, never by position: Microsoft has added fields
(``admin-action``, ``acting-as-user``) and may add more. A field this module does not know is
kept, raw, under ``azure_rms.<name>``.

ECS 9.4 has no ``log.offset`` (it is a Filebeat field), so the line's byte offset goes to
``azure_rms.log_offset``; ``log.file.path`` is ECS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import date, datetime
from operator import itemgetter
from typing import Any

import orjson

from shipper.errors import RecordRejected
from shipper.mappings import load_yaml

__all__ = [
    "DATASET",
    "ECS_VERSION",
    "MODULE",
    "KNOWN_FIELDS",
    "RmsNormaliser",
    "BoundNormaliser",
    "BoundJsonNormaliser",
]

DATASET = "azure_rms.usage"
ECS_VERSION = "9.4.0"
MODULE = "azure_rms"

#: Every field Microsoft documents, in the order of the current 17-field layout.
KNOWN_FIELDS: tuple[str, ...] = (
    "date",
    "time",
    "row-id",
    "request-type",
    "user-id",
    "result",
    "correlation-id",
    "content-id",
    "owner-email",
    "issuer",
    "template-id",
    "file-name",
    "date-published",
    "c-info",
    "c-ip",
    "admin-action",
    "acting-as-user",
)

#: A cache that grows past this many entries is emptied (cheaper than LRU bookkeeping). Caches
#: are per field; a tenant-day has a few thousand distinct users, addresses or file names.
CACHE_LIMIT = 8192

Event = dict[str, Any]
BoundNormaliser = Callable[[list[str], str, int, str], Event]
#: (event.id, @timestamp, the event as JSON)
BoundJsonNormaliser = Callable[[list[str], str, int, str], tuple[str, str, bytes]]

_EMPTY = frozenset(("", "''", "-", "'-'", '""'))
_ADMIN_ACTION = {"true": True, "false": False, "1": True, "0": False}
# admin-action as written -> bool, for the spellings seen in practice (others take the slow path)
_ADMIN_ACTION_FAST = {
    **_ADMIN_ACTION,
    **{k.capitalize(): v for k, v in _ADMIN_ACTION.items()},
    **{k.upper(): v for k, v in _ADMIN_ACTION.items()},
}
_OS_TYPES = {
    "windows": "windows",
    "macos": "macos",
    "mac os x": "macos",
    "osx": "macos",
    "ios": "ios",
    "ipados": "ios",
    "android": "android",
    "linux": "linux",
}
# c-info keys -> (target, key); target "ua", "os" or "client"
_CINFO_KEYS = {
    "version": ("client", "sdk_version"),
    "appname": ("ua", "name"),
    "appversion": ("ua", "version"),
    "apparch": ("client", "app_arch"),
    "osname": ("os", "name"),
    "osversion": ("os", "version"),
    "osarch": ("client", "os_arch"),
}
_US_DATETIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y")

# Cached "nothing here" values: truthy, so the hot path can test the cache hit with `is None`.
_NO_USER: tuple[None, tuple[str, ...], None] = (None, (), None)
_NO_UA: tuple[None, None, None] = (None, None, None)


def _unquote(value: str) -> str:
    """Strip surrounding whitespace and the single quotes RMS puts around some values."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1].strip()
    return "" if value in _EMPTY else value


def _field_key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


#: azure_rms.* keys this module fills itself; an unknown field never overwrites one of them.
_OWN_KEYS = frozenset(
    (
        "log_offset row_id correlation_id principal owner_email issuer c_ip client content_id "
        "template_id date_published date_published_raw admin_action admin_action_raw"
    ).split()
)


def _extra_key(name: str) -> str:
    """azure_rms.* key for a field this module does not know (``x-foo`` -> ``x_foo``)."""
    key = _field_key(name)
    return "field_" + key if key in _OWN_KEYS else key


# --- parsers for the cache-miss path (each runs once per distinct value) -----------------------


def _parse_date(raw: str) -> str:
    """``2024-03-04`` -> ``2024-03-04T`` (the timestamp's prefix)."""
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-" and raw.isascii():
        try:
            date.fromisoformat(raw)
        except ValueError:
            pass
        else:
            return raw + "T"
    raise RecordRejected(f"unparseable date {raw!r}")


def _parse_time(raw: str) -> str:
    """``21:59:28`` -> ``21:59:28.000Z``; fractions keep their digits (3 to 9 of them)."""
    hms, dot, frac = raw.partition(".")
    parts = hms.split(":")
    ok = len(parts) == 3 and all(1 <= len(p) <= 2 and p.isascii() and p.isdigit() for p in parts)
    if ok and dot:
        ok = bool(frac) and frac.isascii() and frac.isdigit()
    if ok:
        h, m, s = (int(p) for p in parts)
        ok = h <= 23 and m <= 59 and s <= 59
    if not ok:
        raise RecordRejected(f"unparseable time {raw!r}")
    frac = frac.ljust(3, "0")[:9] if dot else "000"
    return f"{h:02d}:{m:02d}:{s:02d}.{frac}Z"


# "HH:MM" and ":SS" as RMS writes them: "09:14:07" is valid when both halves are in these sets
_HHMM = frozenset(f"{h:02d}:{m:02d}" for h in range(24) for m in range(60))
_SS = frozenset(f":{s:02d}" for s in range(60))


def _clock(raw: str) -> str:
    """``_parse_time`` with the common ``HH:MM:SS`` checked by two set lookups, not parsed."""
    if raw[:5] in _HHMM and raw[5:] in _SS:
        return raw + ".000Z"
    return _parse_time(raw)


def _parse_principal(
    raw: str, ids: dict[str, str], tenant_services: dict[str, str]
) -> tuple[dict[str, str] | None, tuple[str, ...], dict[str, str] | None]:
    """user-id -> (user fields, related.user values, azure_rms.principal fields)."""
    value = _unquote(raw)
    if not value:
        return _NO_USER
    kind = ids.get(value.lower())
    if kind is not None:
        return {"id": value, "name": value}, (value,), {"type": kind}
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return {"id": value, "name": value}, (value,), {"type": "user"}
    kind = tenant_services.get(local.lower())
    if kind is not None and domain.lower().endswith(".aadrm.com"):
        principal = {"type": kind}
        labels = domain.lower().split(".")
        principal["tenant_id"] = labels[0].strip("{}")
        if len(labels) >= 5 and labels[1] == "rms":
            principal["region"] = labels[2]
        return {"id": value, "name": local, "domain": domain}, (value, local), principal
    user = {"id": value, "email": value, "name": local, "domain": domain}
    return user, (value, local), {"type": "user"}


def _parse_email(raw: str) -> tuple[str | None, str | None, str | None]:
    """owner-email / issuer / acting-as-user -> (value, local part, domain); parts None if no @."""
    value = _unquote(raw)
    if not value:
        return (None, None, None)
    local, at, domain = value.rpartition("@")
    if at and local and domain:
        return (value, local, domain)
    return (value, None, None)


def _parse_cinfo(
    raw: str,
) -> tuple[dict[str, str] | None, dict[str, str] | None, dict[str, str] | None]:
    """c-info -> (user_agent fields without os, user_agent.os fields, azure_rms.client fields).

    ``'MSIPC;version=1.0.623.47;AppName=WINWORD.EXE;AppVersion=15.0.4753.1000;AppArch=x86;
    OSName=Windows;OSVersion=6.1.7601;OSArch=amd64'``: the first item names the RMS client SDK,
    the rest are ``key=value`` pairs. Keys nobody documented go to ``azure_rms.client.<key>``.
    """
    value = _unquote(raw)
    if not value:
        return _NO_UA
    ua: dict[str, str] = {"original": value}
    os: dict[str, str] = {}
    client: dict[str, str] = {}
    targets = {"ua": ua, "os": os, "client": client}
    items = value.split(";")
    if "=" not in items[0]:
        sdk = items.pop(0).strip()
        if sdk:
            client["sdk_name"] = sdk
    for item in items:
        key, eq, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if not eq or not key or not val:
            continue
        target, name = _CINFO_KEYS.get(key.lower(), ("client", _field_key(key)))
        targets[target].setdefault(name, val)
    if "name" in os:
        if "version" in os:
            os["full"] = f"{os['name']} {os['version']}"
        os_type = _OS_TYPES.get(os["name"].lower())
        if os_type:
            os["type"] = os_type
    return ua, os or None, client or None


def _parse_ip(raw: str) -> tuple[str | None, str | None]:
    """c-ip -> (valid address for source.ip, or None; raw value kept when not an address)."""
    value = _unquote(raw)
    if not value:
        return (None, None)
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return (None, value)
    return (value, None)


def _parse_file_name(raw: str) -> dict[str, str]:
    """file-name -> file fields: name, extension (no dot, case kept), path if one was given."""
    value = _unquote(raw)
    if not value:
        return {}
    name = value.replace("\\", "/").rpartition("/")[2] or value
    file = {"name": name}
    stem, dot, ext = name.rpartition(".")
    if dot and stem.strip() and ext and " " not in ext:
        file["extension"] = ext
    if name != value:
        file["path"] = value
    return file


def _parse_guid(raw: str) -> str:
    """``{1C3FE7A9-...}`` -> ``1c3fe7a9-...``; "" when empty."""
    return _unquote(raw).strip("{}").strip().lower()


def _parse_admin_action(raw: str) -> bool | str:
    """admin-action -> True/False; an unexpected spelling comes back as text ("" when empty)."""
    text = _unquote(raw)
    return _ADMIN_ACTION.get(text.lower(), text)


def _parse_date_published(raw: str) -> tuple[str, str] | tuple[()]:
    """date-published -> ("date_published", ISO 8601 as given) or ("date_published_raw", raw)."""
    value = _unquote(raw)
    if not value:
        return ()
    iso = value[:10] + "T" + value[11:] if len(value) > 10 and value[10] == " " else value
    if len(iso) >= 10 and iso[4] == "-" and iso[7] == "-":
        try:
            datetime.fromisoformat(iso[:-1] + "+00:00" if iso.endswith("Z") else iso)
        except ValueError:
            pass
        else:
            return ("date_published", iso)
    for fmt in _US_DATETIME_FORMATS:
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        text = parsed.date().isoformat() if fmt == "%m/%d/%Y" else parsed.isoformat()
        return ("date_published", text)
    return ("date_published_raw", value)


def _load_request_types() -> tuple[dict[str, tuple[tuple[str, ...], tuple[str, ...]]], Any]:
    data = load_yaml("rms/request_types.yaml")
    table = {
        name.lower(): (tuple(spec["category"]), tuple(spec["type"]))
        for name, spec in data["request_types"].items()
    }
    default = data.get("default")
    fallback = (tuple(default["category"]), tuple(default["type"])) if default else None
    return table, fallback


def _load_service_principals() -> tuple[dict[str, str], dict[str, str]]:
    data = load_yaml("rms/service_principals.yaml") or {}
    ids = {k.lower(): v["type"] for k, v in (data.get("ids") or {}).items()}
    services = {k.lower(): v["type"] for k, v in (data.get("tenant_services") or {}).items()}
    return ids, services


def _members(obj: dict[str, Any]) -> str:
    """``,"key":value,...``: an object's members as JSON text to splice into another object.

    Everything cached for ``bind_json`` is made here, by ``orjson``, so escaping is always right.
    """
    return "," + orjson.dumps(obj).decode()[1:-1] if obj else ""


def _json_str(value: str) -> str:
    return orjson.dumps(value).decode()


#: bind_json, per user-id: (``user`` members or None, related.user values, the same as JSON
#: array items, ``,"principal":{...}`` or "")
_UserJson = tuple[str | None, tuple[str, ...], str, str]
#: bind_json, per e-mail value: (value or None, local part or None, value as JSON, local part as
#: JSON, user.target as JSON, ``,"owner_email":...``, ``,"issuer":...``, both of them)
_EmailJson = tuple[str | None, str | None, str, str, str, str, str, str]
_NO_USER_JSON: _UserJson = (None, (), "", "")
_NO_EMAIL_JSON: _EmailJson = (None, None, "", "", "", "", "", "")
# ASCII that bind_json puts in JSON strings as it is (1), or not (0): what JSON escapes, and the
# space and braces (a content-id with them inside its braces needs _parse_guid)
_JSON_PLAIN = bytes(0 if b <= 0x20 or b >= 0x7F or b in b'"\\{}' else 1 for b in range(256))
# `"ecs":...,"log":{"file":{"path":` -- the path and two closing braces follow
_ECS_LOG = _members({"ecs": {"version": ECS_VERSION}}) + ',"log":{"file":{"path":'


class RmsNormaliser:
    """Turns Azure RMS usage-log records into ECS events; one instance per worker process.

    Call ``bind(fields)`` once per ``#Fields`` header, then the returned function once per
    record. Caches live on the instance and are shared by every header it binds. ``bind_json``
    is the same with the event serialised: the returned function gives ``(event.id, @timestamp,
    JSON bytes)``, and ``orjson.loads`` of the bytes equals what ``bind`` returns.

    Event identity: ``event.id`` is the ``row-id``, or the ``correlation-id`` when the row-id is
    empty (Microsoft's rule). A record with neither is rejected with ``RecordRejected``: without
    an identity it cannot be deduplicated, so re-downloads would ship it again and again.
    A record whose date or time cannot be parsed is rejected too.

    Request types missing from ``mappings/rms/request_types.yaml`` still ship, with the table's
    ``default`` category/type (``api``/``info``) and ``event.action`` set to the request type.
    """

    def __init__(self, keep_original: bool = False) -> None:
        self.keep_original = keep_original
        self._request_types, self._default_request = _load_request_types()
        self._principal_ids, self._tenant_services = _load_service_principals()
        self._dates: dict[str, str] = {}
        self._events: dict[tuple[str, str], tuple[dict[str, Any], dict[str, str] | None]] = {}
        self._users: dict[str, tuple[Any, tuple[str, ...], Any]] = {}
        self._emails: dict[str, tuple[str | None, str | None, str | None]] = {}
        self._agents: dict[str, tuple[Any, Any, Any]] = {}
        self._ips: dict[str, tuple[str | None, str | None]] = {}
        self._files: dict[str, dict[str, str]] = {}
        # bind_json: JSON text per request type and result, and per value of one field, keyed
        # by the raw value (see the _*_json methods)
        self._event_json: dict[tuple[str, str], tuple[str, str]] = {}
        self._path_json: dict[str, str] = {}
        self._user_json: dict[str, _UserJson] = {}
        self._email_json: dict[str, _EmailJson] = {}
        self._ip_json: dict[str, tuple[str, str]] = {}
        self._agent_json: dict[str, tuple[str, str]] = {}
        self._file_json: dict[str, str] = {}
        self._template_json: dict[str, str] = {}
        self._admin_json: dict[str, tuple[str, str]] = {}

    # --- cache misses ----------------------------------------------------------------------

    @staticmethod
    def _remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
        if len(cache) >= CACHE_LIMIT:
            cache.clear()
        cache[key] = value
        return value

    def _event_template(
        self, request: str, result: str
    ) -> tuple[dict[str, Any], dict[str, str] | None]:
        """(``event`` fields that depend only on request-type and result, ``error`` or None)."""
        action = _unquote(request)
        event: dict[str, Any] = {"kind": "event", "module": MODULE, "dataset": DATASET}
        if action:
            event["action"] = action
        pair = self._request_types.get(action.lower()) or self._default_request
        if pair is not None:
            event["category"], event["type"] = pair
        text = _unquote(result)
        error = None
        if not text:
            event["outcome"] = "unknown"
        elif text.lower() == "success":
            event["outcome"] = "success"
        else:
            event["outcome"] = "failure"
            error = {"code": text, "message": text}
        return self._remember(self._events, (request, result), (event, error))

    def _event_fragments(self, request: str, result: str) -> tuple[str, str]:
        """bind_json: (``event`` members before ``id``, ``,"error":{...}`` or "")."""
        key = (request, result)
        event, error = self._events.get(key) or self._event_template(request, result)
        pair = (_members(event)[1:], _members({"error": error}) if error else "")
        return self._remember(self._event_json, key, pair)

    # --- fillers: put one group of fields into an event (doc) and its azure_rms (rms) --------
    # ``bind`` calls them per record; ``bind_json`` has its own pieces of JSON text per value of
    # one field (the _*_fragment(s) methods), and calls _fill_agent and _fill_admin on an empty
    # event through _fragments.

    def _fill_who(
        self, doc: Event, rms: dict[str, Any], user_id: str, acting_as: str, owner: str, issuer: str
    ) -> list[str]:
        """user, azure_rms.principal/owner_email/issuer; returns the related.user values."""
        users, emails, remember = self._users, self._emails, self._remember
        principal = users.get(user_id)
        if principal is None:
            principal = remember(
                users,
                user_id,
                _parse_principal(user_id, self._principal_ids, self._tenant_services),
            )
        related = list(principal[1])
        if principal[0] is not None:
            doc["user"] = user = principal[0].copy()
            rms["principal"] = principal[2].copy()
        else:
            user = None
        if acting_as:
            target = emails.get(acting_as)
            if target is None:
                target = remember(emails, acting_as, _parse_email(acting_as))
            if target[0] is not None:
                if target[0] not in related:
                    related.append(target[0])
                if target[1] is not None:
                    sub = {"email": target[0], "name": target[1], "domain": target[2]}
                    if target[1] not in related:
                        related.append(target[1])
                else:
                    sub = {"name": target[0]}
                if user is None:
                    doc["user"] = user = {}
                user["target"] = sub
        if owner:
            who = emails.get(owner)
            if who is None:
                who = remember(emails, owner, _parse_email(owner))
            if who[0] is not None:
                rms["owner_email"] = who[0]
                if who[0] not in related:
                    related.append(who[0])
        if issuer:
            who = emails.get(issuer)
            if who is None:
                who = remember(emails, issuer, _parse_email(issuer))
            if who[0] is not None:
                rms["issuer"] = who[0]
                if who[1] is not None and who[0] not in related:
                    related.append(who[0])
        return related

    def _fill_ip(self, doc: Event, rms: dict[str, Any], c_ip: str) -> None:
        """source.ip and related.ip, or azure_rms.c_ip when the value is not an address."""
        ip = self._ips.get(c_ip)
        if ip is None:
            ip = self._remember(self._ips, c_ip, _parse_ip(c_ip))
        if ip[0] is not None:
            doc["source"] = {"ip": ip[0]}
            doc["related"] = {"ip": [ip[0]]}
        elif ip[1] is not None:
            rms["c_ip"] = ip[1]

    def _fill_people(
        self,
        doc: Event,
        rms: dict[str, Any],
        user_id: str,
        acting_as: str,
        owner: str,
        issuer: str,
        c_ip: str,
    ) -> None:
        """Who and from where: _fill_who, _fill_ip, and related.user next to related.ip."""
        related = self._fill_who(doc, rms, user_id, acting_as, owner, issuer)
        if c_ip:
            self._fill_ip(doc, rms, c_ip)
        if related:
            if "related" in doc:
                doc["related"]["user"] = related
            else:
                doc["related"] = {"user": related}

    def _fill_agent(self, doc: Event, rms: dict[str, Any], c_info: str) -> None:
        """user_agent (with os) and azure_rms.client."""
        agent = self._agents.get(c_info)
        if agent is None:
            agent = self._remember(self._agents, c_info, _parse_cinfo(c_info))
        if agent[0] is not None:
            doc["user_agent"] = ua = agent[0].copy()
            if agent[1] is not None:
                ua["os"] = agent[1].copy()
            if agent[2] is not None:
                rms["client"] = agent[2].copy()

    def _fill_what(
        self,
        doc: Event,
        rms: dict[str, Any],
        file_name: str,
        content_id: str,
        template_id: str,
        date_published: str,
    ) -> None:
        """file, azure_rms.content_id/template_id/date_published.

        Content ids and publication dates are per document: parsed every time, not cached.
        """
        if file_name:
            file = self._files.get(file_name)
            if file is None:
                file = self._remember(self._files, file_name, _parse_file_name(file_name))
            if file:
                doc["file"] = file.copy()
        if content_id:
            guid = _parse_guid(content_id)
            if guid:
                rms["content_id"] = guid
        if template_id:
            guid = _parse_guid(template_id)
            if guid:
                rms["template_id"] = guid
        if date_published:
            pub = _parse_date_published(date_published)
            if pub:
                rms[pub[0]] = pub[1]

    @staticmethod
    def _fill_admin(doc: Event, rms: dict[str, Any], admin_action: str) -> None:
        """azure_rms.admin_action, or admin_action_raw for an unexpected spelling."""
        flag = _ADMIN_ACTION_FAST.get(admin_action)
        if flag is None:
            flag = _parse_admin_action(admin_action)
        if flag is True or flag is False:
            rms["admin_action"] = flag
        elif flag:
            rms["admin_action_raw"] = flag

    def _fragments(
        self, cache: dict[Any, tuple[str, str]], key: Any, fill: Any, *raw: str
    ) -> tuple[str, str]:
        """bind_json: what ``fill`` puts in an event, as (top-level members, azure_rms members).

        Each is ``,"key":value...`` JSON text, or "" when the group adds nothing there.
        """
        doc: Event = {}
        rms: dict[str, Any] = {}
        fill(doc, rms, *raw)
        return self._remember(cache, key, (_members(doc), _members(rms)))

    def _user_fragments(self, raw: str) -> _UserJson:
        """bind_json: a user-id's pieces (see ``_UserJson``)."""
        user, related, principal = _parse_principal(raw, self._principal_ids, self._tenant_services)
        if user is None:
            entry = _NO_USER_JSON
        else:
            entry = (
                _members(user)[1:],
                related,
                ",".join(_json_str(value) for value in related),
                _members({"principal": principal}),
            )
        return self._remember(self._user_json, raw, entry)

    def _email_fragments(self, raw: str) -> _EmailJson:
        """bind_json: an owner-email, issuer or acting-as-user's pieces (see ``_EmailJson``)."""
        value, local, domain = _parse_email(raw)
        if value is None:
            entry = _NO_EMAIL_JSON
        else:
            quoted = _json_str(value)
            if local is not None:
                target = {"email": value, "name": local, "domain": domain}
                quoted_local = _json_str(local)
            else:
                target = {"name": value}
                quoted_local = ""
            entry = (
                value,
                local,
                quoted,
                quoted_local,
                orjson.dumps(target).decode(),
                ',"owner_email":' + quoted,
                ',"issuer":' + quoted,
                ',"owner_email":' + quoted + ',"issuer":' + quoted,
            )
        return self._remember(self._email_json, raw, entry)

    def _ip_fragments(self, raw: str) -> tuple[str, str]:
        """bind_json: c-ip -> (``,"source":{...},"related":{"ip":[...]`` (the related object left
        open) or "", ``,"c_ip":...`` or "")."""
        ip, other = _parse_ip(raw)
        if ip is not None:
            quoted = _json_str(ip)
            entry = (',"source":{"ip":' + quoted + '},"related":{"ip":[' + quoted + "]", "")
        elif other is not None:
            entry = ("", ',"c_ip":' + _json_str(other))
        else:
            entry = ("", "")
        return self._remember(self._ip_json, raw, entry)

    def _file_fragment(self, raw: str) -> str:
        """bind_json: file-name -> ``,"file":{...}`` or ""."""
        file = _parse_file_name(raw)
        return self._remember(self._file_json, raw, _members({"file": file}) if file else "")

    def _template_fragment(self, raw: str) -> str:
        """bind_json: template-id -> ``,"template_id":...`` or ""."""
        value = _parse_guid(raw)
        return self._remember(
            self._template_json, raw, ',"template_id":' + _json_str(value) if value else ""
        )

    # --- binding ---------------------------------------------------------------------------

    def bind(self, fields: list[str]) -> BoundNormaliser:
        """Return the per-record function for records under this ``#Fields`` header."""
        return self._compile(fields)

    def bind_json(self, fields: list[str]) -> BoundJsonNormaliser:
        """Like ``bind``, but the function returns ``(event.id, @timestamp, event as JSON)``.

        ``orjson.loads`` of the JSON equals ``bind``'s event for the same arguments (keys in the
        same order, too), and the same records raise ``RecordRejected``. The JSON is spliced
        from text made once per distinct value of a field (request type and result, user,
        e-mail address, IP address, client, file name, path); the few values that change in
        every record are checked for characters JSON must escape, and a record with any takes
        ``bind`` and ``orjson.dumps``.
        """
        layout = _Layout(fields)
        normalise = self._compile(fields, layout)
        pad, getter, extras, no_clock = layout.pad, layout.getter, layout.extras, layout.no_clock

        keep_original = self.keep_original
        date_get, remember = self._dates.get, self._remember
        hhmm, ss, parse_time = _HHMM, _SS, _parse_time
        parse_guid, published, fromisoformat = (
            _parse_guid,
            _parse_date_published,
            datetime.fromisoformat,
        )
        plain = _JSON_PLAIN
        empty = _EMPTY
        # the caches' get methods (a full cache is cleared, never replaced)
        event_get, event_fragments = self._event_json.get, self._event_fragments
        path_get, path_json = self._path_json.get, self._path_json
        user_get, user_fragments = self._user_json.get, self._user_fragments
        email_get, email_fragments = self._email_json.get, self._email_fragments
        ip_get, ip_fragments = self._ip_json.get, self._ip_fragments
        agent_json, admin_json, fragments = self._agent_json, self._admin_json, self._fragments
        agent_get, admin_get = agent_json.get, admin_json.get
        fill_agent, fill_admin = self._fill_agent, self._fill_admin
        file_get, file_fragment = self._file_json.get, self._file_fragment
        template_get, template_fragment = self._template_json.get, self._template_fragment
        dumps = orjson.dumps

        def slow(values: list[str], path: str, offset: int, raw_line: str) -> Any:
            """A record with something to escape in a value that is not cached."""
            event = normalise(values, path, offset, raw_line)
            return event["event"]["id"], event["@timestamp"], dumps(event)

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
                prefix = remember(self._dates, d, _parse_date(d))
            if t[:5] in hhmm and t[5:] in ss:
                ts = f"{prefix}{t}.000Z"
            else:
                ts = prefix + parse_time(t)

            # `len() > 2` spares hashing every id: only short values can be empty markers
            if len(row_id) > 2 or row_id not in empty:
                event_id = row_id
                if len(correlation_id) > 2 or correlation_id not in empty:
                    ids = f',"row_id":"{row_id}","correlation_id":"{correlation_id}"'
                else:
                    ids = f',"row_id":"{row_id}"'
            elif correlation_id not in empty:
                event_id = correlation_id
                ids = f',"correlation_id":"{correlation_id}"'
            else:
                raise RecordRejected(
                    "no row-id and no correlation-id: the record has no identity to dedupe on"
                )

            # what: values that are new in most records, checked here and never cached
            # (the ids and content-id go into the JSON as they are: see `plain` below)
            what = value = ""
            if content_id:
                # _parse_guid, inline: the same when the braces hold no space and no brace
                if len(content_id) == 38 and content_id[0] == "{" and content_id[37] == "}":
                    value = content_id[1:37].lower()
                else:
                    value = parse_guid(content_id)
                if value:
                    what = f',"content_id":"{value}"'
            if template_id:  # a tenant has a few templates
                what += template_get(template_id) or template_fragment(template_id)
            if date_published:
                # _published, inline: a value that fromisoformat takes is JSON text as it is
                dp = date_published
                if len(dp) == 19 and dp[10] == "T" and dp[4] == "-" and dp[7] == "-":
                    try:
                        if dp[18].isdigit():
                            fromisoformat(dp)
                            what = f'{what},"date_published":"{dp}"'
                            dp = ""
                    except ValueError:
                        pass
                if dp:
                    pub = published(dp)
                    if pub:
                        what += ',"' + pub[0] + '":' + _json_str(pub[1])
            probe = row_id + correlation_id + value  # an empty marker is plain text too
            if not probe.isascii() or 0 in probe.encode().translate(plain):
                return slow(values, path, offset, raw_line)

            head, error = event_get((request, result)) or event_fragments(request, result)

            # who: user, related.user (values, and as JSON: rel), azure_rms.principal,
            # owner_email and issuer
            user, related, rel, rms_people = user_get(user_id) or user_fragments(user_id)
            if acting_as:
                entry = email_get(acting_as) or email_fragments(acting_as)
                value = entry[0]
                if value is not None:
                    if value not in related:
                        related += (value,)
                        rel = f"{rel},{entry[2]}" if rel else entry[2]
                    local = entry[1]
                    if local is not None and local not in related:
                        related += (local,)
                        rel = f"{rel},{entry[3]}" if rel else entry[3]
                    if user is None:
                        user = '"target":' + entry[4]
                    else:
                        user += ',"target":' + entry[4]
            if owner:
                entry = email_get(owner) or email_fragments(owner)
                value = entry[0]
                if value is not None:
                    # the same issuer adds nothing to related.user
                    rms_people += entry[7] if issuer == owner else entry[5]
                    if value not in related:
                        related += (value,)
                        rel = f"{rel},{entry[2]}" if rel else entry[2]
            if issuer and issuer != owner:
                entry = email_get(issuer) or email_fragments(issuer)
                value = entry[0]
                if value is not None:
                    rms_people += entry[6]
                    if entry[1] is not None and value not in related:
                        rel = f"{rel},{entry[2]}" if rel else entry[2]
            # from where: source.ip and related.ip, or azure_rms.c_ip
            if c_ip:
                near, rms_ip = ip_get(c_ip) or ip_fragments(c_ip)
            else:
                near = rms_ip = ""
            if near:
                near = f'{near},"user":[{rel}]}}' if rel else near + "}"
            elif rel:
                near = f',"related":{{"user":[{rel}]}}'
            if user is not None:
                near = f',"user":{{{user}}}{near}'

            agent, rms_client = agent_get(c_info) or fragments(
                agent_json, c_info, fill_agent, c_info
            )
            file = (file_get(file_name) or file_fragment(file_name)) if file_name else ""
            if admin_action:
                what += (
                    admin_get(admin_action)
                    or fragments(admin_json, admin_action, fill_admin, admin_action)
                )[1]
            if extras:
                found = {}
                for i, key in extras:
                    value = record[i]
                    if value not in empty:
                        found[key] = value
                what += _members(found)
            where = path_get(path)  # ,"ecs":...,"log":{"file":{"path":...}}
            if where is None:
                where = remember(path_json, path, _ECS_LOG + _json_str(path) + "}}")
            original = ',"original":' + _json_str(raw_line.rstrip("\r\n")) if keep_original else ""
            data = (
                f'{{"@timestamp":"{ts}","event":{{{head},"id":"{event_id}"{original}}}'
                f"{where}{error}{near}{agent}{file}"
                f',"azure_rms":{{"log_offset":{offset}{ids}{rms_people}{rms_ip}{rms_client}'
                f"{what}}}}}"
            )
            return event_id, ts, data.encode()

        return normalise_json

    def _compile(self, fields: list[str], layout: _Layout | None = None) -> BoundNormaliser:
        """``bind``: the per-record function that builds the event as a dict."""
        if layout is None:
            layout = _Layout(fields)
        pad, getter, extras, no_clock = layout.pad, layout.getter, layout.extras, layout.no_clock

        keep_original = self.keep_original
        dates, events = self._dates, self._events
        remember = self._remember
        event_template = self._event_template
        fill_people, fill_agent = self._fill_people, self._fill_agent
        fill_what, fill_admin = self._fill_what, self._fill_admin
        empty = _EMPTY

        def normalise(values: list[str], path: str, offset: int, raw_line: str) -> Event:
            if pad:
                if no_clock:
                    raise RecordRejected("the #Fields header has no date or no time field")
                values = [*values, ""]
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
            ) = getter(values)

            prefix = dates.get(d)
            if prefix is None:
                prefix = remember(dates, d, _parse_date(d))
            clock = _clock(t)

            # from here on an id that is absent (an empty marker) is ""
            # `len() > 2` spares hashing every id: only short values can be empty markers
            if len(row_id) > 2 or row_id not in empty:
                event_id = row_id
                if len(correlation_id) <= 2 and correlation_id in empty:
                    correlation_id = ""
            elif correlation_id not in empty:
                event_id = correlation_id
                row_id = ""
            else:
                raise RecordRejected(
                    "no row-id and no correlation-id: the record has no identity to dedupe on"
                )

            cached = events.get((request, result))
            if cached is None:
                cached = event_template(request, result)
            event = cached[0].copy()
            event["id"] = event_id
            if keep_original:
                event["original"] = raw_line.rstrip("\r\n")
            doc: Event = {
                "@timestamp": prefix + clock,
                "event": event,
                "ecs": {"version": ECS_VERSION},
                "log": {"file": {"path": path}},
            }
            if cached[1] is not None:
                doc["error"] = cached[1].copy()
            rms: dict[str, Any] = {"log_offset": offset}
            if row_id:
                rms["row_id"] = row_id
            if correlation_id:
                rms["correlation_id"] = correlation_id

            fill_people(doc, rms, user_id, acting_as, owner, issuer, c_ip)
            if c_info:
                fill_agent(doc, rms, c_info)
            if file_name or content_id or template_id or date_published:
                fill_what(doc, rms, file_name, content_id, template_id, date_published)
            if admin_action:
                fill_admin(doc, rms, admin_action)
            if extras:
                for i, key in extras:
                    value = values[i]
                    if value not in empty:
                        rms[key] = value
            doc["azure_rms"] = rms
            return doc

        return normalise


class _Layout:
    """What a ``#Fields`` header decides: where each known field is, and the unknown ones."""

    __slots__ = ("pad", "getter", "extras", "no_clock")

    def __init__(self, fields: list[str]) -> None:
        names = [f.strip().lower() for f in fields]
        position: dict[str, int] = {}
        for i, name in enumerate(names):
            position.setdefault(name, i)
        missing_index = len(names)  # points at the "" appended to records when fields are absent
        #: True when a known field is absent: records get a "" appended for it
        self.pad = any(name not in position for name in KNOWN_FIELDS)
        #: record -> the known fields' values, in KNOWN_FIELDS order
        self.getter = itemgetter(*(position.get(name, missing_index) for name in KNOWN_FIELDS))
        #: (index, azure_rms key) of each unknown field
        self.extras = tuple(
            (i, _extra_key(name))
            for i, name in enumerate(names)
            if name not in KNOWN_FIELDS and position[name] == i and name
        )
        self.no_clock = "date" not in position or "time" not in position
