"""Finding files that have something to read, by polling globs.

Polling rather than inotify or ReadDirectoryChangesW: it is the one mechanism that works the
same on Linux, Windows and network shares, and a stat per file is cheap. A file whose size and
modification time match what the checkpoint recorded, and which was read to its end, is not
even opened, so a restart over 100,000 shipped files costs one stat each.

Discovery only reports; deciding where to resume (truncated? index reused?) needs the file open
and happens in ``open_file``.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from shipper.errors import ShipperError
from shipper.sources.base import FileRefused, Format
from shipper.sources.globbing import iter_glob
from shipper.sources.identity import HEAD_BYTES, file_key, head_hash
from shipper.state import FileState

log = logging.getLogger("shipper")


@dataclass(slots=True)
class Candidate:
    """A file with possibly unread data, and the input (settings) it belongs to."""

    path: str
    key: str
    size: int
    mtime_ns: int
    input: Any
    known: FileState | None


@dataclass(slots=True)
class Scan:
    candidates: list[Candidate]
    #: keys of every file that matched, read or not, to tell which known files are gone
    seen: set[str]


def _matches(inputs: Iterable[Any], stop: Callable[[], bool]) -> Iterator[tuple[str, Any]]:
    for inp in inputs:
        for pattern in inp.paths:
            for path in sorted(iter_glob(pattern, stop)):
                name = os.path.basename(path)
                if any(
                    fnmatch.fnmatch(path, ex) or fnmatch.fnmatch(name, ex) for ex in inp.exclude
                ):
                    continue
                yield path, inp


def scan(
    inputs: Iterable[Any],
    known: Callable[[str], FileState | None],
    stop: Callable[[], bool] = lambda: False,
) -> Scan:
    """The files matched that may have something to read; ``known`` gives a file's last
    recorded state by key (a query, not a dict: 100,000 states would weigh 60 MB). Returns
    early, with what it found so far, once ``stop()`` is true (a shutdown must not wait for
    the scan of a huge tree)."""
    candidates: list[Candidate] = []
    seen: set[str] = set()
    for n, (path, inp) in enumerate(_matches(inputs, stop)):
        if n % 1024 == 1023 and stop():
            break
        try:
            st = os.stat(path)
        except OSError:
            continue  # vanished between glob and stat
        if not stat.S_ISREG(st.st_mode):
            continue
        key = file_key(st, path)
        if key in seen:
            continue  # matched by two patterns, or a hard link
        seen.add(key)
        prev = known(key)
        if (
            prev is not None
            and prev.offset == st.st_size == prev.size
            and prev.mtime_ns == st.st_mtime_ns
        ):
            continue
        candidates.append(Candidate(path, key, st.st_size, st.st_mtime_ns, inp, prev))
    return Scan(candidates, seen)


@dataclass(slots=True)
class Opened:
    """Where to start reading an open file, and why (a resumed file's reader state is in the
    store: the scan does not load it for every file)."""

    start: int
    format: str | None
    head_len: int
    head_hash: str
    reason: str  # new | resumed | truncated | replaced


def open_position(f: BinaryIO, cand: Candidate) -> Opened:
    """Resume where the checkpoint says, unless the file was truncated or is another file."""
    head_len = min(cand.size, HEAD_BYTES)
    head = head_hash(f, head_len)
    prev = cand.known
    if prev is None:
        return Opened(0, None, head_len, head, "new")
    if cand.size < prev.offset:
        return Opened(0, None, head_len, head, "truncated")
    same = head if prev.head_len == head_len else head_hash(f, prev.head_len)
    if same != prev.head_hash:
        return Opened(0, None, head_len, head, "replaced")
    return Opened(prev.offset, prev.format, head_len, head, "resumed")


#: formats that could not be loaded in this process, and why (each said once)
_unusable: dict[str, str] = {}


def _usable(name: str) -> Format | None:
    """The format ``name``, or None when it cannot be loaded (an unknown name, or a plugin
    that fails to import): said once, as a warning, so that one broken plugin format does
    not keep the formats after it in an input's list from being tried, nor fill the log."""
    from shipper.sources import FORMATS

    try:
        return FORMATS[name]
    except ShipperError as e:
        if name not in _unusable:
            _unusable[name] = str(e)
            log.warning("format %s skipped, trying the next of each input's formats: %s", name, e)
        return None


def _sniffs(name: str, head: bytes, path: str) -> bool:
    fmt = _usable(name)
    return fmt is not None and fmt.sniff(head, path)


def begin(f: BinaryIO, cand: Candidate, saved_state: Callable[[str], str]) -> FileState:
    """Where and how to read an open file: its format (known, or sniffed from its first bytes
    among its input's formats) and the position to start at, with the reader state saved
    there (``saved_state(key)``, fetched only when resuming). Raises ``FileRefused`` for a
    file none of its input's formats recognises."""
    where = open_position(f, cand)
    state = saved_state(cand.key) if where.reason == "resumed" else ""
    fmt_name = where.format
    if fmt_name is not None and _usable(fmt_name) is None:
        raise FileRefused(
            f"{cand.path}: was being read as {fmt_name}, which cannot be loaded now"
            f" ({_unusable[fmt_name]})"
        )
    if fmt_name is None:
        f.seek(0)
        head = f.read(HEAD_BYTES)
        formats = cand.input.formats
        fmt_name = next((n for n in formats if _sniffs(n, head, cand.path)), None)
        if fmt_name is None:
            raise FileRefused(
                f"{cand.path}: not a recognised {cand.input.type} file"
                f" (tried: {', '.join(formats)})"
            )
    if where.reason in ("truncated", "replaced"):
        log.info("%s: %s since last read; reading from the start", cand.path, where.reason)
    return FileState(
        cand.key,
        cand.path,
        fmt_name,
        where.start,
        state,
        where.head_len,
        where.head_hash,
        cand.size,
        cand.mtime_ns,
    )
