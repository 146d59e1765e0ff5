"""What can be known wrong before running: the data dir, and inputs that find nothing.

``shipper check`` reports each of these as an error; ``shipper run`` refuses to start without a
usable data dir (one line, no traceback) and warns about a pattern that matches nothing, since
in follow mode files may yet arrive.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shipper.private import make_dirs
from shipper.sources.globbing import iter_glob

__all__ = ["data_dir_problem", "empty_patterns"]

_MAGIC = re.compile(r"[*?\[]")


def data_dir_problem(path: Path, create: bool = True) -> str | None:
    """Why the checkpoint store cannot live in ``path``, or None. A missing folder is created
    (``create``), or else its nearest existing parent must let us create it."""
    if not path.exists() and not create:
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"data_dir {path}: cannot create it: {parent} is a file"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"data_dir {path}: cannot create it: {parent} is not writable"
        return None
    try:
        make_dirs(path)  # owner-only (shipper.private)
    except FileExistsError:
        return f"data_dir {path}: is a file, not a folder"
    except OSError as e:
        return f"data_dir {path}: cannot create it: {e.strerror or e}"
    if not path.is_dir():
        return f"data_dir {path}: is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=path, prefix=".shipper-probe-"):
            pass
    except OSError as e:
        return f"data_dir {path}: not writable: {e.strerror or e}"
    return None


def _folder(pattern: str) -> str:
    """The fixed folder a pattern starts from: its segments before the first wildcard."""
    parts = re.split(r"[\\/]", pattern)
    fixed = []
    for part in parts[:-1]:
        if _MAGIC.search(part):
            break
        fixed.append(part)
    if not fixed:
        return os.curdir
    return "/".join(fixed) or "/"


def empty_patterns(inputs: Iterable[Any]) -> Iterator[str]:
    """One line per input pattern that finds nothing: its folder missing, or no file in it
    matching. Stops at the first match of each pattern, so a big folder costs little."""
    for i, inp in enumerate(inputs):
        for j, pattern in enumerate(inp.paths):
            where = f"inputs[{i}].paths[{j}]"
            folder = _folder(pattern)
            if not os.path.isdir(folder):
                yield f"{where}: {pattern}: folder {folder} does not exist"
                continue
            if next(iter(p for p in iter_glob(pattern) if os.path.isfile(p)), None) is None:
                yield f"{where}: {pattern}: matches no file"
