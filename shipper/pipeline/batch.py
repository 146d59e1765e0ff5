"""The batch being built: the events of decoded chunks, less duplicates, and their positions.

An event is a duplicate when its id was committed before (the decoder's lookup says so, up to
the commit it could see) or by a commit made since (``Recent`` checks those), or when it is in
this batch already. Ids are compared as whole 128-bit keys: two may share a half.
"""

from __future__ import annotations

from collections import deque

from shipper.decoding import Work
from shipper.outputs import EventBatch
from shipper.sources import Quarantine
from shipper.spool import Spooled
from shipper.state import FileState, Keys
from shipper.state.keys import EventKey
from shipper.state.lookup import MAX_AGE

__all__ = ["Batch", "Recent"]


class Batch:
    def __init__(self) -> None:
        self.events = EventBatch()
        self.his: set[int] = set()  # the hi half of the key of every event in the batch
        self.groups: dict[str, Keys] = {}  # the whole keys by bucket, for the store
        self.positions: dict[str, FileState] = {}
        self.quarantined: list[Quarantine] = []
        self.duplicates = 0
        self.held = 0  # bytes of documents and reader states held in memory

    def add(self, work: Work, shipped: set[EventKey], his: set[int]) -> None:
        """Add a chunk's events, less those whose key is in ``shipped`` or already here.

        ``his`` is the set of the chunk's ``hi`` halves. The usual chunk has no duplicate at
        all, which set operations on the halves establish in C (no ``hi`` in common means no
        key in common); only a chunk with a ``hi`` in common is taken apart event by event,
        and there the whole key decides: two ids may share a half.
        """
        ev = self.events
        hi, lo = work.keys.hi, work.keys.lo
        if not shipped and len(his) == len(hi) and self.his.isdisjoint(his):
            if work.run:
                ev.add_ndjson(work.run, work.count)
                if not isinstance(work.run, Spooled):
                    self.held += len(work.run)
            elif not work.documents:
                ev.add_count(work.count)
            for name, wire in work.wires.items():
                ev.add_wire(name, wire)
                if not isinstance(wire.data, Spooled):
                    self.held += len(wire.data)
            ev.ids += work.ids
            ev.datasets += work.datasets
            ev.timestamps += work.timestamps
            self.his |= his
            self._file(work.groups)
            return
        mine = _whole(self.groups)
        run = work.run
        if isinstance(run, Spooled):
            data = run.read()
            run.remove()
        else:
            data = run
        docs = data.split(b"\n")[:-1]
        kept_at = []
        for i, k in enumerate(work.keys):
            if k in shipped or k in mine:
                self.duplicates += 1
                continue
            mine.add(k)
            self.his.add(k[0])
            kept_at.append(i)
            if work.ids:
                ev.ids.append(work.ids[i])
                ev.datasets.append(work.datasets[i])
                ev.timestamps.append(work.timestamps[i])
        if kept_at and docs:
            run = b"\n".join([docs[i] for i in kept_at]) + b"\n"
            ev.add_ndjson(run, len(kept_at))
            self.held += len(run)
        elif kept_at and not work.documents:
            ev.add_count(len(kept_at))
        for name, wire in work.wires.items():
            if kept_at:
                kept = wire.select(kept_at)
                ev.add_wire(name, kept)
                self.held += len(kept.data)  # type: ignore[arg-type]
            if isinstance(wire.data, Spooled):
                wire.data.remove()
        # file the kept keys, each once (a key repeated within the chunk is in its group twice)
        fresh = {(hi[i], lo[i]) for i in kept_at}
        groups = {}
        for name, keys in work.groups.items():
            pairs = [p for p in keys if p in fresh]
            fresh.difference_update(pairs)
            if pairs:
                groups[name] = Keys.of(pairs)
        self._file(groups)

    def _file(self, groups: dict[str, Keys]) -> None:
        for name, keys in groups.items():
            group = self.groups.get(name)
            if group is None:
                self.groups[name] = Keys(keys.hi[:], keys.lo[:])
            else:
                group.hi.extend(keys.hi)
                group.lo.extend(keys.lo)


class Recent:
    """The keys of the batches committed lately, for chunks whose lookup could not see them.

    A decoder looks ids up as of some commit (``Work.as_of``); the batches committed after that
    are checked here. A batch enters when it goes to delivery, numbered as the commit it will
    be; one older than any lookup still in flight can need is dropped.
    """

    def __init__(self) -> None:
        # (commit number, hi set, keys by bucket)
        self._batches: deque[tuple[int, set[int], dict[str, Keys]]] = deque()

    def add(self, number: int, batch: Batch) -> None:
        self._batches.append((number, batch.his, batch.groups))

    def shipped(self, work: Work, his: set[int]) -> set[EventKey]:
        """The keys of ``work`` found committed, by its own lookup or since."""
        shipped = work.shipped
        recent = self._batches
        while recent and recent[0][0] <= work.seq - MAX_AGE:
            recent.popleft()  # covered by this lookup, and by every later one's
        for number, committed, groups in recent:
            # a copy of an event is filed under the same bucket (or a searched neighbour)
            if (
                number > work.as_of
                and not work.searched.isdisjoint(groups)
                and not committed.isdisjoint(his)
            ):
                shipped |= _committed(groups, work.keys)
        return shipped


def _whole(groups: dict[str, Keys]) -> set[EventKey]:
    """Every key in ``groups``."""
    return {k for keys in groups.values() for k in keys}


def _committed(groups: dict[str, Keys], keys: Keys) -> set[EventKey]:
    """Those of ``keys`` that are among the keys in ``groups`` (all 128 bits)."""
    return _whole(groups).intersection(keys)
