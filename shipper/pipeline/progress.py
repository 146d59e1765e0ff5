"""What a run reports: the summary printed at its end, the figures a progress bar reads, and the
follow mode's heartbeat line built from both."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = ["Progress", "Summary", "heartbeat", "lag_seconds"]


@dataclass
class Summary:
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    #: files read to their end (for now): one count for the summary and the interrupted line
    files_read: int = 0
    files_refused: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: a stop request (a signal) ended the run
    stopped: bool = False
    #: events of the batch that was being delivered when the stop came, not committed
    uncommitted: int = 0
    #: ``@timestamp`` of the newest event shipped, when an output reads timestamps
    newest_event: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.files_refused and not self.errors


@dataclass
class Progress:
    """What a progress display needs; the pipeline updates it, a display reads it."""

    files_total: int = 0
    #: files dealt with: read to their end, refused, empty or gone (the bar's count)
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    records: int = 0


def lag_seconds(newest_event: str, now: datetime | None = None) -> float | None:
    """Seconds from the newest shipped event's ``@timestamp`` to now; None when unknown."""
    if not newest_event:
        return None
    text = newest_event.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:  # more than 6 fractional digits (Windows' 100 ns) on Python 3.10
        try:
            when = datetime.fromisoformat(text[:19]).replace(tzinfo=timezone.utc)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return ((now or datetime.now(timezone.utc)) - when).total_seconds()


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"  # pragma: no cover


def heartbeat(
    summary: Summary, backlog: int, shipped_before: int, seconds: float
) -> tuple[str, dict[str, object]]:
    """The one-line heartbeat, and the same figures as fields for a JSON log."""
    lag = lag_seconds(summary.newest_event)
    fields: dict[str, object] = {
        "shipper.events": summary.events,
        "shipper.events_recent": summary.events - shipped_before,
        "shipper.backlog_bytes": backlog,
    }
    if lag is not None:
        fields["shipper.lag_seconds"] = round(lag, 3)
    line = (
        f"heartbeat: {summary.events:,} events shipped"
        f" (+{summary.events - shipped_before:,} in {seconds:.0f} s),"
        f" backlog {_bytes(backlog)},"
        f" lag {'unknown' if lag is None else f'{lag:,.0f} s'}"
    )
    return line, fields
