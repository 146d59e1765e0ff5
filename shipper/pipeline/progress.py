"""What a run reports: the summary printed at its end, the figures a progress bar reads."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Progress", "Summary"]


@dataclass
class Summary:
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    files_read: int = 0
    files_refused: int = 0
    dead_lettered: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

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
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    records: int = 0
