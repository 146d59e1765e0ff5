"""A file rotated, truncated or deleted between the pipeline's read of a chunk and a decoder
process's read of the same bytes (defect: the worker re-opened the chunk's file by name and
decoded whatever the name held then, silently losing the original's records).

The fault is injected at the worst moment, deterministically: right after the pipeline cut the
first chunk of the file and handed it to a decoder process, before that process read it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from shipper.sources import FORMATS
from tests.conftest import rms_row, rms_text
from tests.faults.conftest import shipped_ids

RECORDS = 4000  # about 1.4 MB: three chunks


def write(path: Path, ids: range) -> None:
    path.write_text(rms_text([rms_row(n) for n in ids]))


def ids_of(ns: range) -> set[str]:
    return {f"{n:08x}-0000-4000-8000-000000000000" for n in ns}


def rename(log: Path) -> None:  # logrotate's default, or a re-download under the same name
    os.rename(log, log.with_name("log.1"))
    write(log, range(10_000, 10_000 + RECORDS))


def copytruncate(log: Path) -> None:  # logrotate's copytruncate: same file, new bytes
    shutil.copy(log, log.with_name("log.1"))
    with open(log, "r+b") as f:
        f.truncate(0)
    write(log, range(10_000, 10_000 + RECORDS))


def delete(log: Path) -> None:
    log.unlink()


@pytest.mark.parametrize("fault", [rename, copytruncate, delete])
def test_a_chunk_is_decoded_from_the_file_it_was_cut_from(
    tmp_path, ship, monkeypatch, caplog, fault: Callable[[Path], None]
):
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "log"
    write(log, range(RECORDS))
    w3c = FORMATS["w3c_rms"]
    real_chunks = w3c.chunks

    def chunks_then_fault(f, path, *args, **kwargs):
        for i, chunk in enumerate(real_chunks(f, path, *args, **kwargs)):
            yield chunk
            if i == 0 and path == str(log):  # the first chunk is with a decoder process now
                fault(log)

    monkeypatch.setattr(w3c, "chunks", chunks_then_fault)
    first = ship(workers=2)
    assert first.ok, first.errors
    assert "while being read" in caplog.text  # said once, plainly
    if fault is not copytruncate:  # (whose later chunks are the new bytes of the same file)
        assert set(shipped_ids(tmp_path / "out.ndjson")) == ids_of(range(RECORDS))

    monkeypatch.setattr(w3c, "chunks", real_chunks)
    second = ship(workers=2)  # whatever the fault left under any name ships, once
    assert second.ok, second.errors
    ids = shipped_ids(tmp_path / "out.ndjson")
    assert len(ids) == len(set(ids))
    expected = ids_of(range(RECORDS))
    if fault is not delete:
        expected |= ids_of(range(10_000, 10_000 + RECORDS))
    assert set(ids) == expected
