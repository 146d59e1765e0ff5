"""``host.name`` and ``host.hostname`` of a Windows server, the same for its events and counters.

A connector's events name it as their ``Computer`` (``RMSCON02.contoso.com``, the FQDN), its
performance counters as the ``\\\\HOST`` of their paths (``RMSCON02``, the NetBIOS name): the
two datasets never agree on one full name. ECS has a field for each: ``host.name``, "the
lowercase FQDN" where the source gives one, and ``host.hostname``, what the ``hostname``
command returns on the machine, i.e. the short name. So both datasets set

* ``host.name``: the name as the source gives it, lower-cased (FQDN for events, the short
  name for counters; Windows names are case-insensitive, so ``RMSCON02`` and ``rmscon02``
  are one host);
* ``host.hostname``: the first label of that name, lower-cased (the whole name when it is an
  IP address), the field the connector-health dashboard and the per-host detections group by,
  because it is the one both datasets share.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

__all__ = ["host_fields"]


@lru_cache(maxsize=1024)
def _fields(name: str) -> tuple[str, str]:
    full = name.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(full.strip("[]"))
    except ValueError:
        return full, full.split(".", 1)[0]
    return full, full


def host_fields(name: str) -> dict[str, str]:
    """``{"name": ..., "hostname": ...}`` for a computer name (see the module docstring)."""
    full, short = _fields(name)
    return {"name": full, "hostname": short}
