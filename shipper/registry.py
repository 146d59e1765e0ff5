"""Sources, formats, normalisers and outputs, found by name through Python entry points.

Built-ins are declared in ``pyproject.toml`` exactly as a third-party distribution declares its
own::

    [project.entry-points."shipper.outputs"]
    ndjson = "shipper.outputs.ndjson"

An entry point names a module (for formats it may name the format object,
``module:OBJECT``; a module is asked for its ``FORMAT``). Nothing is imported until something
asks for that name, so validating a configuration imports only the components it names, and a
plugin that fails to import is reported (by name, with its distribution) only when it is used,
without breaking the others.

A component module provides:

* outputs: ``Settings`` (a ``shipper.settings.Settings`` with ``type: Literal["<name>"]``),
  ``build(settings, data_dir) -> Output``, optionally ``check(settings, data_dir) -> str`` and
  ``setup(settings, data_dir, dry_run) -> Iterable[str]``;
* sources: ``Settings`` (a ``shipper.settings.SourceSettings``, whose ``default_formats``
  names the formats tried in order unless the configuration's ``formats:`` names others, and
  ``normaliser`` the normaliser of its records);
* formats: a ``shipper.sources.base.Format``;
* normalisers: ``make(options)`` (see ``shipper.normalise``).

This module imports neither pydantic nor the configuration: decoder processes look formats up
here too (see ``shipper.decoding``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from shipper.errors import ShipperError

#: kind -> entry point group
GROUPS = {
    "sources": "shipper.sources",
    "formats": "shipper.formats",
    "outputs": "shipper.outputs",
    "normalisers": "shipper.normalisers",
}
KINDS = tuple(GROUPS)
#: the distribution that provides the built-ins ("shipper" on PyPI is an unrelated project)
DISTRIBUTION = "rms-shipper"
#: what a user calls each kind (the configuration lists sources under `inputs`)
_SINGULAR = {
    "sources": "input",
    "formats": "format",
    "outputs": "output",
    "normalisers": "normaliser",
}


class UnknownComponent(ShipperError):
    """No installed distribution registers this name."""


class PluginError(ShipperError):
    """A registered component cannot be used (it fails to import, or lacks what it must
    provide); the message names it and the distribution that registered it."""


@dataclass(frozen=True)
class Entry:
    """One registered component, before it is imported."""

    kind: str
    name: str
    #: "package.module" or "package.module:attribute"
    value: str
    distribution: str
    version: str

    @property
    def provider(self) -> str:
        return f"{self.distribution} {self.version}"


@functools.cache
def _scan() -> tuple[dict[str, dict[str, Entry]], dict[tuple[str, str], list[Entry]]]:
    """Every registered entry, and the names registered twice by different distributions."""
    found: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
    clashes: dict[tuple[str, str], list[Entry]] = {}
    seen_dists: set[str] = set()
    kinds = {group: kind for kind, group in GROUPS.items()}
    for dist in metadata.distributions():
        ours = [ep for ep in dist.entry_points if ep.group in kinds]
        if not ours:
            continue  # most distributions: their METADATA (the costly part) is never parsed
        meta = dist.metadata  # parsed anew at each access: once here
        try:
            dist_name, version = meta["Name"] or "", meta["Version"] or "?"
        except KeyError:  # a distribution without metadata (Python 3.12+ raises)
            dist_name = version = ""
        if not dist_name:
            continue  # half-installed: nothing to load from it with a name to report
        key = dist_name.lower().replace("_", "-")
        if key in seen_dists:
            continue  # the same distribution twice on the path: the first one wins, as imports do
        seen_dists.add(key)
        for ep in ours:
            _add(found, clashes, Entry(kinds[ep.group], ep.name, ep.value, dist_name, version))
    if DISTRIBUTION not in seen_dists:
        for entry in _source_tree_entries():
            _add(found, clashes, entry)
    return found, clashes


def _add(
    found: dict[str, dict[str, Entry]],
    clashes: dict[tuple[str, str], list[Entry]],
    entry: Entry,
) -> None:
    have = found[entry.kind].get(entry.name)
    if have is None:
        found[entry.kind][entry.name] = entry
    elif have.distribution != entry.distribution:
        clashes.setdefault((entry.kind, entry.name), [have]).append(entry)


def _source_tree_entries() -> list[Entry]:
    """The built-ins, read from ``pyproject.toml``, when ``shipper`` runs from a source tree
    that was never installed (so that it has no entry point metadata)."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        import tomllib
    except ImportError:  # Python 3.10: install the package instead
        return []
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    project = data.get("project", {})
    if project.get("name") != DISTRIBUTION:
        return []
    tables = project.get("entry-points", {})
    version = str(project.get("version", "?")) + " (source tree)"
    return [
        Entry(kind, name, value, DISTRIBUTION, version)
        for kind, group in GROUPS.items()
        for name, value in tables.get(group, {}).items()
    ]


def refresh() -> None:
    """Forget what was found and loaded (after a distribution was installed or ``sys.path``
    changed at run time)."""
    _scan.cache_clear()
    _load.cache_clear()


def entries(kind: str) -> dict[str, Entry]:
    """Registered components of one kind, by name (nothing imported)."""
    return dict(sorted(_scan()[0][kind].items()))


def names(kind: str) -> list[str]:
    return sorted(_scan()[0][kind])


def entry(kind: str, name: str) -> Entry:
    found = _scan()[0][kind].get(name)
    if found is None:
        installed = ", ".join(names(kind)) or "none"
        what = f"{_SINGULAR[kind]} type" if kind in ("sources", "outputs") else _SINGULAR[kind]
        raise UnknownComponent(f"unknown {what} {name!r} (installed: {installed})")
    return found


def load(kind: str, name: str) -> Any:
    """The component's module (or, for a ``module:attr`` entry, the object), imported once."""
    return _load(kind, name)


@functools.cache
def _load(kind: str, name: str) -> Any:
    found = entry(kind, name)
    clash = _scan()[1].get((kind, name))
    if clash:
        by = " and ".join(e.provider for e in clash)
        raise PluginError(f"{_SINGULAR[kind]} {name!r} is registered by both {by}")
    try:
        obj = metadata.EntryPoint(name, found.value, GROUPS[kind]).load()
    except Exception as e:  # a broken plugin must not take the others down
        raise PluginError(
            f"{_SINGULAR[kind]} {name!r} from {found.provider} cannot be imported"
            f" ({found.value}): {type(e).__name__}: {e}"
        ) from e
    if kind == "formats" and hasattr(obj, "FORMAT") and not hasattr(obj, "chunks"):
        obj = obj.FORMAT
    missing = [a for a in _REQUIRED[kind] if not hasattr(obj, a)]
    if missing:
        raise PluginError(
            f"{_SINGULAR[kind]} {name!r} from {found.provider} ({found.value}) does not"
            f" provide {', '.join(missing)}"
        )
    return obj


_REQUIRED = {
    "sources": ("Settings",),
    "formats": ("sniff", "chunks", "decode"),
    "outputs": ("Settings", "build"),
    "normalisers": ("make",),
}


def settings_model(kind: str, name: str) -> Any:
    """The pydantic model validating one ``inputs[]`` (kind "sources") or ``outputs[]`` entry."""
    return load(kind, name).Settings


def output_module(settings: Any) -> Any:
    """The module of the output these validated settings belong to."""
    return load("outputs", settings.type)


__all__ = [
    "DISTRIBUTION",
    "GROUPS",
    "KINDS",
    "Entry",
    "PluginError",
    "UnknownComponent",
    "entries",
    "entry",
    "load",
    "names",
    "output_module",
    "refresh",
    "settings_model",
]
