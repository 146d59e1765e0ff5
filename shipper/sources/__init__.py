"""Sources: find files, tell them apart, and cut them into chunks of records.

``FORMATS`` maps a format name to its implementation (see ``base.Format``); an input config
names the formats it accepts, and each new file gets the first whose ``sniff`` matches. Formats
are registered under the ``shipper.formats`` entry point group (see ``shipper.registry``) and
imported the first time their name is looked up, so a process imports only the readers it
uses (and importing this package imports none).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from shipper import registry
from shipper.sources.base import Chunk, Decoded, FileRefused, Format, Quarantine


class _Formats(Mapping[str, Format]):
    """The registered formats by name, each imported on first lookup.

    An unknown name raises ``registry.UnknownComponent`` (which lists the installed formats),
    not a bare ``KeyError``, and one that cannot be imported ``registry.PluginError`` (which
    names its distribution): either is a message a user can act on."""

    def __getitem__(self, name: str) -> Format:
        fmt: Format = registry.load("formats", name)
        return fmt

    def get(self, name: str, default: Format | None = None) -> Format | None:  # type: ignore[override]
        return self[name] if name in self else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in registry.entries("formats")

    def __iter__(self) -> Iterator[str]:
        return iter(registry.names("formats"))

    def __len__(self) -> int:
        return len(registry.names("formats"))


FORMATS: Mapping[str, Format] = _Formats()

__all__ = ["FORMATS", "Chunk", "Decoded", "FileRefused", "Format", "Quarantine"]
