"""The one bound on a record's size, the same for every format.

A record bigger than ``max_record_bytes`` (the ``pipeline.max_record_bytes`` setting, passed to
readers in their options under ``OPTION``) is never read into memory whole: the reader streams
past it to where it ends (a W3C or CSV line end, ``</Event>``, the brace that closes a JSON
record), keeping only its first ``HEAD`` bytes, and hands the pipeline a chunk that stands for
it. Decoding that chunk quarantines the record with its size and those first bytes; the records
after it ship as usual. Records inside an ordinary chunk are held to the same bound when they
are decoded, so the limit does not depend on where block boundaries fall.

A chunk standing for an oversized record carries ``OVERSIZED`` in its options (what was
skipped) and, as its payload, only the record's first bytes: those are the file's bytes from
``chunk.start``, so a decoder process re-reading them from the file finds the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipper.sources.base import Chunk

#: the option (and config setting ``pipeline.max_record_bytes``) naming the bound
OPTION = "max_record_bytes"
#: the default bound: far above any real event (a few KiB), far below what hurts
DEFAULT = 16 * 1024 * 1024
#: how much of an oversized record is kept for the quarantine file
HEAD = 64 * 1024
#: the options key that marks a chunk standing for an oversized record
OVERSIZED = "oversized"


def max_record_bytes(options: dict[str, object]) -> int:
    value = options.get(OPTION, DEFAULT)
    return int(value) if isinstance(value, (int, float)) and value > 0 else DEFAULT


@dataclass(slots=True)
class Skip:
    """An oversized record found by a reader: where it lies, and its first bytes.

    ``complete`` is False in follow mode for a record already over the bound whose end is not
    written yet: it is quarantined at once, and the reader's state says to go on skipping it
    from ``end`` next time. ``continued`` marks the rest of such a record, found later: it is
    not quarantined again. ``lines`` counts the line breaks in it, for line numbers after it.
    """

    start: int
    end: int
    head: bytes  # the file's bytes from ``start``: what precedes the record, then its beginning
    complete: bool = True
    continued: bool = False
    lines: int = 0
    #: where the record itself begins, past the separators before it (``,`` and white space
    #: in a JSON array; line breaks between XML events), and the line breaks skipped to get there
    at: int = -1
    lead_lines: int = 0

    def __post_init__(self) -> None:
        if self.at < 0:
            self.at = self.start


def reason(size: int, limit: int, complete: bool = True) -> str:
    """Why a record was quarantined for its size, in words a user can act on."""
    at_least = "" if complete else "at least "
    still = "" if complete else ", still being written"
    return (
        f"record of {at_least}{size:,} bytes{still} exceeds max_record_bytes"
        f" ({_human(limit)}); its first {min(size, HEAD) // 1024} KiB are kept here"
    )


def _human(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n:,} bytes"


def skip_chunk(
    name: str,
    path: str,
    skip: Skip,
    state_in: str,
    state_out: str,
    first_line: int,
    options: dict[str, object],
) -> Chunk:
    """The chunk that stands for an oversized record (or the rest of one already reported)."""
    marked = dict(options)
    marked[OVERSIZED] = {
        "size": skip.end - skip.at,
        "at": skip.at,
        "lines": skip.lead_lines,
        "complete": skip.complete,
        "continued": skip.continued,
    }
    return Chunk(
        format=name,
        path=path,
        start=skip.start,
        end=skip.end,
        state_in=state_in,
        state_out=state_out,
        payload=b"" if skip.continued else skip.head,
        first_line=first_line,
        options=marked,
    )


def oversized(chunk: Chunk) -> dict[str, Any] | None:
    """What a chunk standing for an oversized record says about it, or None for any other."""
    info = chunk.options.get(OVERSIZED)
    return info if isinstance(info, dict) else None
