"""``shipper status CONFIG``: how far the shipper has got, read from its checkpoint.

It reads while another shipper runs: the checkpoint is opened read-only (``open_readonly``), no
lock is taken and nothing is written, so it neither waits for nor holds back the running
shipper. It sees what was committed, so a file shows as ``behind`` until its batch is delivered
to every output; bytes are compared with the files as they are now on disk.

Each file is one of: ``done`` (read to its end), ``behind`` (grown since, or not finished),
``new`` (matched by an input, never read), ``empty``, ``truncated`` (shorter than the position
reached: it is read again from the start), ``gone`` (deleted, or no longer matched).

Every output is listed, network ones too (they keep no state of their own): with the time it
last delivered (the last commit of a batch, which every output had acknowledged) and last
failed or was asked to retry, as the running shipper notes them in the checkpoint
(``Store.register_outputs``, ``Store.note_failure``), and its committed state if it has one.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shipper.config import Config
from shipper.pipeline.delivery import QUARANTINE_STATE
from shipper.redact import mask
from shipper.sources.discovery import Candidate, open_position, scan
from shipper.state import FileState
from shipper.state.store import open_readonly

__all__ = ["FileProgress", "Status", "read_status", "render_json", "render_text"]


@dataclass(slots=True)
class FileProgress:
    path: str
    state: str
    #: bytes read and committed
    offset: int
    #: bytes in the file now (as recorded, for a file that is gone)
    size: int
    #: bytes still to read
    behind: int


@dataclass
class Status:
    checkpoint: str
    #: whether there is a checkpoint at all (none before the first run)
    exists: bool
    last_commit: float | None = None
    event_ids: int = 0
    files: list[FileProgress] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, int]:
        counts = Counter(f.state for f in self.files)
        return {
            **{state: counts.get(state, 0) for state in _ORDER},
            "bytes_behind": sum(f.behind for f in self.files),
        }


_ORDER = ("done", "behind", "new", "empty", "truncated", "gone")


def read_status(cfg: Config) -> Status:
    """The checkpoint's view of every file (known or matched by the inputs) and output."""
    path = cfg.data_path / "checkpoint.sqlite"
    st = Status(str(path), path.exists())
    known: dict[str, tuple[FileState, float]] = {}
    if st.exists:
        db = open_readonly(path)
        try:
            rows = db.execute(
                "SELECT key, path, format, offset, '', head_len, head_hash, size, mtime_ns,"
                " updated FROM files"
            ).fetchall()
            known = {r[0]: (FileState(*r[:9]), r[9]) for r in rows}
            states = {
                name: json.loads(state)
                for name, state in db.execute("SELECT name, state FROM output_state")
            }
            health = {}
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'output_health'").fetchone():
                health = {
                    name: (success, failure)
                    for name, success, failure in db.execute("SELECT * FROM output_health")
                }
            st.outputs = _outputs(cfg, states, health)
            (ids,) = db.execute("SELECT coalesce(sum(length(hi)), 0) / 8 FROM id_runs").fetchone()
            st.event_ids = int(ids)
        finally:
            db.close()
        st.last_commit = max((t for _, t in known.values()), default=None)
    else:
        st.outputs = _outputs(cfg, {}, {})
    found = scan(cfg.inputs, lambda key: known[key][0] if key in known else None)
    files: dict[str, FileProgress] = {}
    for c in found.candidates:  # matched, with something (maybe) to read
        prev, how = c.known, "new"
        if prev is not None:
            how = _reopened(c)
            if how != "resumed" and prev.path != c.path:  # an inode reused by another file
                gone = FileProgress(prev.path, "gone", prev.offset, prev.size, 0)
                files[f"{c.key}:gone"] = gone
            if how == "replaced":
                prev = None
        if prev is None:
            state = "new" if c.size else "empty"
            files[c.key] = FileProgress(c.path, state, 0, c.size, c.size)
        elif how == "truncated":
            files[c.key] = FileProgress(c.path, "truncated", prev.offset, c.size, c.size)
        elif c.size > prev.offset:
            files[c.key] = FileProgress(c.path, "behind", prev.offset, c.size, c.size - prev.offset)
        else:  # touched, nothing new
            files[c.key] = FileProgress(c.path, "done", prev.offset, c.size, 0)
    for key, (fs, _) in known.items():
        if key in files:
            continue
        if key in found.seen:
            files[key] = FileProgress(fs.path, "done", fs.offset, fs.size, 0)
        else:
            files[key] = FileProgress(fs.path, "gone", fs.offset, fs.size, 0)
    st.files = sorted(files.values(), key=lambda f: (_ORDER.index(f.state), f.path))
    return st


def _outputs(
    cfg: Config,
    states: dict[str, dict[str, Any]],
    health: dict[str, tuple[float | None, float | None]],
) -> dict[str, dict[str, Any]]:
    """Every output: those the last run registered (``Store.register_outputs``), or, before
    any run did, those configured; with when each last delivered and failed, and its
    committed state if it keeps one."""
    names = list(health) or [mask(out.display_name()) for out in cfg.outputs]
    names += [n for n in states if n not in names and n != QUARANTINE_STATE]
    outputs = {}
    for name in names:
        success, failure = health.get(name, (None, None))
        outputs[name] = {
            "last_success": success,
            "last_failure": failure,
            "state": states.get(name),
        }
    return outputs


def _reopened(c: Candidate) -> str:
    """What the shipper will make of a known file: resumed, truncated or replaced (the same
    test as when it opens it, on the file's first bytes)."""
    try:
        with open(c.path, "rb") as f:
            return open_position(f, c).reason
    except OSError:
        return "resumed"  # unreadable now: say what the checkpoint says


def render_json(st: Status) -> str:
    return json.dumps(
        {
            "checkpoint": st.checkpoint,
            "exists": st.exists,
            "last_commit": _iso(st.last_commit),
            "event_ids": st.event_ids,
            "totals": st.totals,
            "files": [asdict(f) for f in st.files],
            "outputs": {
                name: {
                    "last_success": _iso(out["last_success"]),
                    "last_failure": _iso(out["last_failure"]),
                    "state": out["state"],
                }
                for name, out in st.outputs.items()
            },
        },
        indent=2,
    )


def render_text(st: Status, now: float | None = None) -> Iterator[str]:
    if not st.exists:
        yield f"checkpoint {st.checkpoint}: none yet (nothing shipped)"
    else:
        when = "never"
        if st.last_commit is not None:
            ago = max((time.time() if now is None else now) - st.last_commit, 0)
            when = f"{_iso(st.last_commit)} ({_ago(ago)} ago)"
        yield (
            f"checkpoint {st.checkpoint}: last commit {when}; {st.event_ids:,} event ids remembered"
        )
    t = st.totals
    parts = [f"{t[s]:,} {s}" for s in _ORDER if t[s]]
    behind = f"; {t['bytes_behind']:,} bytes to read" if t["bytes_behind"] else ""
    yield f"files: {', '.join(parts) or 'none'}{behind}"
    width = max((len(f"{f.offset:,}/{f.size:,}") for f in st.files), default=0)
    for f in st.files:
        figures = f"{f.offset:,}/{f.size:,}".rjust(width)
        extra = f"  ({f.behind:,} bytes to read)" if f.behind else ""
        yield f"  {f.state:<9} {figures}  {f.path}{extra}"
    if st.outputs:
        yield "outputs:"
        name_width = max(len(n) for n in st.outputs)
        now = time.time() if now is None else now
        for name, out in sorted(st.outputs.items()):
            parts = [
                f"last success {_when(out['last_success'], now)}",
                f"last failure {_when(out['last_failure'], now)}",
            ]
            if out["state"] is not None:
                parts.append(_describe(out["state"]))
            yield f"  {name:<{name_width}}  {'; '.join(parts)}"


def _when(t: float | None, now: float) -> str:
    return "never" if t is None else f"{_iso(t)} ({_ago(max(now - t, 0))} ago)"


def _describe(state: dict[str, Any]) -> str:
    """An output's committed state in words: a file's committed length; else the data."""
    if set(state) == {"length", "file"}:
        return f"{state['length']:,} bytes committed"
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def data_dir_readable(path: Path) -> str | None:
    """Why the data dir cannot be read (another user's, say), or None."""
    if path.exists() and not os.access(path, os.R_OK | os.X_OK):
        return f"data_dir {path}: not readable by this user (the shipper's files are owner-only)"
    return None
