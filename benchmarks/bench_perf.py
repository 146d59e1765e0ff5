"""Samples/s for performance counter logs: PDH CSV (typeperf) and Get-Counter JSON to NDJSON.

    python benchmarks/bench_perf.py [--rows 100000] [--instances 4]

The corpus is built in a temporary folder: a typeperf log of one RMS connector (the
connector's counters plus ``Processor(n)\\% Processor Time`` for ``--instances`` CPUs, one row
per 15 s, a few blank cells as typeperf writes them) and the same samples as a Windows
PowerShell ``Get-Counter | ConvertTo-Json -Depth 3`` export. Timed: chunks() + decode() +
writing NDJSON to a file, in one process (the pipeline spreads decode over workers). A
"sample" is one counter value; a document holds one instance's values at one time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runnable from a checkout without installing

from shipper.sources import FORMATS  # noqa: E402

RMS = "\\\\RMSCON01\\Microsoft Rights Management connector\\"
KINDS = ("Licensing", "Certification", "Publishing")
TIMES = ("Connector Processing", "Service Response", "Connector Response")


def counters(instances: int) -> list[str]:
    cols = [RMS + "Time since last authorization policy update"]
    for kind in KINDS:
        for outcome in ("Successful Batched", "Failed"):
            cols += [f"{RMS}{kind} {outcome} Request Average {t} Time" for t in TIMES]
            cols.append(f"{RMS}{kind} {outcome} Requests/sec")
    cols += [f"\\\\RMSCON01\\Processor({i})\\% Processor Time" for i in range(instances)]
    return cols


def build(folder: Path, rows: int, instances: int) -> tuple[Path, Path, int]:
    """(typeperf CSV, Get-Counter JSON, values in each)."""
    rng = random.Random(1)
    cols = counters(instances)
    csv_path, json_path = folder / "typeperf.csv", folder / "getcounter.json"
    values = 0
    sets = []
    t0 = 1704103200  # 2024-01-01T10:00:00Z
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        head = ['"(PDH-CSV 4.0) (W. Europe Standard Time)(-60)"'] + [f'"{c}"' for c in cols]
        f.write(",".join(head) + "\r\n")
        for r in range(rows):
            t = t0 + 15 * r
            local = time.gmtime(t + 3600)
            stamp = time.strftime("%m/%d/%Y %H:%M:%S", local) + f".{r % 1000:03d}"
            cells = [f'"{stamp}"']
            samples = []
            for c in cols:
                if rng.random() < 0.02:
                    cells.append('" "')
                    continue
                v = round(rng.uniform(0, 900), 3)
                cells.append(f'"{v}"')
                values += 1
                ms = t * 1000 + r % 1000
                samples.append(
                    {
                        "Path": c.lower(),
                        "InstanceName": "",
                        "CookedValue": v,
                        "Status": 0,
                        "Timestamp": f"/Date({ms})/",
                    }
                )
            f.write(",".join(cells) + "\r\n")
            sets.append({"Timestamp": samples[0]["Timestamp"], "CounterSamples": samples})
    text = json.dumps(sets, indent=4).replace("/Date(", "\\/Date(").replace(")/", ")\\/")
    json_path.write_text(text, encoding="utf-8")
    return csv_path, json_path, values


def run(fmt_name: str, path: Path, sink: Path) -> tuple[int, float, float]:
    fmt = FORMATS[fmt_name]
    docs = 0
    cpu = time.process_time()
    t = time.perf_counter()
    with open(sink, "wb") as out, open(path, "rb") as f:
        for chunk in fmt.chunks(f, str(path), 0, "", True, {"timezone": "UTC"}):
            d = fmt.decode(chunk)
            if d.docs:
                out.write(b"\n".join(d.docs) + b"\n")
            docs += len(d.docs)
            assert not d.quarantined, d.quarantined[:1]
    return docs, time.perf_counter() - t, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000, help="sample times in the log")
    ap.add_argument("--instances", type=int, default=4, help="Processor(n) instances")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path, json_path, values = build(folder, args.rows, args.instances)
        for name, fmt, path in (
            ("PDH CSV", "perf_csv", csv_path),
            ("JSON   ", "perf_json", json_path),
        ):
            docs, wall, cpu = run(fmt, path, folder / f"{fmt}.ndjson")
            mb = path.stat().st_size / 1e6
            print(
                f"{name}: {values:>9,} samples, {docs:>8,} documents in {wall:6.2f} s = "
                f"{values / wall:>10,.0f} samples/s, {docs / wall:>8,.0f} documents/s "
                f"({mb:.0f} MB; {values / max(cpu, 1e-9):,.0f} samples per CPU second)"
            )


if __name__ == "__main__":
    main()
