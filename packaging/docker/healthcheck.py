"""The container's health check: is a shipper working on its checkpoint right now?

Healthy when (1) a process holds the lock that ``shipper run`` takes on its data dir for as
long as it runs (``<data_dir>/shipper.lock``), and (2) the checkpoint store opens and answers.
The lock is looked up in ``/proc/locks`` rather than tried: taking it, even for a moment,
would make a shipper starting at that moment refuse to run ("in use by another shipper").

The data dir comes from the config that PID 1 (the image's entry point) runs (``shipper run
CONFIG``), else from ``$SHIPPER_CONFIG``, so a config mounted elsewhere or named on the
command line is followed.
Exit 0 healthy, 1 not, with the reason on standard output (``docker inspect`` shows it).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

DEFAULT_CONFIG = "/etc/shipper/shipper.yaml"


def config_of(cmdline: list[str], environ: dict[str, str]) -> str:
    """The CONFIG argument of ``shipper run [options] CONFIG``."""
    if "run" in cmdline:
        rest = [a for a in cmdline[cmdline.index("run") + 1 :] if not a.startswith("-")]
        if rest:
            return rest[-1]
    return environ.get("SHIPPER_CONFIG", DEFAULT_CONFIG)


def shipper_pid(environ: dict[str, str]) -> int:
    """PID 1 in the container (the image's entry point); another where a test says so."""
    return int(environ.get("SHIPPER_HEALTH_PID", "1"))


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def lock_held(lock: Path, proc_locks: str) -> bool:
    """Whether ``proc_locks`` (the text of /proc/locks) lists a lock on ``lock``'s inode."""
    try:
        inode = os.stat(lock).st_ino
    except OSError:
        return False
    for line in proc_locks.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 00:2f:5678 0 EOF"; waiters have "->" after the number
        fields = [f for f in line.split() if f != "->"]
        if len(fields) > 5 and fields[5].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


def check(data_dir: Path, proc_locks: str) -> str | None:
    """None when healthy, else what is wrong."""
    lock = data_dir / "shipper.lock"
    if not lock_held(lock, proc_locks):
        return f"no shipper holds {lock}: not running, or still starting"
    db = data_dir / "checkpoint.sqlite"
    try:
        con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            con.execute("PRAGMA schema_version").fetchone()
        finally:
            con.close()
    except sqlite3.Error as e:
        return f"checkpoint {db} does not answer: {e}"
    return None


def main() -> int:
    environ = dict(os.environ)
    pid = shipper_pid(environ)
    config = config_of(cmdline(pid), environ)
    try:
        from shipper.config import load_config

        cfg = load_config(config)
    except Exception as e:  # noqa: BLE001 - any failure is "unhealthy", with its reason
        print(f"unhealthy: cannot read {config}: {e}")
        return 1
    data_dir = cfg.data_path
    if not data_dir.is_absolute():
        data_dir = Path(f"/proc/{pid}/cwd") / data_dir
    try:
        proc_locks = Path("/proc/locks").read_text()
    except OSError as e:
        print(f"unhealthy: cannot read /proc/locks: {e}")
        return 1
    problem = check(data_dir, proc_locks)
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print(f"healthy: shipping with data in {cfg.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
