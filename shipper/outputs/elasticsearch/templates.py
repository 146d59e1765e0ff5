"""What ``mappings/elasticsearch/`` declares: component templates, and the groups of datasets
that share an index template shape. Pure data loading, no requests; ``setup`` installs it and
``encode`` asks which data stream type (``logs``, ``metrics``) a dataset goes to.

A group is one ``index_templates*.json`` file: ``type`` (the data stream type, default
``logs``), ``datasets``, ``composed_of`` (component templates, each a
``component_template_<name>.json`` beside it, or the generated ``shipper-ecs@mappings``) and
``priority``. Each dataset of a group gets an index template named like its data stream
(``logs-azure_rms.usage``) that composes the group's components, then ``<type>@custom`` and
``<name>@custom``: the user's own, created empty by ``setup`` and never overwritten.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from shipper.mappings import mappings_dir


def es_dir() -> Path:
    return mappings_dir() / "elasticsearch"


def load(name: str) -> Any:
    return json.loads((es_dir() / name).read_text(encoding="utf-8"))


@cache
def groups() -> tuple[dict[str, Any], ...]:
    out = []
    for path in sorted(es_dir().glob("index_templates*.json")):
        spec = json.loads(path.read_text(encoding="utf-8"))
        spec.setdefault("type", "logs")
        out.append(spec)
    return tuple(out)


def datasets() -> list[str]:
    return [ds for g in groups() for ds in g["datasets"]]


@cache
def stream_types() -> dict[str, str]:
    """Dataset -> data stream type; a dataset not listed is ``logs``."""
    return {ds: g["type"] for g in groups() for ds in g["datasets"]}


def template_name(pattern: str) -> str:
    """An index template's name: its pattern without the wildcards (``logs-x.y-*`` ->
    ``logs-x.y``), so ``<name>@custom`` is the name Elastic users look for."""
    name = re.sub(r"[^a-z0-9_.@-]+", "_", pattern.replace("*", "")).strip("-_.")
    return name or "shipper"


def legacy_template_name(pattern: str) -> str:
    """The name shipper before 2026-12 gave the same template (``shipper-`` + the pattern, which
    doubled the prefix of an ``index: shipper-...``); ``setup`` retires it."""
    return "shipper-" + re.sub(r"[^a-z0-9_.-]+", "_", pattern.strip("*-")).strip("_")
