"""How each Azure RMS usage-log value is read: raw text in, named parts out.

These run on a cache miss (once per distinct value of a field), or cheaply on every record for
the few values that are new in most records; where the parts go is decided by
``mappings/rms/fields.yaml``, not here. A reader returns a dict of parts (empty when the value
is empty), or raises ``RecordRejected`` where a bad value makes the record unusable.
"""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from typing import Any

from shipper.errors import RecordRejected

#: values that mean "nothing here", as RMS writes them
EMPTY = frozenset(("", "''", "-", "'-'", '""'))
ADMIN_ACTION = {"true": True, "false": False, "1": True, "0": False}
_US_DATETIME_FORMATS = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y")

Parts = dict[str, Any]


def unquote(value: str) -> str:
    """Strip surrounding whitespace and the single quotes RMS puts around some values."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1].strip()
    return "" if value in EMPTY else value


def field_key(name: str) -> str:
    """A W3C field or c-info key as an ECS key: ``x-Foo`` -> ``x_foo``."""
    return name.strip().lower().replace("-", "_")


def parse_date(raw: str) -> str:
    """``2024-03-04`` -> ``2024-03-04T`` (the timestamp's prefix)."""
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-" and raw.isascii():
        try:
            date.fromisoformat(raw)
        except ValueError:
            pass
        else:
            return raw + "T"
    raise RecordRejected(f"unparseable date {raw!r}")


def parse_time(raw: str) -> str:
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


def principal(raw: str, ids: dict[str, str], tenant_services: dict[str, str]) -> Parts:
    """user-id -> id, email, name, domain (as ECS ``user``), type, tenant_id, region.

    ``ids`` and ``tenant_services`` are ``mappings/rms/service_principals.yaml`` (lower case).
    """
    value = unquote(raw)
    if not value:
        return {}
    kind = ids.get(value.lower())
    if kind is not None:
        return {"id": value, "name": value, "type": kind}
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        return {"id": value, "name": value, "type": "user"}
    kind = tenant_services.get(local.lower())
    if kind is not None and domain.lower().endswith(".aadrm.com"):
        parts = {"id": value, "name": local, "domain": domain, "type": kind}
        labels = domain.lower().split(".")
        parts["tenant_id"] = labels[0].strip("{}")
        if len(labels) >= 5 and labels[1] == "rms":
            parts["region"] = labels[2]
        return parts
    return {"id": value, "email": value, "name": local, "domain": domain, "type": "user"}


def email(raw: str) -> Parts:
    """owner-email / issuer / acting-as-user -> value, and email, name, domain when it is one."""
    value = unquote(raw)
    if not value:
        return {}
    local, at, domain = value.rpartition("@")
    if at and local and domain:
        return {"value": value, "email": value, "name": local, "domain": domain}
    return {"value": value, "name": value}


def client_info(raw: str, table: dict[str, Any]) -> Parts:
    """c-info -> ECS fields (dotted names as parts), by ``mappings/rms/client_info.yaml``."""
    value = unquote(raw)
    if not value:
        return {}
    keys: dict[str, str] = table["keys"]
    parts: Parts = {table["original"]: value}
    items = value.split(";")
    if "=" not in items[0]:
        sdk = items.pop(0).strip()
        if sdk:
            parts[table["sdk"]] = sdk
    other = table["other"] + "."
    for item in items:
        key, eq, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if eq and key and val:
            parts.setdefault(keys.get(key.lower()) or other + field_key(key), val)
    os_name = parts.get(keys["osname"])
    if os_name is not None:
        prefix = keys["osname"].rpartition(".")[0]
        os_version = parts.get(keys["osversion"])
        if os_version is not None:
            parts[prefix + ".full"] = f"{os_name} {os_version}"
        os_type = table["os_types"].get(os_name.lower())
        if os_type:
            parts[prefix + ".type"] = os_type
    return parts


def ip(raw: str) -> Parts:
    """c-ip -> ip (a valid address), or raw (kept when it is not one)."""
    value = unquote(raw)
    if not value:
        return {}
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return {"raw": value}
    return {"ip": value}


def file_name(raw: str) -> Parts:
    """file-name -> name, extension (no dot, case kept), path if one was given."""
    value = unquote(raw)
    if not value:
        return {}
    name = value.replace("\\", "/").rpartition("/")[2] or value
    parts = {"name": name}
    stem, dot, ext = name.rpartition(".")
    if dot and stem.strip() and ext and " " not in ext:
        parts["extension"] = ext
    if name != value:
        parts["path"] = value
    return parts


def guid(raw: str) -> str:
    """``{1C3FE7A9-...}`` -> ``1c3fe7a9-...``; "" when empty."""
    return unquote(raw).strip("{}").strip().lower()


def guid_parts(raw: str) -> Parts:
    value = guid(raw)
    return {"value": value} if value else {}


def flag(raw: str) -> Parts:
    """admin-action -> value (True/False), or raw for an unexpected spelling."""
    text = unquote(raw)
    value = ADMIN_ACTION.get(text.lower())
    if value is not None:
        return {"value": value}
    return {"raw": text} if text else {}


def date_published(raw: str) -> Parts:
    """date-published -> value (ISO 8601 as given), or raw when it is no date."""
    value = unquote(raw)
    if not value:
        return {}
    iso = value[:10] + "T" + value[11:] if len(value) > 10 and value[10] == " " else value
    if len(iso) >= 10 and iso[4] == "-" and iso[7] == "-":
        try:
            datetime.fromisoformat(iso[:-1] + "+00:00" if iso.endswith("Z") else iso)
        except ValueError:
            pass
        else:
            return {"value": iso}
    for fmt in _US_DATETIME_FORMATS:
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        text = parsed.date().isoformat() if fmt == "%m/%d/%Y" else parsed.isoformat()
        return {"value": text}
    return {"raw": value}


def result(raw: str) -> Parts:
    """result -> outcome (success / failure / unknown); code and message on failure."""
    text = unquote(raw)
    if not text:
        return {"outcome": "unknown"}
    if text.lower() == "success":
        return {"outcome": "success"}
    return {"outcome": "failure", "code": text, "message": text}


def request_type(
    raw: str, table: dict[str, tuple[tuple[str, ...], tuple[str, ...]]], default: Any
) -> Parts:
    """request-type -> action, and category / type from ``mappings/rms/request_types.yaml``."""
    action = unquote(raw)
    parts: Parts = {"action": action} if action else {}
    pair = table.get(action.lower()) or default
    if pair is not None:
        parts["category"], parts["type"] = pair
    return parts
