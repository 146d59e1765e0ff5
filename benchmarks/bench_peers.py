"""rsyslog on this machine, today, on the corpus bench_rms.py ships: the peer figure, same-day.

    python benchmarks/bench_peers.py [--records N] [--files F] [--runs R] [--seed S]
                                     [--keep-corpus DIR] [--metadata] [--plain]

Why: the throughput target compares ``shipper`` with rsyslog + mmnormalize (179,000 events/s in
``../shared/README.md``), but that figure was measured on another day, and these shared 2-core
machines drift by a quarter or more from day to day. This script measures the peer itself, here
and now, on the same corpus (``../shared/bench/gen_rms.py``, built or reused exactly as
``bench_rms.py`` does, in ``DIR/rms-<files>x<lines>-seed<S>`` with ``--keep-corpus DIR``), so
that ``shipper``'s events/s can be read against a same-machine, same-day peer.

1. Times the reference Python loop of ``../shared/README.md`` (split, dict, ``orjson.dumps`` to
   ``/dev/null``; ``bench_rms.python_loop``), the machine-speed calibration bench_rms.py prints.
2. Runs ``rsyslogd -n -f CONFIG -i PIDFILE`` in the foreground, ``--runs`` times, each with a
   fresh temporary folder holding its config, work directory (imfile state), rulebase and
   output. The config loads only imfile and mmnormalize (no imuxsock, imklog or other input; it
   does not read /etc/rsyslog.conf, write to /var/log or use the system log socket): imfile
   reads the corpus files (``readMode="0"``, one record a line, no rate limits), drops the
   ``#`` header lines, mmnormalize splits the tab-separated fields with a liblognorm rulebase
   (the 17-field layout, and the legacy 15-field layout of the first files of the corpus), and
   omfile writes the named fields as one compact JSON object a line
   (``$!all-json-plain``). Wall time runs from starting rsyslogd to the last write to the
   output file (its mtime, once it stopped growing and holds all records); events/s = records /
   wall time; the median run is the figure. ``--metadata`` also times it with imfile's file name
   and line offset in every record (what a wildcard input adds by default; ``shipper``'s events
   carry both too); ``--plain`` also times it without mmnormalize (the line as a JSON string).

Prints figures and never asserts; a WARNING line flags records missing, duplicated or not split,
rsyslogd's own error messages, and other processes busy during a run (this machine is shared).
If rsyslogd (or its mmnormalize module) is not installed it says what to install and exits 0;
it installs nothing. Linux only (``/proc``); standard library plus ``orjson`` for the loop.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_rms  # noqa: E402  (a sibling script; importing it runs nothing)

REPO = bench_rms.REPO
GEN_RMS = bench_rms.GEN_RMS
MB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")

RSYSLOG_EPS = bench_rms.RSYSLOG_EPS  # ../shared/README.md, measured on an earlier day
PY_LOOP_EPS = bench_rms.PY_LOOP_EPS  # the reference loop, the same day as RSYSLOG_EPS

FIELDS_17 = bench_rms.FIELDS_17
FIELDS_15 = FIELDS_17[:15]  # the legacy layout ends at c-ip

POLL_EVERY = 0.05  # seconds between stat() calls on the output file
SETTLED = 1.0  # seconds without growth before the output's lines are counted
STALLED = 30.0  # seconds without growth (and records missing) before a run is given up
STOP_WAIT = 10.0  # seconds rsyslogd gets to exit after SIGTERM before SIGKILL
BUSY_OTHERS = 0.2  # cores used by other processes during a run above which a WARNING says so

INSTALL_HINT = """\
rsyslogd with its imfile and mmnormalize modules is needed to measure the peer.
  Debian/Ubuntu: apt-get install -y rsyslog
                 (mmnormalize is part of the rsyslog package there; it pulls in liblognorm5)
  Fedora/RHEL:   dnf install -y rsyslog rsyslog-mmnormalize
Installing the package may start the system's rsyslog service; this benchmark does not need it
(it runs its own rsyslogd with its own config): systemctl disable --now rsyslog if unwanted."""


def fail(msg: str) -> None:
    print(f"bench_peers: {msg}", file=sys.stderr)
    sys.exit(2)


def find_rsyslogd() -> str | None:
    """rsyslogd on PATH, or in /usr/sbin (not on a normal user's PATH)."""
    found = shutil.which("rsyslogd")
    if found:
        return found
    for folder in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        path = Path(folder) / "rsyslogd"
        if os.access(path, os.X_OK):
            return str(path)
    return None


def rsyslog_version(rsyslogd: str) -> str:
    done = subprocess.run([rsyslogd, "-v"], capture_output=True, text=True, check=False)
    first = done.stdout.splitlines()[0] if done.stdout else ""
    return " ".join(first.split()[:2]) or "rsyslogd (version unknown)"


# --- rsyslog config -----------------------------------------------------------------------


def _q(text: str | Path) -> str:
    """A RainerScript string literal."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def rulebase(layouts: list[list[str]]) -> str:
    """A liblognorm v2 rulebase: one rule per layout, fields split at tabs, by position.

    char-sep matches zero or more characters (fields may be empty); the last field takes the
    rest of the line. For a 17-field line, the 15-field rule's ``rest`` at c-ip would match
    too, but liblognorm tries ``rest`` only after every other parser at that point of its
    parse graph failed, so each line gets the rule with its own number of fields.
    """
    lines = ["version=2"]
    for fields in layouts:
        parts: list[dict[str, str]] = []
        for i, name in enumerate(fields):
            if i:
                parts.append({"type": "literal", "text": "\t"})
            if i == len(fields) - 1:
                parts.append({"type": "rest", "name": name})
            else:
                parts.append({"type": "char-sep", "name": name, "extradata": "\t"})
        lines.append(f"rule=:%{json.dumps(parts)}%")
    return "\n".join(lines) + "\n"


def config(run_dir: Path, files: list[Path], normalise: bool, metadata: bool = False) -> str:
    """The whole rsyslogd config: nothing loaded beyond imfile (and mmnormalize).

    ``metadata``: imfile adds the file name and the line's offset to every record (in
    ``$!metadata``, so in the JSON), as it does by default for an input with a wildcard.
    """
    out = run_dir / "out.json"
    lines = [
        # internal messages (errors) go to the default ruleset below, not to the system's log
        # socket; tabs reach mmnormalize as tabs, not as #011
        f'global(workDirectory={_q(run_dir / "work")} processInternalMessages="on"',
        '       maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")',
        'module(load="imfile" mode="inotify")',
    ]
    if normalise:
        lines += [
            'module(load="mmnormalize")',
            'template(name="fields" type="string" string="%$!all-json-plain%\\n")',
            'ruleset(name="rms") {',
            '  if $msg startswith "#" then stop',
            f'  action(type="mmnormalize" rulebase={_q(run_dir / "rms.rb")})',
            f'  action(type="omfile" file={_q(out)} template="fields")',
            "}",
        ]
    else:
        lines += [
            'template(name="line" type="list") {',
            '  constant(value="{\\"message\\":\\"")',
            '  property(name="msg" format="json")',
            '  constant(value="\\"}\\n")',
            "}",
            'ruleset(name="rms") {',
            '  if $msg startswith "#" then stop',
            f'  action(type="omfile" file={_q(out)} template="line")',
            "}",
        ]
    for i, path in enumerate(files):
        lines.append(
            f'input(type="imfile" file={_q(path)} tag="rms{i}" ruleset="rms" readMode="0"'
            f' addMetadata="{"on" if metadata else "off"}" maxLinesPerMinute="0"'
            ' maxBytesPerMinute="0")'
        )
    lines.append(f'*.* action(type="omfile" file={_q(run_dir / "rsyslogd.log")})')
    return "\n".join(lines) + "\n"


def prepare(run_dir: Path, files: list[Path], normalise: bool, metadata: bool = False) -> Path:
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "work").mkdir(parents=True)
    (run_dir / "rms.rb").write_text(rulebase([FIELDS_17, FIELDS_15]))
    cfg = run_dir / "rsyslog.conf"
    cfg.write_text(config(run_dir, files, normalise, metadata))
    return cfg


def validate(rsyslogd: str, cfg: Path) -> None:
    """``rsyslogd -N1``: a missing module means an incomplete install (hint, exit 0)."""
    cmd = [rsyslogd, "-N1", "-f", str(cfg)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    said = (done.stdout + done.stderr).strip()
    if done.returncode == 0:
        return
    if "could not load module" in said or "cannot open shared object" in said:
        print(f"bench_peers: rsyslogd cannot load a module it needs:\n{said}\n")
        print(INSTALL_HINT)
        sys.exit(0)
    fail(f"rsyslogd -N1 refused the generated config (exit {done.returncode}):\n{said}")


# --- one measured run ---------------------------------------------------------------------


@dataclass
class Run:
    job: str
    records: int
    wall: float = 0.0  # seconds from starting rsyslogd to the last write to the output
    lines: int = 0  # lines in the output file
    first: bytes = b""  # the first of them
    unparsed: int = 0  # lines mmnormalize did not split (they carry "unparsed-data")
    with_17: int = 0  # lines with the 17-field layout (they have "admin-action")
    cpu: float = 0.0  # rsyslogd's user + system CPU seconds up to the end
    hwm: int = 0  # bytes, rsyslogd's VmHWM
    others: float = 0.0  # cores the rest of the machine used meanwhile (not rsyslogd, not us)
    problem: str = ""

    @property
    def eps(self) -> float:
        """Records that arrived (all of them, unless a WARNING says otherwise) per second."""
        return min(self.lines, self.records) / self.wall if self.wall > 0 else 0.0


def _die_with_parent() -> Callable[[], None] | None:
    """For Popen(preexec_fn=): the child gets SIGTERM when this script dies, even by SIGKILL."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the child
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _proc_usage(pid: int) -> tuple[float, int]:
    """(CPU seconds, VmHWM bytes) of a live process; (0, 0) if it is gone."""
    cpu, hwm = 0.0, 0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return cpu, hwm


def _machine_busy() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat; idle, iowait, steal excluded)."""
    with open("/proc/stat", "rb") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, _steal = ticks
    return (user + nice + system + irq + softirq) / CLK_TCK


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class Counter:
    """Counts lines (and markers) of a growing file incrementally, whole lines at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = self.unparsed = self.with_17 = 0
        self.first = b""  # the first line, checked for the field names

    def update(self) -> None:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            f.seek(self.offset)
            while chunk := f.read(4 * MB):
                end = chunk.rfind(b"\n") + 1
                if not end:
                    break  # a partial last line: counted once it is complete
                chunk = chunk[:end] if end < len(chunk) else chunk
                if not self.lines:
                    self.first = chunk[: chunk.index(b"\n")]
                self.lines += chunk.count(b"\n")
                self.unparsed += chunk.count(b'"unparsed-data"')
                self.with_17 += chunk.count(b'"admin-action"')
                self.offset += end
                f.seek(self.offset)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if rsyslogd has not exited within STOP_WAIT seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(job: str, rsyslogd: str, cfg: Path, records: int) -> Run:
    run_dir = cfg.parent
    out = run_dir / "out.json"
    run = Run(job, records)
    counter = Counter(out)
    die_with_parent = _die_with_parent()
    os.sync()  # the previous run's output is written back now, not during this run
    with open(run_dir / "stderr.txt", "wb") as err:
        cmd = [rsyslogd, "-n", "-f", str(cfg), "-i", str(run_dir / "rsyslogd.pid")]
        busy0, own0 = _machine_busy(), _own_cpu()
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=run_dir, stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, preexec_fn=die_with_parent)  # fmt: skip
        try:
            size, changed = -1, time.perf_counter()
            while True:
                time.sleep(POLL_EVERY)
                if proc.poll() is not None:
                    run.problem = f"rsyslogd exited early (status {proc.returncode})"
                    break
                try:
                    now_size = out.stat().st_size
                except FileNotFoundError:
                    now_size = 0
                now = time.perf_counter()
                if now_size != size:
                    size, changed = now_size, now
                    continue
                idle = now - changed
                if idle < SETTLED:
                    continue
                if size:
                    counter.update()
                    if counter.lines >= records:
                        break
                if idle > STALLED:
                    run.problem = f"the output did not grow for {STALLED:.0f} s"
                    break
            run.cpu, run.hwm = _proc_usage(proc.pid)
            busy = _machine_busy() - busy0 - run.cpu - (_own_cpu() - own0)
            run.others = max(0.0, busy / (time.time() - t0))
        finally:
            stop(proc)
    counter.update()
    run.lines, run.unparsed, run.with_17 = counter.lines, counter.unparsed, counter.with_17
    run.first = counter.first
    try:
        run.wall = out.stat().st_mtime_ns / 1e9 - t0
    except FileNotFoundError:
        run.wall = 0.0
    return run


def check(run: Run, normalise: bool) -> list[str]:
    warnings = []
    if run.problem:
        warnings.append(f"{run.job}: {run.problem}")
    if run.lines != run.records:
        warnings.append(f"{run.job}: {run.lines:,} records written, expected {run.records:,}")
    if normalise and run.unparsed:
        warnings.append(f"{run.job}: {run.unparsed:,} records not split by mmnormalize")
    if normalise and run.first:
        try:
            missing = set(FIELDS_15) - set(json.loads(run.first))
        except ValueError:
            missing = {"(not a JSON object)"}
        if missing:
            warnings.append(f"{run.job}: the first record lacks {', '.join(sorted(missing))}")
    if run.others > BUSY_OTHERS:
        warnings.append(
            f"{run.job}: other processes kept {run.others:.2f} of the {os.cpu_count()} cores"
            " busy meanwhile; its figure is low (run again when the machine is quiet)"
        )
    return warnings


def rsyslog_errors(run_dir: Path) -> list[str]:
    """Error lines rsyslogd wrote to stderr or logged about itself (the default ruleset)."""
    found = []
    for name in ("stderr.txt", "rsyslogd.log"):
        try:
            text = (run_dir / name).read_text(errors="replace")
        except OSError:
            continue
        found += [ln for ln in text.splitlines() if "error" in ln.lower()]
    return found


def rsyslog_said(run_dir: Path) -> str:
    parts = []
    for name in ("stderr.txt", "rsyslogd.log"):
        try:
            text = (run_dir / name).read_text(errors="replace").strip()
        except OSError:
            continue
        if text:
            parts.append(f"{name}:\n" + "\n".join(text.splitlines()[-8:]))
    return "\n".join(parts)


# --- report -------------------------------------------------------------------------------


def median_run(runs: list[Run]) -> Run:
    """The run with the median wall time (for an even count, the faster of the middle two)."""
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


HEAD = ["job", "records", "wall s", "events/s", "cpu s", "cores", "RSS MB", "others"]


def row(run: Run, label: str) -> list[str]:
    return [
        label,
        f"{run.records:,}",
        f"{run.wall:.2f}",
        f"{run.eps:,.0f}",
        f"{run.cpu:.2f}",
        f"{run.cpu / run.wall:.2f}" if run.wall > 0 else "-",
        f"{run.hwm / MB:,.0f}",
        f"{run.others:.2f}",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="total records (1,000,000)")
    ap.add_argument("--files", type=int, default=10, help="files in the corpus (10)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each job; median shown")
    ap.add_argument("--seed", default="1", help="gen_rms.py --seed (1)")
    ap.add_argument("--keep-corpus", type=Path, metavar="DIR",
                    help="build the corpus under DIR and reuse it on later runs")  # fmt: skip
    ap.add_argument("--plain", action="store_true", help="also time rsyslog without mmnormalize")
    ap.add_argument("--metadata", action="store_true",
                    help="also time it with imfile's file name and offset in records")  # fmt: skip
    a = ap.parse_args()
    if a.files < 1 or a.records < a.files or a.records % a.files:
        ap.error("--records must be a positive multiple of --files")
    if a.runs < 1:
        ap.error("--runs must be >= 1")
    if sys.platform != "linux":
        fail("needs Linux (/proc)")
    rsyslogd = find_rsyslogd()
    if rsyslogd is None:
        print("bench_peers: rsyslogd not found, nothing measured.\n")
        print(INSTALL_HINT)
        return
    lines = a.records // a.files
    scratch, base = bench_rms.scratch_and_base("bench_peers_", a.keep_corpus)
    corpus = base / f"rms-{a.files}x{lines}-seed{a.seed}"
    jobs = [("rsyslog + mmnormalize", True, False)]
    if a.metadata:
        jobs.append(("rsyslog + mmnormalize + file, offset", True, True))
    if a.plain:
        jobs.append(("rsyslog, no normalisation", False, False))
    warnings: list[str] = []
    medians: dict[str, Run] = {}
    # SIGTERM (and SIGHUP) unwind like Ctrl+C, so the finally below stops rsyslogd
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    try:
        validate(rsyslogd, prepare(scratch / "check", [corpus / "x"], True))
        corpus.mkdir(parents=True, exist_ok=True)
        took = bench_rms.build_corpus(corpus, a.files, lines, a.seed)
        files = sorted(p for p in corpus.iterdir() if not p.name.startswith("."))
        size = sum(p.stat().st_size for p in files)
        how = f"built in {took:.1f} s" if took else "reused"
        print(f"corpus: {a.records:,} records in {a.files} files, {size / 1e6:,.0f} MB ({how})")
        print(f"machine: {os.cpu_count()} CPUs; {rsyslog_version(rsyslogd)} ({rsyslogd})")
        loop = bench_rms.python_loop(corpus)
        print(
            f"machine speed now: the reference Python loop (split, dict, orjson.dumps) runs"
            f" {loop:,.0f} events/s; ../shared/README.md measured {PY_LOOP_EPS:,} (x"
            f"{loop / PY_LOOP_EPS:.2f})",
            flush=True,
        )
        for job, normalise, metadata in jobs:
            runs = []
            for i in range(a.runs):
                run_dir = scratch / f"run{len(medians)}-{i + 1}"
                cfg = prepare(run_dir, files, normalise, metadata)
                r = measure(f"{job}, run {i + 1}", rsyslogd, cfg, a.records)
                runs.append(r)
                found = check(r, normalise)
                found += [f"{r.job}: rsyslogd: {e}" for e in rsyslog_errors(run_dir)[:5]]
                if found and (said := rsyslog_said(cfg.parent)):
                    found.append(f"{r.job}: rsyslogd said:\n{said}")
                warnings += found
                layouts = (
                    f" ({r.with_17:,} with 17 fields, {r.lines - r.with_17:,} with 15;"
                    f" {r.unparsed:,} not split)"
                    if normalise
                    else ""
                )
                print(
                    f"  {job}, run {i + 1}: {r.wall:.2f} s, {r.eps:,.0f} events/s;"
                    f" {r.lines:,} lines written{layouts}; rsyslogd {r.cpu:.2f} s CPU,"
                    f" VmHWM {r.hwm / MB:,.0f} MB; other processes {r.others:.2f} cores",
                    flush=True,
                )
                shutil.rmtree(cfg.parent, ignore_errors=True)
            medians[job] = median_run(runs)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    label = f" (median of {a.runs})" if a.runs > 1 else ""
    print(bench_rms.table([row(r, job + label) for job, r in medians.items()], HEAD))
    print()
    peer = medians["rsyslog + mmnormalize"]
    print(f"rsyslog + mmnormalize, JSON to a file, this machine now: {peer.eps:,.0f} events/s")
    print(
        f"  ../shared/README.md, an earlier day: {RSYSLOG_EPS:,} events/s, with the Python loop"
        f" at {PY_LOOP_EPS:,} (rsyslog/loop {RSYSLOG_EPS / PY_LOOP_EPS:.2f});"
        f" today rsyslog/loop {peer.eps / loop:.2f}"
    )
    print(
        "  compare with bench_rms.py's events/s run right after this, with the same"
        " --keep-corpus; shipper's events also carry the file name and offset (--metadata)"
    )
    for w in warnings:
        print(f"WARNING: {w}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # rsyslogd is stopped and the temporary folder gone by now
        print("bench_peers: interrupted", file=sys.stderr)
        sys.exit(130)
