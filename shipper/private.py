"""Owner-only files and folders: what the shipper writes holds audit events and secrets' traces.

Events name users, files and IP addresses; the checkpoint and the quarantine hold raw records.
So every file the shipper creates is readable by its owner only (``0600``, folders ``0700``),
whatever the umask (a service's umask is often ``022``), unless an output is given its own
``file_mode`` (a log collector's group, say ``0640``). Modes are set when a file or folder is
created; a file already there is left as its owner made it, except the checkpoint, which is
always the shipper's own (``tighten``).

On Windows, where a mode says only "read-only or not", files inherit the folder's ACL: these
functions create files there as usual and change nothing else.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import FileLock

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "dir_mode_for",
    "data_dir_lock",
    "make_dirs",
    "open_new",
    "parse_mode",
    "tighten",
]

FILE_MODE = 0o600
DIR_MODE = 0o700
POSIX = os.name == "posix"


def parse_mode(value: object) -> int:
    """``"0640"``, ``"640"``, ``0o640`` or ``416`` -> 0o640; only permission bits, and the
    owner must keep reading and writing (the shipper appends to the file it creates)."""
    if isinstance(value, bool):
        raise ValueError('a file mode is octal digits, e.g. "0640"')
    if isinstance(value, int):
        mode = value
    else:
        text = str(value).strip().lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text):
            raise ValueError(f'not an octal file mode: {value!r} (e.g. "0640")')
        mode = int(text, 8)
    if mode & ~0o777:
        raise ValueError(f"{value!r}: only permission bits (at most 0777) make a file mode")
    if mode & 0o600 != 0o600:
        raise ValueError(f"{value!r}: the owner (the shipper) must be able to read and write")
    return mode


def dir_mode_for(file_mode: int) -> int:
    """The mode of a folder made for files of ``file_mode``: whoever may read the files may
    enter the folder (``0640`` -> ``0750``)."""
    mode = file_mode | 0o700
    for read, enter in ((0o040, 0o010), (0o004, 0o001)):
        if mode & read:
            mode |= enter
    return mode & ~0o022  # nobody else creates or deletes files in it


def make_dirs(path: Path, mode: int = DIR_MODE) -> None:
    """``mkdir -p``, each folder created here given exactly ``mode``; existing ones stay."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs, left as it is
        if POSIX:
            os.chmod(folder, mode)  # the umask has taken bits away from mkdir's mode
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)  # raises the right error (a file in the way)


def open_new(path: Path | str, flags: int, mode: int = FILE_MODE) -> int:
    """``os.open`` with ``O_CREAT``; a file this call creates gets exactly ``mode``."""
    flags |= os.O_CREAT
    try:
        fd = os.open(path, flags | os.O_EXCL, mode)
    except FileExistsError:
        return os.open(path, flags & ~os.O_CREAT)
    if POSIX:
        os.fchmod(fd, mode)
    return fd


def tighten(path: Path, mode: int = FILE_MODE) -> None:
    """Take away the bits beyond ``mode`` from a file of ours that exists (POSIX)."""
    if not POSIX:
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if stat.S_IMODE(st.st_mode) & ~mode and st.st_uid == os.geteuid():
        os.chmod(path, stat.S_IMODE(st.st_mode) & mode)


def data_dir_lock(data_dir: Path) -> FileLock:
    """The lock that keeps a data dir to one shipper (``shipper.lock``), owner-only like the
    rest: created ``0600`` here, whatever the umask or the filelock version (its ``mode``
    argument is only the mode it asks for when it creates the file), and tightened if an
    older run left it readable by others."""
    from filelock import FileLock

    path = Path(data_dir) / "shipper.lock"
    try:
        os.close(open_new(path, os.O_RDWR))
    except OSError:
        pass  # not creatable: acquiring the lock says why
    tighten(path)
    return FileLock(path, mode=FILE_MODE)
