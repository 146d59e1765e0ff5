"""How the dedupe index behaves as it grows to millions of ids.

Fills a fresh checkpoint store the way a backfill does: commits of ``--batch`` ids, each
commit's events in one event hour (``--per-hour`` ids an hour, so an hour takes several
commits). At each million it prints, per id, the cost of a commit and of a decoder's lookup of
a ``--chunk``-event chunk (µs of CPU), in two cases:

* *new hour*: the chunk's hour has never shipped (a backfill): nothing is read;
* *overlap*: the chunk is a re-download of an hour already shipped, half of its ids known: the
  lookup reads the hour's keys and matches them.

And the store's size on disk.

    python benchmarks/bench_dedupe.py [--millions 5] [--batch 10000] [--per-hour 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shipper.state import Store, event_keys  # noqa: E402


def hour(n: int) -> str:
    return f"2024-{1 + n // 720 % 12:02d}-{1 + n // 24 % 28:02d}T{n % 24:02d}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--millions", type=int, default=5)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--per-hour", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=3_000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        reader = Store(Path(tmp), readonly=True)
        print(f"{'ids':>10} {'commit':>9} {'new hour':>9} {'overlap':>9} {'db MB':>7}")
        total = 0
        last_ids: list[str] = []
        for _million in range(a.millions):
            commit_cpu = 0.0
            n = 0
            while n < 1_000_000:
                ids = [str(uuid.uuid4()) for _ in range(a.batch)]
                filed = {hour((total + n) // a.per_hour): event_keys(ids)}
                t0 = time.process_time()
                store.commit([], filed, {})
                commit_cpu += time.process_time() - t0
                n += a.batch
                last_ids = ids
            total += n
            latest = hour((total - 1) // a.per_hour)
            half = a.chunk // 2
            overlap = event_keys(last_ids[:half] + [str(uuid.uuid4()) for _ in range(half)])
            fresh = event_keys([str(uuid.uuid4()) for _ in range(a.chunk)])
            t0 = time.process_time()
            for _ in range(5):
                none = reader.shipped(fresh, {"2030-01-01T00"})
            new_cpu = (time.process_time() - t0) / 5
            t0 = time.process_time()
            for _ in range(5):
                found = reader.shipped(overlap, {latest})
            overlap_cpu = (time.process_time() - t0) / 5
            assert not none and len(found) == half
            size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
            print(
                f"{total:>10,} {commit_cpu / n * 1e6:>7.2f}us {new_cpu / a.chunk * 1e6:>7.2f}us"
                f" {overlap_cpu / a.chunk * 1e6:>7.2f}us {size:>7.0f}"
            )
        reader.close()
        store.close()


if __name__ == "__main__":
    main()
