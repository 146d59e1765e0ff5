"""Which text encoding a file is in, told from its first bytes: the one sniffer every reader
uses.

Exports and downloads arrive as UTF-8 with or without BOM (wevtutil, PowerShell 7,
``Get-AipServiceUserLog``), UTF-16LE with BOM (Windows PowerShell 5's ``>`` and ``Out-File``,
Event Viewer) and, rarely, UTF-16BE. Without a BOM, UTF-16 is recognised by its NUL bytes:
every file shipper reads starts with ASCII (``#Software``, ``<Event``, ``[``, a CSV header),
whose UTF-16 form has a NUL after (LE) or before (BE) each character.
"""

from __future__ import annotations

__all__ = ["NEWLINE", "UNIT", "head_text", "sniff_encoding"]

BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
#: bytes per code unit
UNIT = {"utf-8": 1, "utf-16-le": 2, "utf-16-be": 2}
#: a line feed in each encoding
NEWLINE = {"utf-8": b"\n", "utf-16-le": b"\n\x00", "utf-16-be": b"\x00\n"}


def sniff_encoding(head: bytes) -> tuple[str, int]:
    """(codec, BOM length) of a file that starts with ``head``."""
    for bom, enc in BOMS:
        if head.startswith(bom):
            return enc, len(bom)
    if len(head) >= 2 and head[1:2] == b"\x00" and head[:1] != b"\x00":
        return "utf-16-le", 0
    if len(head) >= 2 and head[:1] == b"\x00" and head[1:2] != b"\x00":
        return "utf-16-be", 0
    return "utf-8", 0


def head_text(head: bytes) -> str:
    """The first characters of a file as text, for sniffing; never raises."""
    enc, skip = sniff_encoding(head)
    body = head[skip:]
    body = body[: len(body) - len(body) % UNIT[enc]]
    return body.decode(enc, errors="replace")
