"""RMS usage records through the whole pipeline into a local Forward protocol receiver.

    python benchmarks/bench_fluentd.py [--records N] [--files F] [--runs R] [--workers W]
                                       [--keep-corpus DIR] [--modes ndjson,ack,noack]

Builds (or reuses) bench_rms's corpus, then ships it with ``shipper run --once`` in a
subprocess, ``--runs`` times per job, a fresh data_dir each run:

- ``ndjson``: the NDJSON output alone, the figure of the same hour to compare with;
- ``ack``: the Fluentd output (PackedForward, ``require_ack: true``, the defaults);
- ``noack``: the same with ``require_ack: false``.

The receiver runs in its own process on 127.0.0.1: it reads each message (the entries of a
PackedForward message are one binary string, so it does not unpack the events), counts the
events by the ``size`` option, and acks the chunk at once. Its CPU time is printed beside each
run: it shares the machine's cores with the shipper.

Beside events/s and memory, each run's CPU time per event (user + system of the shipper and
its decoder workers, from ``os.wait4``): on a machine shared with other jobs, the figure that
moves least with their load.

Prints figures and never asserts; a WARNING line flags a run whose event count is not the
corpus's. Linux only (``os.wait4`` and ``/proc``). Needs ``../shared`` beside the repository.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench_rms as rms

REPO = rms.REPO
TARGET_ACK_EPS = 150_000
TICKS = os.sysconf("SC_CLK_TCK")
#: user + system CPU seconds of each run's shipper process tree, by ``id(run)``
CPU: dict[int, float] = {}


def _cpu_per_event(run: rms.Run) -> str:
    """CPU µs per event over the shipper and its workers: what the encoding costs, less
    dependent on what else the shared machine runs than events/s."""
    return f"{CPU.get(id(run), 0.0) / max(1, run.records) * 1e6:.1f}"


# --- the receiver (its own process) -------------------------------------------------------


def _serve(port_out, count) -> None:  # type: ignore[no-untyped-def]
    import msgpack

    def handle(conn: socket.socket) -> None:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=64 << 20)
        with conn:
            while data := conn.recv(1 << 20):
                unpacker.feed(data)
                acks = []
                for message in unpacker:
                    options = message[2] if len(message) > 2 else {}
                    with count.get_lock():
                        count.value += options.get("size", 0)
                    if "chunk" in options:
                        acks.append(msgpack.packb({"ack": options["chunk"]}))
                if acks:
                    conn.sendall(b"".join(acks))

    server = socket.create_server(("127.0.0.1", 0))
    port_out.put(server.getsockname()[1])
    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# --- one run --------------------------------------------------------------------------------


def ship(
    job: str, records: int, corpus: Path, scratch: Path, output: dict, workers: str
) -> rms.Run:
    """``run --once`` with ``output``, sampled like bench_rms.ship (which writes NDJSON only)."""
    data_dir, out_dir = rms.fresh(scratch, job.replace(" ", "_"))
    if output["type"] == "ndjson":
        output = {**output, "path": str(out_dir / "events.ndjson")}
    cfg = {
        "data_dir": str(data_dir),
        "inputs": [{"type": "rms_usage", "paths": [str(corpus / "*")]}],
        "outputs": [output],
        "pipeline": {"workers": workers if workers == "auto" else int(workers)},
    }
    cfg_path = data_dir.parent / "shipper.yaml"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "shipper.cli", "run", "--once", "--no-progress", str(cfg_path)]
    run = rms.Run(job, records)
    workers_seen: set[int] = set()
    others: set[int] = set()
    os.sync()
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=data_dir.parent, env=env, stdout=subprocess.DEVNULL,
                                stderr=err)  # fmt: skip
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                run.wall = time.perf_counter() - t0
                break
            rss_sum = pss_sum = 0
            for p in rms._tree(proc.pid):
                rss, hwm = rms._status(p)
                rss_sum += rss
                pss_sum += rms._pss(p)
                if p == proc.pid:
                    run.main_hwm = max(run.main_hwm, hwm)
                elif p in workers_seen or (p not in others and rms._is_worker(p)):
                    workers_seen.add(p)
                    run.worker_hwm = max(run.worker_hwm, hwm)
                else:
                    others.add(p)
            run.tree_rss = max(run.tree_rss, rss_sum)
            run.tree_pss = max(run.tree_pss, pss_sum)
            run.samples += 1
            time.sleep(rms.SAMPLE_EVERY)
        proc.returncode = run.exit_code = os.waitstatus_to_exitcode(status)
        run.main_maxrss = usage.ru_maxrss * 1024
        CPU[id(run)] = usage.ru_utime + usage.ru_stime  # the shipper and its decoder workers
        err.seek(0)
        run.stderr = err.read().decode("utf-8", "replace")
    run.workers = len(workers_seen)
    run.summary = rms.parse_summary(run.stderr)
    shutil.rmtree(data_dir.parent, ignore_errors=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="total records (1,000,000)")
    ap.add_argument("--files", type=int, default=10, help="files in the corpus (10)")
    ap.add_argument("--workers", default="auto", help="pipeline.workers: auto or a number")
    ap.add_argument("--runs", type=int, default=3, help="runs per job; the median is shown")
    ap.add_argument("--modes", default="ndjson,ack,noack", help="jobs to run, in this order")
    ap.add_argument("--keep-corpus", type=Path, metavar="DIR",
                    help="build the corpus under DIR and reuse it on later runs")  # fmt: skip
    a = ap.parse_args()
    if a.files < 1 or a.records < a.files or a.records % a.files:
        ap.error("--records must be a positive multiple of --files")
    modes = [m for m in a.modes.split(",") if m]
    if not modes or set(modes) - {"ndjson", "ack", "noack"}:
        ap.error("--modes: a comma-separated list of ndjson, ack, noack")
    if sys.platform != "linux":
        rms.fail("needs Linux (os.wait4 and /proc)")
    lines = a.records // a.files
    scratch, base = rms.scratch_and_base("bench_fluentd_", a.keep_corpus)
    corpus = base / f"rms-{a.files}x{lines}-seed1"

    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    count = ctx.Value("q", 0)
    receiver = ctx.Process(target=_serve, args=(ports, count), daemon=True)
    receiver.start()
    port = ports.get(timeout=30)
    fluentd = {"type": "fluentd", "hosts": [f"127.0.0.1:{port}"]}
    outputs = {
        "ndjson": {"type": "ndjson"},
        "ack": {**fluentd, "require_ack": True},
        "noack": {**fluentd, "require_ack": False},
    }
    warnings: list[str] = []
    rows = []
    medians: dict[str, rms.Run] = {}
    try:
        corpus.mkdir(parents=True, exist_ok=True)
        took = rms.build_corpus(corpus, a.files, lines, "1")
        how = f"built in {took:.1f} s" if took else "reused"
        print(f"corpus: {a.records:,} records in {a.files} files ({how})")
        with open("/proc/loadavg") as f:
            print(f"machine: {os.cpu_count()} CPUs, load average {f.read().split()[:3]}")
        loop = rms.python_loop(corpus)
        print(f"machine speed now: reference Python loop {loop:,.0f} events/s "
              f"(x{loop / rms.PY_LOOP_EPS:.2f} of ../shared/README.md)", flush=True)  # fmt: skip
        for mode in modes:
            runs = []
            for i in range(a.runs):
                before_events, before_cpu = count.value, _cpu_seconds(receiver.pid)
                r = ship(
                    f"{mode} run {i + 1}", a.records, corpus, scratch, outputs[mode], a.workers
                )
                recv_cpu = _cpu_seconds(receiver.pid) - before_cpu
                runs.append(r)
                warnings += rms.check(r, a.records, a.files)
                got = count.value - before_events
                if mode != "ndjson" and got != a.records:
                    warnings.append(f"{r.job}: the receiver counted {got:,} events")
                print(f"  {r.job}: {r.wall:.2f} s, {r.eps:,.0f} events/s, "
                      f"{_cpu_per_event(r)} µs CPU per event, main maxrss "
                      f"{rms._mb(r.main_maxrss)} MB, tree RSS {rms._mb(r.tree_rss)} MB"
                      + (f"; receiver {got:,} events, {recv_cpu:.1f} s CPU"
                         if mode != "ndjson" else ""), flush=True)  # fmt: skip
            med = medians[mode] = rms.median_run(runs)
            rows.append([*rms.row(med, f"{mode} (median of {len(runs)})"), _cpu_per_event(med)])
    finally:
        receiver.kill()
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(rms.table(rows, [*rms.HEAD, "CPU µs/ev"]))
    with open("/proc/loadavg") as f:
        print(f"load average now: {' '.join(f.read().split()[:3])}")
    if "ack" in medians:
        eps = medians["ack"].eps
        verdict = "met" if eps >= TARGET_ACK_EPS else "NOT met"
        print(f"\ntarget: >= {TARGET_ACK_EPS:,} events/s with acks: {verdict} ({eps:,.0f})")
    for w in warnings:
        print(f"WARNING: {w}")


if __name__ == "__main__":
    main()
