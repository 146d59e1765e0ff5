"""How the dedupe index behaves as it grows to millions of ids.

Fills a fresh checkpoint store the way the pipeline does (commits of --batch ids) and, at each
million, prints the cost per id of a commit and of a lookup (half of the looked-up ids known,
half new), in CPU and wall microseconds, plus the store's size on disk.

    python benchmarks/bench_dedupe.py [--millions 5] [--batch 20000]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--millions", type=int, default=5)
    ap.add_argument("--batch", type=int, default=20000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp))
        print(f"{'ids':>10} {'commit cpu':>11} {'commit wall':>12} {'lookup cpu':>11} {'db MB':>7}")
        total = 0
        for _million in range(a.millions):
            c_cpu = c_wall = 0.0
            n = 0
            while n < 1_000_000:
                ids = [str(uuid.uuid4()) for _ in range(a.batch)]
                keys = list(event_keys(ids))
                t0, w0 = time.process_time(), time.perf_counter()
                store.commit([], keys, {})
                c_cpu += time.process_time() - t0
                c_wall += time.perf_counter() - w0
                n += a.batch
                last = ids
            total += n
            probe = event_keys(
                last[: a.batch // 2] + [str(uuid.uuid4()) for _ in range(a.batch // 2)]
            )
            t0 = time.process_time()
            for _ in range(5):
                found = store.shipped(probe)
            l_cpu = (time.process_time() - t0) / 5
            assert len(found) == a.batch // 2
            size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6
            print(
                f"{total:>10,} {c_cpu / n * 1e6:>9.2f}us {c_wall / n * 1e6:>10.2f}us"
                f" {l_cpu / len(probe) * 1e6:>9.2f}us {size:>7.0f}"
            )
        store.close()


if __name__ == "__main__":
    main()
