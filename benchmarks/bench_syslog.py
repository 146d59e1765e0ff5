"""The syslog output end to end, beside rsyslog forwarding the same corpus, in the same run.

    python benchmarks/bench_syslog.py [--records N] [--files F] [--runs R] [--seed S]
                                      [--keep-corpus DIR] [--workers W] [--no-relp] [--no-rsyslog]

1. The corpus is ``bench_rms.py``'s (``../shared/bench/gen_rms.py``, 10 files x 100,000 RMS
   usage records by default, reused from ``DIR`` with ``--keep-corpus``).
2. **shipper -> TCP**: ``shipper run --once`` (one ``rms_usage`` input, one ``syslog`` output,
   RFC 5424 with the ECS event as JSON, octet counting) into a local sink: a process of this
   script that accepts TCP connections, splits octet-counted frames and counts them, and
   throws the bytes away. Wall time includes start-up, as in ``bench_rms.py``; peak RSS of the
   shipper and of its process tree (decoder workers) are sampled the same way. Beside it,
   **shipper -> NDJSON file**, the same pipeline with no syslog encoding: the floor under any
   output, so that what the syslog output itself costs per event is plain.
3. **shipper -> RELP**: the same into rsyslog's ``imrelp`` (its own folder and config,
   Direct-free default queues, each message written as one byte and a line break, so the
   receiver's cost stays small); every message is acknowledged (``rsp 200``) before the
   shipper commits.
4. **rsyslog -> TCP**: ``rsyslogd`` reads the same files with ``imfile``, splits each record's
   fields with ``mmnormalize`` (the rulebase of ``bench_peers.py``) and forwards RFC 5424 with
   the fields as JSON (``$!all-json-plain``) by ``omfwd`` with octet counting into the same
   sink; and, for scale, the same without mmnormalize (the raw line as MSG). rsyslog's time
   runs from its start to the sink's last received byte.

Prints figures side by side and never asserts; a WARNING line flags frames missing, a non-zero
exit status, or other processes busy during a run (the machine is shared: see ``uptime``).
Linux only (``/proc``, ``os.wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_peers  # noqa: E402  (sibling scripts; importing them runs nothing)
import bench_rms  # noqa: E402

REPO = bench_rms.REPO
MB = 1024 * 1024
STALLED = 30.0
FLOOR = "shipper -> NDJSON file (the floor)"


# --- the sink: a receiver that only counts octet-counted frames ----------------------------


def sink_main(port_file: Path, stats_file: Path) -> None:
    """Accept TCP connections on 127.0.0.1, count frames, keep nothing; on SIGTERM write
    ``{"frames", "bytes", "first", "last", "partial"}`` (times in epoch seconds) and exit."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    frames = total = 0
    first = last = 0.0
    pending: dict[socket.socket, tuple[bytes, int]] = {}  # leftover head, bytes still to skip
    running = True

    def stop(signum: int, frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    port_file.write_text(str(listener.getsockname()[1]))
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    reported = (-1, 0.0)

    def report() -> None:
        partial = sum(1 for head, skip in pending.values() if head or skip)
        tmp = stats_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"frames": frames, "bytes": total, "first": first, "last": last, "partial": partial}
            )
        )
        tmp.replace(stats_file)

    while running:
        if (frames, last) != reported and time.time() - last > 0.1:
            report()
            reported = (frames, last)
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            if s is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                pending[conn] = (b"", 0)
                continue
            try:
                n = s.recv_into(buf)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if not n:
                sel.unregister(s)
                s.close()  # type: ignore[union-attr]
                continue
            now = time.time()
            first = first or now
            last = now
            total += n
            head, skip = pending[s]  # type: ignore[index]
            i = 0
            if skip:
                step = min(skip, n)
                i, skip = step, skip - step
            data = head + bytes(view[i:n]) if head else view[i:n].tobytes()
            j = 0
            end = len(data)
            while j < end:
                sp = data.find(b" ", j, j + 12)
                if sp < 0:
                    break
                size = int(data[j:sp])
                nxt = sp + 1 + size
                frames += 1
                if nxt > end:
                    skip = nxt - end
                    j = end
                    break
                j = nxt
            pending[s] = (data[j:], skip)  # type: ignore[index]
    report()


class Sink:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port_file, self.stats_file = folder / "port", folder / "stats.json"
        cmd = [sys.executable, __file__, "--sink", str(self.port_file), str(self.stats_file)]
        self.proc = subprocess.Popen(cmd)
        deadline = time.monotonic() + 10
        while not self.port_file.exists() or not self.port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the sink did not start")
            time.sleep(0.02)
        self.port = int(self.port_file.read_text())

    def progress(self) -> dict[str, float]:
        try:
            return json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {"frames": 0, "last": 0.0}

    def stats(self) -> dict[str, float]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        return json.loads(self.stats_file.read_text())


# --- shipper runs ---------------------------------------------------------------------------


@dataclass
class Result:
    job: str
    records: int
    wall: float
    frames: int
    rss_main: int = 0
    rss_tree: int = 0
    cpu: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def eps(self) -> float:
        return min(self.frames, self.records) / self.wall if self.wall else 0.0


def ship(job: str, records: int, corpus: Path, run_dir: Path, output: dict, workers: str) -> Result:
    """``shipper run --once`` in a subprocess, RSS sampled as ``bench_rms.ship`` does."""
    data_dir = run_dir / "data"
    data_dir.mkdir(parents=True)
    cfg = {
        "data_dir": str(data_dir),
        "inputs": [{"type": "rms_usage", "paths": [str(corpus / "*")]}],
        "outputs": [output],
        "pipeline": {"workers": workers if workers == "auto" else int(workers)},
    }
    cfg_path = run_dir / "shipper.yaml"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "shipper.cli", "run", "--once", "--no-progress", str(cfg_path)]
    tree_rss = main_hwm = 0
    os.sync()
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=run_dir, env=env, stdout=subprocess.DEVNULL, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                wall = time.perf_counter() - t0
                break
            tree = bench_rms._tree(proc.pid)
            tree_rss = max(tree_rss, sum(bench_rms._status(p)[0] for p in tree))
            main_hwm = max(main_hwm, bench_rms._status(proc.pid)[1])
            time.sleep(bench_rms.SAMPLE_EVERY)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    code = os.waitstatus_to_exitcode(status)
    summary = bench_rms.parse_summary(stderr)
    warnings = []
    if code or summary.get("events") != records:
        tail = "\n".join(stderr.strip().splitlines()[-6:])
        warnings.append(f"{job}: exit {code}, shipped {summary.get('events')}:\n{tail}")
    return Result(
        job,
        records,
        wall,
        int(summary.get("events", 0)),
        max(usage.ru_maxrss * 1024, main_hwm),
        tree_rss,
        usage.ru_utime + usage.ru_stime,
        tuple(warnings),
    )


# --- rsyslog --------------------------------------------------------------------------------


def rsyslog_forward_config(run_dir: Path, files: list[Path], port: int, normalise: bool) -> str:
    q = bench_peers._q
    body = "%$!all-json-plain%" if normalise else "%msg%"
    lines = [
        f'global(workDirectory={q(run_dir / "work")} processInternalMessages="on"',
        '       maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off")',
        'module(load="imfile" mode="inotify")',
        'module(load="mmnormalize")',
        # RFC 5424 as shipper writes it: PRI, time, host, app, MSGID, an SD element, the body
        'template(name="fwd" type="string" string="<%PRI%>1 %TIMESTAMP:::date-rfc3339%'
        f' %HOSTNAME% shipper - azure_rms.usage [meta dataset=\\"azure_rms.usage\\"] {body}")',
        'ruleset(name="rms") {',
        '  if $msg startswith "#" then stop',
        *([f'  action(type="mmnormalize" rulebase={q(run_dir / "rms.rb")})'] if normalise else []),
        # resumeRetryCount -1: wait for a busy receiver instead of discarding (the default 0
        # drops messages while omfwd is suspended, which would flatter rsyslog's figure)
        f'  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"'
        '   TCP_Framing="octet-counted" template="fwd" action.resumeRetryCount="-1")',
        "}",
    ]
    for i, path in enumerate(files):
        lines.append(
            f'input(type="imfile" file={q(path)} tag="rms{i}" ruleset="rms" readMode="0"'
            ' addMetadata="off" maxLinesPerMinute="0" maxBytesPerMinute="0")'
        )
    lines.append(f'*.* action(type="omfile" file={q(run_dir / "rsyslogd.log")})')
    return "\n".join(lines) + "\n"


def rsyslog_forward(
    job: str, rsyslogd: str, files: list[Path], records: int, run_dir: Path, normalise: bool
) -> Result:
    (run_dir / "work").mkdir(parents=True)
    (run_dir / "rms.rb").write_text(
        bench_peers.rulebase([bench_peers.FIELDS_17, bench_peers.FIELDS_15])
    )
    sink = Sink(run_dir / "sink")
    cfg = run_dir / "rsyslog.conf"
    cfg.write_text(rsyslog_forward_config(run_dir, files, sink.port, normalise))
    cmd = [rsyslogd, "-n", "-f", str(cfg), "-i", str(run_dir / "rsyslogd.pid")]
    err = open(run_dir / "stderr.txt", "wb")
    t0 = time.time()
    proc = subprocess.Popen(
        cmd, cwd=run_dir, stdout=err, stderr=err, preexec_fn=bench_peers._die_with_parent()
    )
    cpu = hwm = 0.0
    try:
        # the sink counts; rsyslog has finished when every frame is there (or none comes)
        last_frames, changed = -1, time.monotonic()
        while proc.poll() is None:
            time.sleep(0.1)
            frames = sink.progress()["frames"]
            if frames >= records:
                break
            now = time.monotonic()
            if frames != last_frames:
                last_frames, changed = frames, now
            elif now - changed > STALLED:
                break
        cpu, hwm = bench_peers._proc_usage(proc.pid)
    finally:
        bench_peers.stop(proc)
        err.close()
    stats = sink.stats()
    warnings = []
    if stats["frames"] != records:
        warnings.append(f"{job}: the sink counted {stats['frames']:,} frames, not {records:,}")
    return Result(
        job,
        records,
        stats["last"] - t0,
        int(stats["frames"]),
        int(hwm),
        int(hwm),
        cpu,
        tuple(warnings),
    )


def relp_receiver(run_dir: Path, rsyslogd: str) -> tuple[subprocess.Popen[bytes], int]:
    """rsyslog's imrelp, each message written as "1" and a line break."""
    (run_dir / "work").mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    q = bench_peers._q
    cfg = run_dir / "rsyslog.conf"
    cfg.write_text(
        f'global(workDirectory={q(run_dir / "work")} maxMessageSize="64k")\n'
        'module(load="imrelp")\n'
        f'input(type="imrelp" port="{port}" address="127.0.0.1")\n'
        'template(name="one" type="string" string="1\\n")\n'
        f'action(type="omfile" file={q(run_dir / "out.txt")} template="one")\n'
    )
    err = open(run_dir / "stderr.txt", "wb")
    proc = subprocess.Popen(
        [rsyslogd, "-n", "-f", str(cfg), "-i", str(run_dir / "pid")],
        stdout=err,
        stderr=err,
        preexec_fn=bench_peers._die_with_parent(),
    )
    err.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("rsyslogd imrelp did not start") from None
            time.sleep(0.05)


# --- report ---------------------------------------------------------------------------------

HEAD = ["job", "records", "wall s", "events/s", "CPU s", "CPU µs/ev", "RSS main MB", "RSS tree MB"]


def row(r: Result, label: str) -> list[str]:
    return [
        label,
        f"{r.records:,}",
        f"{r.wall:.2f}",
        f"{r.eps:,.0f}",
        f"{r.cpu:.1f}",
        f"{r.cpu / max(1, min(r.frames, r.records)) * 1e6:.1f}",
        f"{r.rss_main / MB:,.0f}",
        f"{r.rss_tree / MB:,.0f}",
    ]


def median(results: list[Result]) -> Result:
    return sorted(results, key=lambda r: r.wall)[(len(results) - 1) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="total records (1,000,000)")
    ap.add_argument("--files", type=int, default=10, help="files in the corpus (10)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each job; median shown")
    ap.add_argument("--seed", default="1", help="gen_rms.py --seed (1)")
    ap.add_argument("--workers", default="auto", help="shipper's pipeline.workers")
    ap.add_argument(
        "--keep-corpus",
        type=Path,
        metavar="DIR",
        help="build the corpus under DIR and reuse it on later runs",
    )
    ap.add_argument("--no-relp", action="store_true", help="skip shipper -> RELP")
    ap.add_argument("--no-rsyslog", action="store_true", help="skip rsyslog forwarding")
    ap.add_argument("--no-shipper", action="store_true", help="skip shipper -> TCP")
    a = ap.parse_args()
    if a.files < 1 or a.records < a.files or a.records % a.files:
        ap.error("--records must be a positive multiple of --files")
    if sys.platform != "linux":
        bench_rms.fail("needs Linux (/proc, os.wait4)")
    rsyslogd = bench_peers.find_rsyslogd()
    if rsyslogd is None and not (a.no_relp and a.no_rsyslog):
        print("bench_syslog: rsyslogd not found: RELP and rsyslog jobs skipped")
        print(bench_peers.INSTALL_HINT)
        a.no_relp = a.no_rsyslog = True
    lines = a.records // a.files
    scratch, base = bench_rms.scratch_and_base("bench_syslog_", a.keep_corpus)
    corpus = base / f"rms-{a.files}x{lines}-seed{a.seed}"
    results: dict[str, list[Result]] = {}
    warnings: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))
    try:
        corpus.mkdir(parents=True, exist_ok=True)
        took = bench_rms.build_corpus(corpus, a.files, lines, a.seed)
        files = sorted(p for p in corpus.iterdir() if not p.name.startswith("."))
        how = f"built in {took:.1f} s" if took else "reused"
        print(f"corpus: {a.records:,} records in {a.files} files ({how})")
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} (1 min)")
        loop = bench_rms.python_loop(corpus)
        print(
            f"machine speed now: the reference Python loop runs {loop:,.0f} events/s"
            f" (x{loop / bench_rms.PY_LOOP_EPS:.2f} of ../shared/README.md's)",
            flush=True,
        )
        for i in range(a.runs):
            if not a.no_shipper:
                run = scratch / f"tcp{i}"
                sink = Sink(run / "sink")
                out = {"type": "syslog", "hosts": [f"127.0.0.1:{sink.port}"], "transport": "tcp"}
                r = ship(f"shipper -> TCP, run {i + 1}", a.records, corpus, run, out, a.workers)
                stats = sink.stats()
                if stats["frames"] != a.records:
                    r.warnings += (f"{r.job}: the sink counted {stats['frames']:,} frames",)
                r.frames = int(stats["frames"])
                results.setdefault("shipper -> TCP (octet counting)", []).append(r)
                print(
                    f"  {r.job}: {r.wall:.2f} s, {r.eps:,.0f} events/s, {r.cpu:.1f} s CPU,"
                    f" RSS main {r.rss_main / MB:.0f} MB, tree {r.rss_tree / MB:.0f} MB",
                    flush=True,
                )
                shutil.rmtree(run, ignore_errors=True)
                # the same pipeline into a file: the floor under any output (read, normalise,
                # dedupe, commit), for what the syslog encoding and sending add
                run = scratch / f"ndjson{i}"
                out = {"type": "ndjson", "path": str(run / "events.ndjson")}
                r = ship(f"shipper -> NDJSON, run {i + 1}", a.records, corpus, run, out, a.workers)
                results.setdefault(FLOOR, []).append(r)
                print(
                    f"  {r.job}: {r.wall:.2f} s, {r.eps:,.0f} events/s, {r.cpu:.1f} s CPU",
                    flush=True,
                )
                shutil.rmtree(run, ignore_errors=True)
            if not a.no_relp:
                run = scratch / f"relp{i}"
                proc, port = relp_receiver(run / "rsyslog", rsyslogd or "")
                out = {"type": "syslog", "hosts": [f"127.0.0.1:{port}"], "transport": "relp"}
                try:
                    r = ship(
                        f"shipper -> RELP, run {i + 1}", a.records, corpus, run, out, a.workers
                    )
                finally:
                    bench_peers.stop(proc)
                results.setdefault("shipper -> RELP (rsyslog imrelp)", []).append(r)
                print(
                    f"  {r.job}: {r.wall:.2f} s, {r.eps:,.0f} events/s,"
                    f" RSS main {r.rss_main / MB:.0f} MB",
                    flush=True,
                )
                shutil.rmtree(run, ignore_errors=True)
            if not a.no_rsyslog:
                for normalise, label in (
                    (True, "rsyslog + mmnormalize -> TCP (omfwd)"),
                    (False, "rsyslog, raw line -> TCP (omfwd)"),
                ):
                    run = scratch / f"rsyslog{i}{int(normalise)}"
                    r = rsyslog_forward(
                        f"{label}, run {i + 1}", rsyslogd or "", files, a.records, run, normalise
                    )
                    results.setdefault(label, []).append(r)
                    print(
                        f"  {r.job}: {r.wall:.2f} s, {r.eps:,.0f} events/s,"
                        f" {r.cpu:.1f} s CPU, VmHWM {r.rss_main / MB:.0f} MB",
                        flush=True,
                    )
                    shutil.rmtree(run, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    suffix = f" (median of {a.runs})" if a.runs > 1 else ""
    rows = []
    for label, rs in results.items():
        m = median(rs)
        rows.append(row(m, label + suffix))
        for rr in rs:
            warnings += list(rr.warnings)
    print(bench_rms.table(rows, HEAD))
    print(f"load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    tcp = results.get("shipper -> TCP (octet counting)")
    peer = results.get("rsyslog + mmnormalize -> TCP (omfwd)")
    floor = results.get(FLOOR)
    if tcp and floor:
        t, f = median(tcp), median(floor)
        print(
            f"the syslog output's own cost: {(t.cpu - f.cpu) / t.records * 1e6:.1f} µs CPU per"
            f" event over the NDJSON run; TCP / NDJSON events/s: {t.eps / f.eps:.2f}"
        )
    if tcp and peer:
        ratio = median(tcp).eps / median(peer).eps
        t, q = median(tcp), median(peer)
        cpu_t = t.cpu / max(1, min(t.frames, t.records))
        cpu_q = q.cpu / max(1, min(q.frames, q.records))
        print(
            f"CPU per event, shipper / rsyslog + mmnormalize: {cpu_t * 1e6:.1f} / {cpu_q * 1e6:.1f}"
            f" µs ({cpu_t / cpu_q:.2f}x); on a shared machine wall time also depends on the"
            " share of the cores each got"
        )
        print(
            f"shipper (full ECS normalisation) / rsyslog + mmnormalize (fields only), TCP:"
            f" {ratio:.2f}  -> target (>= 1.00) {'met' if ratio >= 1 else 'NOT met'}"
        )
    for w in warnings:
        print(f"WARNING: {w}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--sink":
        sink_main(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
