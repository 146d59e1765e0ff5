"""Sources: find files, tell them apart, and cut them into chunks of records.

``FORMATS`` maps a format name to its implementation (see ``base.Format``); an input config
names the formats it accepts, and each new file gets the first whose ``sniff`` matches.
"""

from __future__ import annotations

from shipper.sources.base import Chunk, Decoded, FileRefused, Format, Quarantine
from shipper.sources.w3c import W3C_RMS

FORMATS: dict[str, Format] = {fmt.name: fmt for fmt in (W3C_RMS,)}

__all__ = ["FORMATS", "Chunk", "Decoded", "FileRefused", "Format", "Quarantine"]
