"""Per-record cost of the RMS normalise+encode step: ``bind_json``, the one the decoders run.

``bind`` + ``orjson.dumps`` is shown beside it: ``bind`` is ``bind_json``'s event parsed into a
dict (one mapping, not two), so its column is that path plus a parse and a dump.

    python benchmarks/bench_normalise.py [--corpus DIR] [--keep-original]
    python benchmarks/bench_normalise.py --mode warm [--records N] [--seed S] [--runs R]

Default mode, ``stream``: the realistic case. A corpus of 1,000,000 records in 10 files (364 MB)
is made once with ``../shared/bench/gen_rms.py DIR --files 10 --lines-per-file 100000 --seed 1``
(``--corpus``, default ``$TMPDIR/bench1m``; reused when its 10 files are there). Then each path
runs in its own fresh process, which streams through the files in order as a decoder worker
does: 1 MiB blocks cut at the last line break, lines split and decoded, ``#Fields`` headers
bound, records split on tabs and given to the bound function; nothing is retained. Reported,
per path: µs/record of ``time.process_time()`` for the whole pass (cold caches, file reading
included), the same less the ``read only`` pass (the same loop without the call: the cost of
the normalise step itself), and the process's peak RSS (``ru_maxrss``) at the end.

``--mode warm`` (the older benchmark): ``N`` records (100,000; 2 files, half of them in the
15-field layout) are read into memory and timed with ``time.process_time()``: ``cold`` is the
first pass with a fresh ``RmsNormaliser``, ``warm`` the best of ``R`` (5) further passes.

Prints figures and never asserts.
"""

from __future__ import annotations

import argparse
import json
import resource
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

from shipper.errors import RecordRejected  # noqa: E402
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


STREAM_FILES = 10
STREAM_LINES = 100_000
BLOCK = 1024 * 1024  # what shipper.sources.w3c reads at a time


def corpus_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.isdigit())


def ensure_corpus(folder: Path) -> list[Path]:
    if not folder.is_dir() or len(corpus_files(folder)) != STREAM_FILES:
        if not GEN_RMS.is_file():
            sys.exit(f"bench_normalise: {GEN_RMS} is not available")
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(GEN_RMS), str(folder), "--files", str(STREAM_FILES)]
        cmd += ["--lines-per-file", str(STREAM_LINES), "--seed", "1"]
        print(f"building the corpus: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, capture_output=True)
    return corpus_files(folder)


def blocks(path: Path) -> Any:
    """The file's text in blocks of whole lines, about ``BLOCK`` bytes each, read one at a time."""
    with path.open("rb") as f:
        rest = b""
        while True:
            block = f.read(BLOCK)
            if not block:
                if rest:
                    yield rest
                return
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            rest = block[cut:]
            yield block[:cut]


def stream(kind: str, files: list[Path], keep_original: bool) -> dict[str, Any]:
    """One pass over ``files`` with a fresh normaliser: ``kind`` is json, dict or read."""
    normaliser = RmsNormaliser(keep_original=keep_original)
    dumps = orjson.dumps
    records = rejected = 0
    start = time.process_time()
    for file in files:
        path = str(file)
        offset = 0
        fn: Any = None
        for block in blocks(file):
            lines = block.split(b"\n")
            lines.pop()  # after the last line break
            for raw in lines:
                size = len(raw) + 1
                text = raw.decode("utf-8-sig" if offset == 0 else "utf-8")
                if text.endswith("\r"):
                    text = text[:-1]
                if not text:
                    pass
                elif text[0] == "#":
                    if text.startswith("#Fields:"):
                        fields = text[8:].strip().split("\t")
                        if kind == "json":
                            fn = normaliser.bind_json(fields)
                        elif kind == "dict":
                            fn = normaliser.bind(fields)
                else:
                    values = text.split("\t")
                    records += 1
                    try:
                        if kind == "json":
                            fn(values, path, offset, text)
                        elif kind == "dict":
                            event = fn(values, path, offset, text)
                            event["event"]["id"]
                            event["@timestamp"]
                            dumps(event)
                    except RecordRejected:
                        rejected += 1
                offset += size
            del lines, block
    seconds = time.process_time() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "kind": kind,
        "records": records,
        "rejected": rejected,
        "seconds": seconds,
        "peak_mb": peak_kb / 1024,
    }


def stream_main(args: argparse.Namespace) -> None:
    folder = Path(args.corpus)
    files = ensure_corpus(folder)
    results = {}
    for kind in ("read", "dict", "json"):
        cmd = [sys.executable, __file__, "--child", kind, "--corpus", str(folder)]
        if args.keep_original:
            cmd.append("--keep-original")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[kind] = json.loads(out.strip().splitlines()[-1])
    n = results["json"]["records"]
    size = sum(f.stat().st_size for f in files) / 1e6
    print(
        f"{folder}: {len(files)} files, {size:,.0f} MB, {n:,} records, "
        f"keep_original={args.keep_original}; one fresh process per path, one cold pass"
    )
    print(
        f"{'path':<14} {'pass µs/rec':>12} {'step µs/rec':>12} {'step rec/s':>12} "
        f"{'peak RSS MB':>12}"
    )
    floor = results["read"]["seconds"]
    for name, kind in (("read only", "read"), ("bind + dumps", "dict"), ("bind_json", "json")):
        r = results[kind]
        step = r["seconds"] - floor
        rate = f"{n / step:>12,.0f}" if kind != "read" else f"{'':>12}"
        step_us = f"{step / n * 1e6:>12.2f}" if kind != "read" else f"{'':>12}"
        print(f"{name:<14} {r['seconds'] / n * 1e6:>12.2f} {step_us} {rate} {r['peak_mb']:>12.1f}")


def warm_main(args: argparse.Namespace) -> None:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=("stream", "warm"), default="stream")
    ap.add_argument("--corpus", default=str(Path(tempfile.gettempdir()) / "bench1m"))
    ap.add_argument("--records", type=int, default=100_000, help="warm mode")
    ap.add_argument("--seed", type=int, default=3, help="warm mode")
    ap.add_argument("--runs", type=int, default=5, help="warm mode")
    ap.add_argument("--keep-original", action="store_true")
    ap.add_argument("--child", choices=("read", "dict", "json"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        files = corpus_files(Path(args.corpus))
        print(json.dumps(stream(args.child, files, args.keep_original)))
    elif args.mode == "stream":
        stream_main(args)
    else:
        warm_main(args)


if __name__ == "__main__":
    main()
