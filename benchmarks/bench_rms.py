"""End-to-end figures for Azure RMS usage logs: ``shipper run --once`` as a user runs it.

    python benchmarks/bench_rms.py [--records N] [--files F] [--workers W] [--runs R]
                                   [--keep-corpus DIR] [--tiny-files N]

1. Builds a corpus with ``../shared/bench/gen_rms.py`` (default 10 files x 100,000 records,
   seed 1: the corpus of the reference figures in ``../shared/README.md``) in a temporary folder,
   or in ``DIR/rms-<files>x<lines>-seed1`` with ``--keep-corpus DIR`` (reused when complete).
2. Ships it ``--runs`` times with ``python -m shipper.cli run --once --no-progress CFG`` in a
   subprocess (one ``rms_usage`` input, one ndjson output, a fresh data_dir each run) and
   reports wall time, events/s, and peak RSS of the shipper process and of its process tree
   (decoder workers included); the median run is the figure.
3. Resume scan: ships ``--tiny-files`` one-record files once, then runs again over the same
   folder with the same checkpoint, which must find nothing to read.

Prints figures and never asserts; a WARNING line flags anything that looks wrong (event count
not equal to the records generated, a non-zero exit status, a resume that read files).
Linux only (``os.wait4`` and ``/proc``). Standard library plus the project itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GEN_RMS = SHARED / "bench" / "gen_rms.py"
# seconds between /proc samples; reading smaps_rollup of every process in the tree costs CPU
# the shipper would otherwise have (peaks per process come from VmHWM, exact at any interval)
SAMPLE_EVERY = 0.2
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024

# reference figures and targets (../shared/README.md and the project's goals)
RSYSLOG_EPS = 179_000
PY_LOOP_EPS = 364_000  # ../shared/README.md: split, dict, orjson.dumps to /dev/null
TARGET_EPS = 180_000
TARGET_RSS_MB = 150
TARGET_RESUME_S = 10.0

FIELDS_17 = (
    "date time row-id request-type user-id result correlation-id content-id owner-email issuer"
    " template-id file-name date-published c-info c-ip admin-action acting-as-user"
).split()
TINY_MARKER = ".bench_rms_tiny.json"
CORPUS_MARKER = ".bench_rms_corpus.json"


def python_loop(corpus: Path) -> float:
    """events/s of the reference loop of ../shared/README.md over the corpus, in this process.

    This machine's speed drifts by 10-20 % over an hour (shared hosts); the loop, measured
    beside the shipper, says how fast the machine is right now compared with when the
    reference figures were taken.
    """
    import orjson  # a dependency of the project

    n = 0
    start = time.perf_counter()
    with open(os.devnull, "wb") as out:
        for path in sorted(p for p in corpus.iterdir() if not p.name.startswith(".")):
            fields: list[str] = []
            with open(path, encoding="utf-8-sig") as f:
                for line in f:
                    if line[0] == "#":
                        if line.startswith("#Fields:"):
                            fields = line[8:].split()
                        continue
                    values = line.rstrip("\n").split("\t")
                    out.write(orjson.dumps(dict(zip(fields, values, strict=False))))
                    n += 1
    return n / (time.perf_counter() - start)


def fail(msg: str) -> None:
    print(f"bench_rms: {msg}", file=sys.stderr)
    sys.exit(2)


# --- corpora ------------------------------------------------------------------------------


def _inside_repo(path: Path) -> bool:
    p = path.resolve()
    return p == REPO or REPO in p.parents


def _marker_ok(folder: Path, marker: str, want: dict[str, object]) -> bool:
    try:
        have = json.loads((folder / marker).read_text())
    except (OSError, ValueError):
        return False
    if {k: have.get(k) for k in want} != want:
        return False
    sizes = have.get("sizes", {})
    try:
        return len(sizes) == want["files"] and all(
            (folder / name).stat().st_size == size for name, size in sizes.items()
        )
    except OSError:
        return False


def _clear(folder: Path, name_re: str, marker: str) -> None:
    """Remove what an earlier build left (only files it could have written)."""
    if not folder.exists():
        return
    pattern = re.compile(name_re)
    for entry in os.scandir(folder):
        if entry.name == marker or pattern.fullmatch(entry.name):
            os.unlink(entry.path)
    if any(os.scandir(folder)):
        fail(f"{folder} holds files this benchmark did not write; use another --keep-corpus")


def build_corpus(folder: Path, files: int, lines: int, seed: str) -> float:
    """gen_rms.py into ``folder`` unless it is already there; returns seconds spent (0: reused)."""
    want = {"files": files, "lines_per_file": lines, "seed": seed}
    if _marker_ok(folder, CORPUS_MARKER, want):
        return 0.0
    _clear(folder, r"\d{9}", CORPUS_MARKER)
    t = time.perf_counter()
    cmd = [sys.executable, str(GEN_RMS), str(folder), "--files", str(files)]
    cmd += ["--lines-per-file", str(lines), "--seed", seed]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        fail(f"gen_rms.py failed (exit {done.returncode}):\n{done.stderr}")
    print(f"gen_rms.py: {done.stderr.strip()}")
    sizes = {e.name: e.stat().st_size for e in os.scandir(folder) if re.fullmatch(r"\d{9}", e.name)}
    (folder / CORPUS_MARKER).write_text(json.dumps({**want, "sizes": sizes}))
    return time.perf_counter() - t


def tiny_file(i: int) -> bytes:
    """A valid 17-field RMS usage log with one record whose row-id is unique to ``i``."""
    day = f"2024-03-{1 + i % 28:02d}"
    clock = f"{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}"
    row_id = f"{i:08x}-0000-4000-8000-{i:012x}"
    corr = f"{i:08x}-1111-4111-9111-{i:012x}"
    record = [day, clock, row_id, "AcquireLicense", "'alice.smith@contoso.com'", "'Success'"]
    record += [corr, "{6b3c1f0e-4a1d-4c1e-9f1a-2b3c4d5e6f70}", "alice.smith@contoso.com"]
    record += ["alice.smith@contoso.com", "", f"report_{i}.docx", "2024-01-15T10:00:00"]
    record += ["MSIPC;version=1.0.4201.0;AppName=WINWORD.EXE", "131.107.0.89", "", ""]
    text = "#Software: RMS\n#Version: 1.1\n#Fields: " + "\t".join(FIELDS_17) + "\n"
    return (text + "\t".join(record) + "\n").encode()


def build_tiny(folder: Path, n: int) -> float:
    want = {"files": n, "version": 1}
    if _marker_ok(folder, TINY_MARKER, want):
        return 0.0
    _clear(folder, r"tiny-\d{6,}\.log", TINY_MARKER)
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    sizes = {}
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for i in range(n):
        name = f"tiny-{i:06d}.log"
        data = tiny_file(i)
        fd = os.open(folder / name, flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        sizes[name] = len(data)
    (folder / TINY_MARKER).write_text(json.dumps({**want, "sizes": sizes}))
    return time.perf_counter() - t


# --- one measured run ---------------------------------------------------------------------


@dataclass
class Run:
    job: str
    records: int
    wall: float = 0.0
    exit_code: int = 0
    main_maxrss: int = 0  # bytes, os.wait4 ru_maxrss: max over the shipper and its reaped children
    main_hwm: int = 0  # bytes, the shipper's own VmHWM, last /proc sample before it exited
    worker_hwm: int = 0  # bytes, largest VmHWM seen in a decoder worker
    tree_rss: int = 0  # bytes, peak of the sum of VmRSS over the process tree (sampled)
    tree_pss: int = 0  # bytes, peak of the sum of Pss over the process tree (sampled)
    workers: int = 0  # decoder worker processes seen (0: decoded in-process)
    samples: int = 0
    summary: dict[str, float] = field(default_factory=dict)
    stderr: str = ""

    @property
    def eps(self) -> float:
        return self.records / self.wall if self.wall > 0 else 0.0


def _children_map() -> dict[int, list[int]]:
    """ppid -> pids, from /proc/*/stat (CONFIG_PROC_CHILDREN is often off)."""
    kids: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split(None, 2)[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def _tree(root: int) -> list[int]:
    task_dir = f"/proc/{root}/task"
    try:
        tasks = os.listdir(task_dir)
        use_children_files = os.path.exists(f"{task_dir}/{tasks[0]}/children")
    except (OSError, IndexError):
        return []
    if use_children_files:
        out, todo = [], [root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for t in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{t}/children") as f:
                        todo += [int(c) for c in f.read().split()]
            except OSError:
                continue
        return out
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += kids.get(pid, [])
    return out


def _status(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes; (0, 0) once the process is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return rss, hwm


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"shipper.decoding" in f.read()
    except OSError:
        return False


SUMMARY_NUMBERS = {
    "events": r"shipped ([\d,]+) events",
    "duplicates": r"([\d,]+) duplicates skipped",
    "quarantined": r"([\d,]+) lines quarantined",
    "refused": r"([\d,]+) files refused",
    "files_read": r"([\d,]+) files read",
    "seconds": r"files read in ([\d.]+) s",
    "eps": r"\(([\d,.]+) events/s\)",
}


def parse_summary(stderr: str) -> dict[str, float]:
    line = next((ln for ln in reversed(stderr.splitlines()) if ln.startswith("shipped ")), "")
    out: dict[str, float] = {}
    for key, pattern in SUMMARY_NUMBERS.items():
        m = re.search(pattern, line)
        if m:
            out[key] = float(m.group(1).replace(",", ""))
    return out


def ship(job: str, records: int, corpus: Path, data_dir: Path, out_dir: Path, workers: str) -> Run:
    """One ``run --once`` in a subprocess, sampled every SAMPLE_EVERY seconds until it exits."""
    cfg = {
        "data_dir": str(data_dir),
        "inputs": [{"type": "rms_usage", "paths": [str(corpus / "*")]}],
        "outputs": [{"type": "ndjson", "path": str(out_dir / "events.ndjson")}],
        "pipeline": {"workers": workers if workers == "auto" else int(workers)},
    }
    cfg_path = data_dir.parent / f"{data_dir.name}.yaml"
    cfg_path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "shipper.cli", "run", "--once", "--no-progress", str(cfg_path)]
    run = Run(job, records)
    seen_workers: set[int] = set()
    not_workers: set[int] = set()
    os.sync()  # the previous run's output is written back now, not during this run
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=data_dir.parent, env=env, stdout=subprocess.DEVNULL,
                                stderr=err)  # fmt: skip
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                run.wall = time.perf_counter() - t0
                break
            tree = _tree(proc.pid)
            rss_sum = pss_sum = 0
            for p in tree:
                rss, hwm = _status(p)
                rss_sum += rss
                pss_sum += _pss(p)
                if p == proc.pid:
                    run.main_hwm = max(run.main_hwm, hwm)
                elif p in seen_workers or (p not in not_workers and _is_worker(p)):
                    seen_workers.add(p)
                    run.worker_hwm = max(run.worker_hwm, hwm)
                else:
                    not_workers.add(p)
            run.tree_rss = max(run.tree_rss, rss_sum)
            run.tree_pss = max(run.tree_pss, pss_sum)
            run.samples += 1
            time.sleep(SAMPLE_EVERY)
        proc.returncode = run.exit_code = os.waitstatus_to_exitcode(status)
        run.main_maxrss = usage.ru_maxrss * 1024  # KiB on Linux
        err.seek(0)
        run.stderr = err.read().decode("utf-8", "replace")
    run.workers = len(seen_workers)
    run.summary = parse_summary(run.stderr)
    return run


def check(run: Run, want_events: int, want_files: int | None = None) -> list[str]:
    s = run.summary
    warnings = []
    if run.exit_code:
        warnings.append(f"{run.job}: exit status {run.exit_code}")
    if "events" not in s:
        warnings.append(f"{run.job}: no summary line on stderr")
    else:
        if s["events"] != want_events:
            warnings.append(
                f"{run.job}: shipped {s['events']:,.0f} events, expected {want_events:,}"
            )
        if want_files is not None and s.get("files_read") != want_files:
            warnings.append(
                f"{run.job}: {s.get('files_read', -1):,.0f} files read, expected {want_files:,}"
            )
        for key in ("quarantined", "refused", "duplicates"):
            if s.get(key):
                warnings.append(f"{run.job}: {s[key]:,.0f} {key}")
    if warnings:
        tail = "\n".join(run.stderr.strip().splitlines()[-8:])
        warnings.append(f"{run.job}: last lines of stderr:\n{tail}")
    return warnings


def fresh(base: Path, name: str) -> tuple[Path, Path]:
    run_dir = base / name
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "out").mkdir()
    return run_dir / "data", run_dir / "out"


# --- report -------------------------------------------------------------------------------


def _mb(n: float) -> str:
    return f"{n / MB:,.0f}"


def row(run: Run, label: str | None = None) -> list[str]:
    cli_eps = run.summary.get("eps")
    return [
        label or run.job,
        f"{run.records:,}",
        f"{run.wall:.2f}",
        f"{run.eps:,.0f}",
        "-" if cli_eps is None else f"{cli_eps:,.0f}",
        _mb(run.main_maxrss),
        _mb(run.tree_rss),
        _mb(run.tree_pss),
        str(run.workers) if run.workers else "in-proc",
    ]


HEAD = ["job", "records", "wall s", "events/s", "CLI ev/s", "RSS main MB", "RSS tree MB",
        "PSS tree MB", "workers"]  # fmt: skip


def table(rows: list[list[str]], head: list[str] = HEAD) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = []
    for n, r in enumerate([head, *rows]):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def median_run(runs: list[Run]) -> Run:
    """The run with the median wall time (for an even count, the faster of the middle two)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def scratch_and_base(prefix: str, keep_corpus: Path | None) -> tuple[Path, Path]:
    """(a new temporary folder, the folder corpora go in): checks that ../shared is there and
    that neither folder is inside the repository."""
    if not GEN_RMS.is_file():
        fail(
            f"{GEN_RMS.relative_to(REPO.parent)} not found: this benchmark needs the shared folder"
            " next to the repository (../shared relative to the project root)"
        )
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    if _inside_repo(scratch):
        shutil.rmtree(scratch, ignore_errors=True)
        fail("the temporary folder is inside the repository; set TMPDIR elsewhere")
    if keep_corpus is None:
        return scratch, scratch / "corpus"
    if _inside_repo(keep_corpus):
        shutil.rmtree(scratch, ignore_errors=True)
        fail("--keep-corpus must be outside the repository")
    return scratch, keep_corpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="total records (1,000,000)")
    ap.add_argument("--files", type=int, default=10, help="files in the corpus (10)")
    ap.add_argument("--workers", default="auto", help="pipeline.workers: auto or a number")
    ap.add_argument("--runs", type=int, default=3, help="runs of the main job; median shown")
    ap.add_argument("--seed", default="1", help="gen_rms.py --seed (1)")
    ap.add_argument("--keep-corpus", type=Path, metavar="DIR",
                    help="build corpora under DIR and reuse them on later runs")  # fmt: skip
    ap.add_argument("--tiny-files", type=int, default=100_000,
                    help="one-record files for the resume scan (100,000; 0 skips it)")  # fmt: skip
    a = ap.parse_args()
    if a.files < 1 or a.records < a.files or a.records % a.files:
        ap.error("--records must be a positive multiple of --files")
    if a.runs < 1:
        ap.error("--runs must be >= 1")
    if a.workers != "auto" and not (a.workers.isdigit() and int(a.workers) >= 1):
        ap.error("--workers must be auto or a positive number")
    if sys.platform != "linux":
        fail("needs Linux (os.wait4 and /proc)")
    lines = a.records // a.files
    scratch, base = scratch_and_base("bench_rms_", a.keep_corpus)
    corpus = base / f"rms-{a.files}x{lines}-seed{a.seed}"
    tiny = base / f"tiny-{a.tiny_files}"
    warnings: list[str] = []
    try:
        corpus.mkdir(parents=True, exist_ok=True)
        took = build_corpus(corpus, a.files, lines, a.seed)
        size = sum(e.stat().st_size for e in os.scandir(corpus) if not e.name.startswith("."))
        how = f"built in {took:.1f} s" if took else "reused"
        print(f"corpus: {a.records:,} records in {a.files} files, {size / 1e6:,.0f} MB ({how})")
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        loop = python_loop(corpus)
        print(
            f"machine speed now: the reference Python loop (split, dict, orjson.dumps) runs"
            f" {loop:,.0f} events/s; ../shared/README.md measured {PY_LOOP_EPS:,} (x"
            f"{loop / PY_LOOP_EPS:.2f})",
            flush=True,
        )

        runs = []
        for i in range(a.runs):
            data_dir, out_dir = fresh(scratch, f"run{i + 1}")
            r = ship(f"rms run {i + 1}", a.records, corpus, data_dir, out_dir, a.workers)
            runs.append(r)
            warnings += check(r, a.records, a.files)
            print(
                f"  run {i + 1}: {r.wall:.2f} s, {r.eps:,.0f} events/s;"
                f" CLI says {r.summary.get('events', -1):,.0f} events in"
                f" {r.summary.get('seconds', -1):.2f} s ({r.summary.get('eps', -1):,.0f}/s);"
                f" wait4 maxrss {_mb(r.main_maxrss)} MB, main VmHWM {_mb(r.main_hwm)} MB,"
                f" worker VmHWM {_mb(r.worker_hwm)} MB, tree RSS {_mb(r.tree_rss)} MB"
                f" ({r.samples} samples)",
                flush=True,
            )
            shutil.rmtree(data_dir.parent, ignore_errors=True)
        rows = []
        med = median_run(runs)
        label = f"rms ship (median of {len(runs)})" if len(runs) > 1 else "rms ship"
        rows.append(row(med, label))

        if a.tiny_files:
            took = build_tiny(tiny, a.tiny_files)
            how = f"created in {took:.1f} s" if took else "reused"
            print(f"tiny files: {a.tiny_files:,} one-record files ({how})", flush=True)
            data_dir, out_dir = fresh(scratch, "tiny")
            first = ship("tiny files, first ship", a.tiny_files, tiny, data_dir, out_dir, a.workers)
            warnings += check(first, a.tiny_files, a.tiny_files)
            print(f"  first ship: {first.wall:.2f} s, {first.eps:,.0f} events/s", flush=True)
            again = ship("tiny files, resume scan", 0, tiny, data_dir, out_dir, a.workers)
            warnings += check(again, 0, 0)
            print(
                f"  resume scan: {again.wall:.2f} s; CLI says"
                f" {again.summary.get('events', -1):,.0f} events,"
                f" {again.summary.get('files_read', -1):,.0f} files read",
                flush=True,
            )
            rows.append(row(first))
            rows.append(row(again))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(table(rows))
    print()
    print(f"reference: rsyslog + mmnormalize, JSON to a file: {RSYSLOG_EPS:,} events/s")
    verdicts = [
        (f"events/s >= {TARGET_EPS:,}", med.eps >= TARGET_EPS, f"{med.eps:,.0f}"),
        (
            f"peak RSS < {TARGET_RSS_MB} MB (main)",
            med.main_maxrss < TARGET_RSS_MB * MB,
            f"{_mb(med.main_maxrss)} MB",
        ),
        (
            f"peak RSS < {TARGET_RSS_MB} MB (tree)",
            med.tree_rss < TARGET_RSS_MB * MB,
            f"{_mb(med.tree_rss)} MB",
        ),
    ]
    if a.tiny_files:
        verdicts.append(
            (
                f"resume over {a.tiny_files:,} files < {TARGET_RESUME_S:.0f} s",
                again.wall < TARGET_RESUME_S,
                f"{again.wall:.2f} s",
            )
        )
    for what, good, value in verdicts:
        print(f"target {what}: {value} ({'met' if good else 'NOT met'})")
    for w in warnings:
        print(f"WARNING: {w}")


if __name__ == "__main__":
    main()
