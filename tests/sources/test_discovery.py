"""File identity by table: rename, truncate, copy, append, shared header, reused index."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from shipper.sources.discovery import Candidate, open_position, scan
from shipper.state import FileState


def inputs(folder: Path) -> list[SimpleNamespace]:
    return [SimpleNamespace(paths=[str(folder / "*")], exclude=["*.tmp"], formats=("w3c_rms",))]


def read_all(folder: Path, known: dict[str, FileState]) -> dict[str, FileState]:
    """What the pipeline would commit after reading every candidate to its end."""
    found = scan(inputs(folder), known.get)
    out = dict(known)
    for c in found.candidates:
        with open(c.path, "rb") as f:
            where = open_position(f, c)
        out[c.key] = FileState(
            c.key,
            c.path,
            "w3c_rms",
            c.size,
            "{}",
            where.head_len,
            where.head_hash,
            c.size,
            c.mtime_ns,
        )
    return out


def reasons(folder: Path, known: dict[str, FileState]) -> dict[str, tuple[str, int]]:
    found = scan(inputs(folder), known.get)
    result = {}
    for c in found.candidates:
        with open(c.path, "rb") as f:
            where = open_position(f, c)
        result[os.path.basename(c.path)] = (where.reason, where.start)
    return result


def test_unchanged_files_are_not_candidates(tmp_path, write_rms):
    write_rms(tmp_path / "000000001", range(10))
    known = read_all(tmp_path, {})
    assert scan(inputs(tmp_path), known.get).candidates == []


def test_rename_keeps_the_position(tmp_path, write_rms):
    write_rms(tmp_path / "000000001", range(10))
    known = read_all(tmp_path, {})
    (tmp_path / "000000001").rename(tmp_path / "rmslog-2024-03-04.log")
    with open(tmp_path / "rmslog-2024-03-04.log", "ab") as f:
        f.write(b"more\n")
    size_before = list(known.values())[0].offset
    assert reasons(tmp_path, known) == {"rmslog-2024-03-04.log": ("resumed", size_before)}


def test_truncation_restarts_from_zero(tmp_path, write_rms):
    path = write_rms(tmp_path / "f.log", range(10))
    known = read_all(tmp_path, {})
    with open(path, "r+b") as f:
        f.truncate(50)
    assert reasons(tmp_path, known) == {"f.log": ("truncated", 0)}


def test_copy_is_a_new_file(tmp_path, write_rms):
    path = write_rms(tmp_path / "000000001", range(10))
    known = read_all(tmp_path, {})
    (tmp_path / "000000002").write_bytes(path.read_bytes())
    assert reasons(tmp_path, known) == {"000000002": ("new", 0)}


def test_append_resumes_at_the_old_end(tmp_path, write_rms):
    path = write_rms(tmp_path / "f.log", range(10))
    known = read_all(tmp_path, {})
    end = path.stat().st_size
    write_rms(path, range(10, 12), mode="ab")
    assert reasons(tmp_path, known) == {"f.log": ("resumed", end)}


def test_same_header_different_body_in_a_reused_index_is_a_new_file(tmp_path, write_rms):
    path = write_rms(tmp_path / "f.log", range(100))
    known = read_all(tmp_path, {})
    # Replace the content in place (same inode), keeping the common RMS header and the size:
    # as if the OS had handed the index of a deleted download to a new one.
    other = tmp_path.parent / "other"
    write_rms(other, range(500, 600))
    body = other.read_bytes()
    with open(path, "r+b") as f:
        f.write(body)
    assert reasons(tmp_path, known) == {"f.log": ("replaced", 0)}


def test_excluded_and_non_regular_files_are_skipped(tmp_path, write_rms):
    write_rms(tmp_path / "keep", range(1))
    write_rms(tmp_path / "skip.tmp", range(1))
    (tmp_path / "folder").mkdir()
    names = {os.path.basename(c.path) for c in scan(inputs(tmp_path), {}.get).candidates}
    assert names == {"keep"}


def test_candidate_for_unknown_file_reads_from_start(tmp_path, write_rms):
    write_rms(tmp_path / "a", range(1))
    cands = scan(inputs(tmp_path), {}.get).candidates
    assert isinstance(cands[0], Candidate) and cands[0].known is None
