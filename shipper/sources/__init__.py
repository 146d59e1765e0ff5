"""Sources: find files, tell them apart, and cut them into chunks of records.

``FORMATS`` maps a format name to its implementation (see ``base.Format``); an input config
names the formats it accepts, and each new file gets the first whose ``sniff`` matches.
"""

from __future__ import annotations

from shipper.sources.base import Chunk, Decoded, FileRefused, Format, Quarantine
from shipper.sources.eventcsv import EVENT_CSV
from shipper.sources.eventjson import EVENT_JSON
from shipper.sources.eventxml import EVENT_XML
from shipper.sources.evtx_file import EVTX
from shipper.sources.w3c import W3C_RMS

FORMATS: dict[str, Format] = {
    fmt.name: fmt for fmt in (W3C_RMS, EVTX, EVENT_XML, EVENT_JSON, EVENT_CSV)
}

__all__ = ["FORMATS", "Chunk", "Decoded", "FileRefused", "Format", "Quarantine"]
