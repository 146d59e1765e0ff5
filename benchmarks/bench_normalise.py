"""Per-record cost of the RMS normalise+encode step: ``bind`` + ``orjson.dumps`` vs ``bind_json``.

    python benchmarks/bench_normalise.py [--records N] [--seed S] [--runs R] [--keep-original]

Builds ``N`` records (100,000) with ``../shared/bench/gen_rms.py`` (2 files, half of them in
the 15-field layout) in a temporary folder, reads them into memory, and times, in this process
with ``time.process_time()``:

* ``bind + dumps``: what ``shipper.sources.w3c.decode`` does per record today, the dict event,
  its ``event.id`` and ``@timestamp`` and ``orjson.dumps`` of it;
* ``bind_json``: the same three results, assembled as JSON directly.

``cold`` is the first pass with a fresh ``RmsNormaliser`` (every cache empty); ``warm`` is the
best of ``R`` (5) further passes. Results are not retained. Prints figures and never asserts.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shipper.normalise.rms import RmsNormaliser  # noqa: E402

GEN_RMS = REPO.parent / "shared" / "bench" / "gen_rms.py"

Record = tuple[list[str], list[str], str, int, str]  # fields, values, path, offset, line


def read_corpus(folder: Path) -> list[Record]:
    records: list[Record] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        offset = 0
        fields: list[str] = []
        for raw in path.read_bytes().split(b"\n"):
            size = len(raw) + 1
            line = raw.decode("utf-8-sig" if offset == 0 else "utf-8").rstrip("\r")
            if line.startswith("#Fields:"):
                fields = line[len("#Fields:") :].strip().split("\t")
            elif line and line[0] != "#":
                records.append((fields, line.split("\t"), str(path), offset, line))
            offset += size
    return records


def run_dict(normaliser: RmsNormaliser, records: list[Record]) -> float:
    bound: dict[tuple[str, ...], Callable[..., Any]] = {}
    work = []
    for fields, values, path, offset, line in records:
        key = tuple(fields)
        if key not in bound:
            bound[key] = normaliser.bind(fields)
        work.append((bound[key], values, path, offset, line))
    dumps = orjson.dumps
    start = time.process_time()
    for fn, values, path, offset, line in work:
        event = fn(values, path, offset, line)
        event["event"]["id"]
        event["@timestamp"]
        dumps(event)
    return time.process_time() - start


def run_json(normaliser: RmsNormaliser, records: list[Record]) -> float:
    bound: dict[tuple[str, ...], Callable[..., Any]] = {}
    work = []
    for fields, values, path, offset, line in records:
        key = tuple(fields)
        if key not in bound:
            bound[key] = normaliser.bind_json(fields)
        work.append((bound[key], values, path, offset, line))
    start = time.process_time()
    for fn, values, path, offset, line in work:
        fn(values, path, offset, line)
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep-original", action="store_true")
    args = ap.parse_args()
    if not GEN_RMS.is_file():
        sys.exit(f"bench_normalise: {GEN_RMS} is not available")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, str(GEN_RMS), tmp, "--files", "2"]
        cmd += ["--lines-per-file", str(args.records // 2), "--seed", str(args.seed)]
        cmd += ["--legacy-fraction", "0.5"]
        subprocess.run(cmd, check=True, capture_output=True)
        records = read_corpus(Path(tmp))
    n = len(records)
    print(f"{n} records, keep_original={args.keep_original}, best of {args.runs} warm passes")
    print(f"{'path':<14} {'cold µs/rec':>12} {'warm µs/rec':>12} {'warm rec/s':>12}")
    for name, run in (("bind + dumps", run_dict), ("bind_json", run_json)):
        normaliser = RmsNormaliser(keep_original=args.keep_original)
        cold = run(normaliser, records)
        warm = min(run(normaliser, records) for _ in range(args.runs))
        print(f"{name:<14} {cold / n * 1e6:>12.2f} {warm / n * 1e6:>12.2f} {n / warm:>12,.0f}")


if __name__ == "__main__":
    main()
