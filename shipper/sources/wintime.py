"""Times as Windows event exports write them, turned into ISO 8601 UTC (``...Z``).

The readers need them to build records (every export spells ``TimeCreated`` its own way);
kept apart from the normaliser, which only takes the record's ``time`` as it is.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from shipper.errors import RecordRejected

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


__all__ = ["from_datetime", "iso_utc"]
