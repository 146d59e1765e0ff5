"""Glob patterns with ``**``, walked so that neither a symlink loop nor a stop request is ignored.

Hand-written rather than ``glob.iglob(..., recursive=True)`` because that follows symlinked
directories without remembering where it has been: two links pointing at each other make it
recurse forever, its memory growing, with no way to interrupt it between two files. (wcmatch
and pathlib either do not follow symlinked directories at all, which would silently drop a
download folder that is a symlink, or have the same loop.) Here each directory is entered once,
by device and inode, and ``stop`` is asked at every directory.

Matching follows ``glob``'s rules: ``*`` and ``?`` stay within one path segment, ``**`` as a
whole segment spans any number of directories, names starting with a dot are matched only by
a pattern segment that starts with a dot, and ``[...]`` classes take ``!`` for negation.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator

__all__ = ["iter_glob"]

_MAGIC = re.compile(r"[*?\[]")
_CASELESS = os.path.normcase("A") == "a"  # Windows


def iter_glob(pattern: str, stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
    """Paths matching ``pattern``, as ``glob.iglob(pattern, recursive=True)`` gives them, but
    each directory walked once and ``stop()`` checked as it goes."""
    if "**" not in pattern:
        yield from glob.iglob(pattern)  # one level per segment: no recursion, no loop
        return
    slash = _slashed(pattern)
    segments = slash.split("/")
    fixed = 0  # leading segments without wildcards: where the walk starts
    while fixed < len(segments) - 1 and not _MAGIC.search(segments[fixed]):
        fixed += 1
    root = "/".join(segments[:fixed]) or ("/" if fixed else os.curdir)
    matcher = re.compile(_translate(segments), re.IGNORECASE if _CASELESS else 0)
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        if stop():
            return
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []  # been here: a symlink loop, or two links to one folder
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        for name in sorted(filenames + dirnames):
            path = (
                os.path.join(dirpath, name)
                if fixed
                else os.path.relpath(os.path.join(dirpath, name))
            )
            if matcher.fullmatch(_slashed(path)):
                yield path


def _slashed(path: str) -> str:
    return path if os.sep == "/" else path.replace(os.sep, "/")


def _translate(segments: list[str]) -> str:
    out = []
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg == "**":
            out.append(r"(?:(?!\.)[^/]+/)*")
            if i == last:
                out.append(r"(?!\.)[^/]+")
            continue
        out.append(_segment(seg) + ("" if i == last else "/"))
    return "".join(out)


def _segment(seg: str) -> str:
    parts = [] if seg.startswith(".") or not _MAGIC.search(seg) else [r"(?!\.)"]
    i, n = 0, len(seg)
    while i < n:
        c = seg[i]
        i += 1
        if c == "*":
            parts.append("[^/]*")
        elif c == "?":
            parts.append("[^/]")
        elif c == "[":
            j = seg.find("]", i + 1 if i < n and seg[i] in "!]" else i)
            if j < 0:
                parts.append(r"\[")
                continue
            body = seg[i:j].replace("\\", "\\\\")
            if body.startswith("!"):
                body = "^" + body[1:]
            parts.append(f"[{body}]")
            i = j + 1
        else:
            parts.append(re.escape(c))
    return "".join(parts)
