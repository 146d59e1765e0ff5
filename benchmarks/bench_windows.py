"""Events/s for Windows event exports: .evtx and event XML, decoded to NDJSON.

    python benchmarks/bench_windows.py [--events 200000]

The XML corpus is built in a temporary folder by repeating the example exports with varied
record ids and computers (so every event is distinct); the .evtx figure uses the samples in
../shared/thirdparty/evtx when present. Timed: chunks() + decode() + writing NDJSON to a file,
in one process (the pipeline spreads decode over workers).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

from shipper.sources import FORMATS  # noqa: E402

EVTX_DIR = REPO / ".." / "shared" / "thirdparty" / "evtx"


def build_xml(folder: Path, target: int) -> tuple[Path, int]:
    sources = [REPO / "examples" / "windows" / n for n in (
        "rms_connector_wevtutil_rendered.xml", "ecma2host_saved_events.xml")]  # fmt: skip
    events: list[str] = []
    for s in sources:
        text = s.read_bytes().decode("utf-8-sig")
        events += re.findall(r"<Event[\s>].*?</Event>", text, re.S)
    out = folder / "corpus.xml"
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        while n < target:
            for e in events:
                f.write(
                    re.sub(r"<EventRecordID>\d+", f"<EventRecordID>{n + 1}", e).replace(
                        ".contoso.com<", f"-{n % 97}.contoso.com<"
                    )
                )
                n += 1
    return out, n


def run(
    fmt_name: str, paths: list[Path], sink: Path, options: dict[str, object]
) -> tuple[int, float]:
    fmt = FORMATS[fmt_name]
    n = 0
    cpu = time.process_time()
    t = time.perf_counter()
    with open(sink, "wb") as out:
        for path in paths:
            with open(path, "rb") as f:
                for chunk in fmt.chunks(f, str(path), 0, "", True, options):
                    d = fmt.decode(chunk)
                    if d.docs:
                        out.write(b"\n".join(d.docs) + b"\n")
                    n += len(d.docs)
    wall = time.perf_counter() - t
    print(f"  ({fmt_name}: {n / max(time.process_time() - cpu, 1e-9):,.0f} events per CPU second)")
    return n, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000, help="XML corpus size")
    ap.add_argument("--evtx-repeat", type=int, default=20, help="passes over the .evtx samples")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus, total = build_xml(folder, args.events)
        n, secs = run("event_xml", [corpus], folder / "xml.ndjson", {})
        mb = corpus.stat().st_size / 1e6
        print(f"event XML : {n:>8} events in {secs:6.2f} s = {n / secs:>9,.0f} events/s "
              f"({mb:.0f} MB)")  # fmt: skip
        samples = sorted(EVTX_DIR.glob("*.evtx")) if EVTX_DIR.is_dir() else []
        if samples:
            n, secs = run("evtx", samples * args.evtx_repeat, folder / "evtx.ndjson", {})
            print(f".evtx     : {n:>8} events in {secs:6.2f} s = {n / secs:>9,.0f} events/s")
        else:
            print(".evtx     : skipped (../shared/thirdparty/evtx not found)")


if __name__ == "__main__":
    main()
