"""Telling files apart, across renames, rotation, truncation and re-downloads.

Every RMS usage log starts with the same header block, so a fingerprint of the first bytes
alone would take two different downloads for one file. A file is therefore identified by what
the operating system says it is (volume and file index: ``st_dev``/``st_ino``, which Python fills
in on Windows too), which survives a rename. The first ``HEAD_BYTES`` (header plus the first
records, whose row ids are unique) guard that identity against the OS reusing an index for a
new file after a delete: if the head no longer hashes the same, it is a new file.

Where a file system reports no index (``st_ino == 0``: FAT, some network shares), the key falls
back to the path, still guarded by the head. The strategy name is part of every key, so
changing strategy never confuses old state with new.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

HEAD_BYTES = 4096


def file_key(st: os.stat_result, path: str) -> str:
    if st.st_ino:
        return f"native:{st.st_dev}:{st.st_ino}"
    return f"path:{os.path.normcase(os.path.abspath(path))}"


def head_hash(f: BinaryIO, length: int) -> str:
    """Hash of the first ``length`` bytes (a log's prefix never changes while it grows)."""
    f.seek(0)
    return hashlib.blake2b(f.read(length), digest_size=16).hexdigest()
