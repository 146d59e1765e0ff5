"""The contract every output fulfils: take a batch, return only once it is durable.

``send`` blocks until the batch is delivered (file fsynced, documents indexed or known
duplicates or dead-lettered, acks received) and returns an ``Ack``. It raises ``RetryLater``
when the destination is temporarily unavailable (the pipeline waits and resends the same batch,
holding the sources back) and ``OutputFailed`` when it cannot work at all. The pipeline commits
a batch's positions only after every output returned an ``Ack`` for it.

Some outputs need to remember something with the checkpoint (the NDJSON file its committed
length, so that it can cut off what a crash left uncommitted). ``Ack.state`` carries that; the
pipeline stores it in the same transaction as the positions and hands it back to ``restore``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class EventBatch:
    """Encoded events in source order; ``ids[i]``, ``datasets[i]``... belong to ``docs[i]``."""

    ids: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)
    docs: list[bytes] = field(default_factory=list)
    timestamps: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.docs)


@dataclass(slots=True)
class Ack:
    """How a batch was delivered. ``delivered + duplicates + dead_lettered == len(batch)``."""

    delivered: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    state: dict[str, Any] | None = None


class Output(Protocol):
    name: str

    def restore(self, state: dict[str, Any] | None) -> dict[str, Any] | None:
        """Called once before the first ``send`` with the state committed last (or None).

        May return a state to commit at once, before anything is sent: the NDJSON file uses
        this to record where its own writing starts in a file that already held data.
        """
        ...

    def send(self, batch: EventBatch) -> Ack:
        """Deliver durably, or raise ``RetryLater`` / ``OutputFailed``."""
        ...

    def close(self) -> None: ...
