"""``mappings/rms/`` loaded once: the W3C-field -> ECS map and its tables, checked at start.

The normaliser splices each event together from pieces of JSON made once per distinct value of
a field (``RmsNormaliser``); ``FieldMap.members`` makes those pieces from a reader's
parts and the map. Each field's pieces have their place in the event (``PLACES``): a target in
``fields.yaml`` outside its field's places is refused here, naming the field, so that an edit
of the map never produces a malformed or silently incomplete event.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson

from shipper.mappings import load_yaml

#: Where each field's values may go (top-level ECS objects; "*" is any top-level object that the
#: normaliser does not build itself). Values new in every record (ids, content-id,
#: date-published) are spliced in without a cache, as members of azure_rms only.
PLACES: dict[str, frozenset[str]] = {
    "row-id": frozenset({"azure_rms"}),
    "correlation-id": frozenset({"azure_rms"}),
    "content-id": frozenset({"azure_rms"}),
    "date-published": frozenset({"azure_rms"}),
    "request-type": frozenset({"event", "*"}),
    "result": frozenset({"event", "*"}),
    "user-id": frozenset({"user", "azure_rms"}),
    "acting-as-user": frozenset({"user"}),
    "owner-email": frozenset({"azure_rms"}),
    "issuer": frozenset({"azure_rms"}),
    "c-ip": frozenset({"source", "azure_rms"}),
    "template-id": frozenset({"*", "azure_rms"}),
    "file-name": frozenset({"*", "azure_rms"}),
    "c-info": frozenset({"*", "azure_rms"}),
    "admin-action": frozenset({"*", "azure_rms"}),
}
#: places of a field added to the map beyond those above
GENERIC = frozenset({"*", "azure_rms"})
#: top-level names the normaliser writes itself (never a "*" place)
BUILT = frozenset({"@timestamp", "event", "ecs", "log", "user", "source", "related", "azure_rms"})
#: fields spliced inline: their targets must be plain azure_rms members
INLINE = frozenset({"row-id", "correlation-id", "content-id", "date-published"})
#: fields whose parts may add to related.user
RELATED_USER = frozenset({"user-id", "acting-as-user", "owner-email", "issuer"})
#: ... one part each at most
ONE_RELATED = frozenset({"owner-email", "issuer"})

Nested = dict[str, Any]


class MappingError(ValueError):
    """``mappings/rms/`` says something the normaliser cannot do."""


def nest(flat: dict[str, Any]) -> Nested:
    """``{"a.b": 1, "a.c": 2}`` -> ``{"a": {"b": 1, "c": 2}}``, keeping the order of first use."""
    out: Nested = {}
    for dotted, value in flat.items():
        node = out
        *parents, leaf = dotted.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return out


def _split(dotted: str) -> tuple[tuple[str, ...], str]:
    *parents, leaf = dotted.split(".")
    return tuple(parents), leaf


class FieldMap:
    """The loaded, checked map: per field its reader, targets and related.user parts."""

    def __init__(self) -> None:
        data = load_yaml("rms/fields.yaml")
        self.constants: dict[str, Any] = dict(data["constants"])
        fields: dict[str, Any] = data["fields"]
        #: every field Microsoft documents, in the order of the current 17-field layout
        self.known: tuple[str, ...] = tuple(fields)
        self.readers: dict[str, str] = {name: spec["read"] for name, spec in fields.items()}
        self.targets: dict[str, dict[str, str]] = {
            name: dict(spec.get("to") or {}) for name, spec in fields.items()
        }
        self.related: dict[str, tuple[str, ...]] = {
            name: tuple(spec.get("related") or ()) for name, spec in fields.items()
        }
        self.client_info: dict[str, Any] = load_yaml("rms/client_info.yaml")
        self.client_info["keys"] = {k.lower(): v for k, v in self.client_info["keys"].items()}
        self.client_info["os_types"] = {
            k.lower(): v for k, v in self.client_info["os_types"].items()
        }
        types = load_yaml("rms/request_types.yaml")
        self.request_types = {
            name.lower(): (tuple(spec["category"]), tuple(spec["type"]))
            for name, spec in types["request_types"].items()
        }
        default = types.get("default")
        self.default_request = (
            (tuple(default["category"]), tuple(default["type"])) if default else None
        )
        principals = load_yaml("rms/service_principals.yaml") or {}
        self.principal_ids = {
            k.lower(): v["type"] for k, v in (principals.get("ids") or {}).items()
        }
        self.tenant_services = {
            k.lower(): v["type"] for k, v in (principals.get("tenant_services") or {}).items()
        }
        self._check()
        #: per field, per top-level object it fills: (object, flat?, targets), where a flat
        #: object's targets are (part, key) and a nested one's (part, parents, leaf)
        self._places: dict[str, tuple[tuple[str, bool, tuple[Any, ...]], ...]] = {}
        for name, targets in self.targets.items():
            groups: dict[str, list[tuple[str, str]]] = {}
            for part, target in targets.items():
                place, _, rest = target.partition(".")
                groups.setdefault(place, []).append((part, rest))
            compiled = []
            for place, items in groups.items():
                if all("." not in rest for _, rest in items):
                    compiled.append((place, True, tuple(items)))
                else:
                    paths = tuple((part, *_split(rest)) for part, rest in items)
                    compiled.append((place, False, paths))
            self._places[name] = tuple(compiled)
        info = self.client_info
        every = [t for targets in self.targets.values() for t in targets.values()]
        every += [info["original"], info["sdk"], info["other"] + ".x", *info["keys"].values()]
        #: azure_rms.* keys the map fills; an unknown W3C field never overwrites one of them
        self.own_keys = frozenset(
            {"log_offset", "after_hours"}
            | {t.split(".")[1] for t in every if t.startswith("azure_rms.")}
        )

    def _check(self) -> None:
        missing = {"date", "time", "row-id", "correlation-id"} - set(self.known)
        if missing:
            raise MappingError(f"rms/fields.yaml: fields {sorted(missing)} are required")
        for name, targets in self.targets.items():
            places = PLACES.get(name, GENERIC)
            if name == "c-info":
                info = self.client_info
                targets = {"": info["original"], "_": info["sdk"], "*": info["other"] + ".x"}
                targets.update(info["keys"])
            for part, target in targets.items():
                top = target.split(".")[0]
                ok = top in places or ("*" in places and top not in BUILT)
                if name in INLINE:
                    ok = ok and target.count(".") == 1
                if not ok:
                    raise MappingError(
                        f"rms/fields.yaml: {name}.to.{part}: {target} is outside the places "
                        f"this field can fill ({', '.join(sorted(places)) or 'none'})"
                    )
            if self.related[name] and name not in RELATED_USER:
                raise MappingError(f"rms/fields.yaml: {name}: related is not supported")
            if len(self.related[name]) > 1 and name in ONE_RELATED:
                raise MappingError(f"rms/fields.yaml: {name}: related takes one part at most")

    def key(self, field: str, part: str) -> str:
        """The azure_rms member an inline field's part goes to (``row_id``)."""
        return self.targets[field][part].split(".", 1)[1]

    def members(self, field: str, parts: dict[str, Any]) -> dict[str, str]:
        """A reader's parts for ``field`` as JSON text, by the map: top-level object ->
        its members (``,"key":value...``, to splice into the object); objects left empty are
        left out. One ``orjson.dumps`` per object: it costs less than one per value."""
        out: dict[str, str] = {}
        for place, flat, targets in self._places[field]:
            obj: Nested = {}
            if flat:
                for part, key in targets:
                    if part in parts:
                        obj[key] = parts[part]
            else:
                for part, parents, leaf in targets:
                    if part in parts:
                        node = obj
                        for name in parents:
                            node = node.setdefault(name, {})
                        node[leaf] = parts[part]
            if obj:
                out[place] = "," + orjson.dumps(obj).decode()[1:-1]
        return out


@cache
def field_map() -> FieldMap:
    return FieldMap()
