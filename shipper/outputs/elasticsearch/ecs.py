"""The ECS part of the index templates, built from Elastic's own field list, never typed by hand.

``mappings/ecs/ecs_fields.yml`` is an extract of ECS's ``generated/ecs/ecs_flat.yml`` holding
only the fields shipper emits, each with the attributes that decide its mapping (type,
``ignore_above``, multi-fields, ``index``/``doc_values``, ...). ``component`` turns it into the
``shipper-ecs@mappings`` component template when ``shipper setup`` runs, so the template says
exactly what ECS says: ``user_agent.original`` is a ``keyword`` with a ``.text`` multi-field,
as in every other ``logs-*`` data stream, and a terms aggregation on it works. (An object's
``object_type``, ``labels.*`` as keyword, is a dynamic template: those live in
``shipper-dynamic@mappings``, since components' dynamic templates do not add up.)

To move to a newer ECS, or to map another ECS field, refresh the extract from a new
``ecs_flat.yml`` (the field list is the extract's own keys, plus any ``--add``)::

    python -m shipper.outputs.elasticsearch.ecs path/to/ecs_flat.yml --ecs-version 9.5.0 \\
        [--add process.command_line ...]

OpenSearch takes the same mappings except ``constant_keyword``, which there needs a fixed
``value`` that a component shared by every data stream cannot give (``keyword`` instead), and
``flattened``, which OpenSearch calls ``flat_object``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

from shipper.mappings import load_yaml, mappings_dir

EXTRACT = "ecs/ecs_fields.yml"
COMPONENT = "shipper-ecs@mappings"
#: the attributes of an ECS field definition that go into its mapping (the rest is prose)
MAPPING_KEYS = ("type", "ignore_above", "index", "doc_values", "scaling_factor", "object_type")
#: OpenSearch's name or substitute for an ECS type it lacks
OPENSEARCH_TYPES = {"constant_keyword": "keyword", "flattened": "flat_object"}

Flavour = Literal["elasticsearch", "opensearch"]

HEADER = """\
# ECS field definitions shipper maps: an extract of generated/ecs/ecs_flat.yml of
# Elastic Common Schema {version} (https://github.com/elastic/ecs), Apache License 2.0,
# Copyright Elasticsearch B.V. (LICENSE.txt and NOTICE.txt beside this file).
# Only the attributes that decide a mapping are kept. Generated; do not edit by hand:
#   python -m shipper.outputs.elasticsearch.ecs path/to/ecs_flat.yml --ecs-version X.Y.Z
# (keeps these fields; --add FIELD maps another one). shipper setup builds the
# shipper-ecs@mappings component template from this file.
"""


def load() -> tuple[str, dict[str, dict[str, Any]]]:
    """(ECS version, field definitions by dotted name) of the shipped extract."""
    data = load_yaml(EXTRACT)
    return str(data["ecs_version"]), data["fields"]


def version() -> str:
    return load()[0]


def field_mapping(spec: Mapping[str, Any], flavour: Flavour = "elasticsearch") -> dict[str, Any]:
    """One ECS definition as an Elasticsearch (or OpenSearch) field mapping."""
    out: dict[str, Any] = {}
    for key in MAPPING_KEYS:
        if key in spec and key != "object_type":
            out[key] = spec[key]
    if flavour == "opensearch" and out["type"] in OPENSEARCH_TYPES:
        out["type"] = OPENSEARCH_TYPES[out["type"]]
    multi = spec.get("multi_fields") or []
    if multi:
        out["fields"] = {
            m["name"]: {k: v for k, v in m.items() if k not in ("name", "flat_name")} for m in multi
        }
    return out


def properties(
    fields: Mapping[str, Mapping[str, Any]], flavour: Flavour = "elasticsearch"
) -> dict[str, Any]:
    """Flat ECS names to nested ``properties``, in the order given."""
    root: dict[str, Any] = {}
    for name, spec in fields.items():
        *parents, leaf = name.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {}).setdefault("properties", {})
        node[leaf] = field_mapping(spec, flavour)
    return root


def component(flavour: Flavour = "elasticsearch") -> dict[str, Any]:
    """The ``shipper-ecs@mappings`` component template body."""
    ecs_version, fields = load()
    mappings: dict[str, Any] = {"properties": properties(fields, flavour)}
    return {
        "_meta": {
            "description": f"ECS {ecs_version} fields shipper emits, as ECS defines them "
            f"(built from mappings/{EXTRACT})",
            "ecs_version": ecs_version,
            "managed_by": "shipper",
        },
        "template": {"mappings": mappings},
    }


# --- refreshing the extract ---------------------------------------------------------------------


def extract(ecs_flat: Mapping[str, Any], names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The mapping attributes of ``names`` from a parsed ``ecs_flat.yml``, sorted by name.

    Raises ``KeyError`` naming every field the given ECS does not define.
    """
    wanted = sorted(set(names))
    missing = [n for n in wanted if n not in ecs_flat]
    if missing:
        raise KeyError("not in this ECS: " + ", ".join(missing))
    out: dict[str, dict[str, Any]] = {}
    for name in wanted:
        spec = ecs_flat[name]
        kept = {k: spec[k] for k in MAPPING_KEYS if k in spec}
        if spec.get("multi_fields"):
            kept["multi_fields"] = [
                {k: v for k, v in m.items() if k != "flat_name"} for m in spec["multi_fields"]
            ]
        out[name] = kept
    return out


def render(ecs_version: str, fields: Mapping[str, Any]) -> str:
    body = yaml.safe_dump(
        {"ecs_version": ecs_version, "fields": dict(fields)}, sort_keys=False, width=100
    )
    return HEADER.format(version=ecs_version) + body


def _guess_version(ecs_flat: Path) -> str | None:
    """ECS keeps its version in a ``version`` file at the top of the repository."""
    for folder in ecs_flat.resolve().parents[:3]:
        candidate = folder / "version"
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8").strip()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shipper.outputs.elasticsearch.ecs",
        description=f"Refresh mappings/{EXTRACT} from an ECS ecs_flat.yml.",
    )
    parser.add_argument("ecs_flat", type=Path, help="generated/ecs/ecs_flat.yml of an ECS release")
    parser.add_argument("--ecs-version", help="its ECS version (default: the repository's file)")
    parser.add_argument("--add", nargs="*", default=[], metavar="FIELD", help="more fields")
    parser.add_argument("--output", type=Path, default=mappings_dir() / EXTRACT)
    args = parser.parse_args(argv)
    ecs_version = args.ecs_version or _guess_version(args.ecs_flat)
    if not ecs_version:
        parser.error("--ecs-version is required (no 'version' file found near ecs_flat.yml)")
    try:
        with open(args.ecs_flat, encoding="utf-8") as f:
            ecs_flat = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as e:
        print(f"{args.ecs_flat}: {e}", file=sys.stderr)
        return 2
    current = {}
    if args.output.is_file():
        current = yaml.safe_load(args.output.read_text(encoding="utf-8")) or {}
    names = [*current.get("fields", {}), *args.add]
    try:
        fields = extract(ecs_flat, names)
    except KeyError as e:
        print(f"{args.ecs_flat}: {e.args[0]}", file=sys.stderr)
        return 1
    args.output.write_text(render(ecs_version, fields), encoding="utf-8")
    print(f"{args.output}: {len(fields)} fields of ECS {ecs_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
