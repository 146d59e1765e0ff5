"""NDJSON output: what a crash leaves after the last commit is cut off on restart."""

from __future__ import annotations

import os

import pytest

from shipper.outputs import EventBatch
from shipper.outputs.ndjson import NdjsonFileOutput
from shipper.outputs.ndjson import Settings as NdjsonOutput
from shipper.spool import Spooled, write_lines


def batch(*docs: bytes) -> EventBatch:
    return EventBatch(ids=[d.decode() for d in docs], datasets=["d"] * len(docs), docs=list(docs))


def test_restore_cuts_uncommitted_tail(tmp_path):
    path = tmp_path / "events.ndjson"
    out = NdjsonFileOutput(NdjsonOutput(path=str(path)))
    out.restore(None)
    committed = out.send(batch(b'{"a":1}', b'{"a":2}')).state
    out.send(batch(b'{"a":3}'))  # delivered, but the process dies before the commit
    out.close()

    again = NdjsonFileOutput(NdjsonOutput(path=str(path)))
    again.restore(committed)
    again.send(batch(b'{"a":3}'))
    again.close()
    assert path.read_bytes() == b'{"a":1}\n{"a":2}\n{"a":3}\n'


def test_existing_file_without_state_is_appended_to_not_cut(tmp_path):
    path = tmp_path / "events.ndjson"
    path.write_bytes(b'{"mine":true}\n')
    out = NdjsonFileOutput(NdjsonOutput(path=str(path)))
    out.restore(None)
    out.send(batch(b'{"a":1}'))
    out.close()
    assert path.read_bytes() == b'{"mine":true}\n{"a":1}\n'


def test_rotation_by_size_keeps_every_event_once(tmp_path):
    path = tmp_path / "events.ndjson"
    out = NdjsonFileOutput(NdjsonOutput(path=str(path), max_bytes=20, keep_files=5))
    out.restore(None)
    for i in range(6):
        out.send(batch(b'{"n":%d,"pad":"xxxx"}' % i))
    out.close()
    lines = []
    for f in sorted(tmp_path.glob("events.ndjson*")):
        lines += f.read_bytes().splitlines()
    assert sorted(lines) == sorted(b'{"n":%d,"pad":"xxxx"}' % i for i in range(6))
    assert (tmp_path / "events.ndjson.1").exists()


def test_crash_after_rotation_before_commit_empties_the_new_file(tmp_path):
    path = tmp_path / "events.ndjson"
    out = NdjsonFileOutput(NdjsonOutput(path=str(path), max_bytes=10))
    out.restore(None)
    committed = out.send(batch(b'{"n":1,"pad":"xxxxxxxx"}')).state
    out.send(batch(b'{"n":2}'))  # rotates first, then writes; never committed
    out.close()

    again = NdjsonFileOutput(NdjsonOutput(path=str(path), max_bytes=10))
    again.restore(committed)
    again.close()
    assert path.read_bytes() == b""
    assert (tmp_path / "events.ndjson.1").read_bytes() == b'{"n":1,"pad":"xxxxxxxx"}\n'


def spooled(tmp_path, name: str, *docs: bytes) -> Spooled:
    data = b"".join(d + b"\n" for d in docs)
    path = tmp_path / name
    path.write_bytes(data)
    return Spooled(str(path), len(data))


@pytest.mark.parametrize("sendfile", [True, False])
def test_spooled_runs_land_in_order_between_in_memory_ones(tmp_path, monkeypatch, sendfile):
    if not sendfile:  # a platform or file system where sendfile cannot copy file to file

        def refuse(*args: object) -> int:
            raise OSError(22, "Invalid argument")

        monkeypatch.setattr(os, "sendfile", refuse, raising=False)
    path = tmp_path / "events.ndjson"
    out = NdjsonFileOutput(NdjsonOutput(path=str(path)))
    out.restore(None)
    b = EventBatch()
    b.add_ndjson(b'{"a":1}\n', 1)
    b.add_ndjson(spooled(tmp_path, "w1", b'{"a":2}', b'{"a":3}'), 2)
    b.add_ndjson(b'{"a":4}\n', 1)
    b.add_ndjson(spooled(tmp_path, "w2", b'{"a":5}'), 1)
    ack = out.send(b)
    out.close()
    assert path.read_bytes() == b"".join(b'{"a":%d}\n' % i for i in range(1, 6))
    assert len(b) == ack.delivered == 5 and ack.state["length"] == path.stat().st_size
    assert b.docs[1] == b'{"a":2}'  # outputs that take documents one by one read them too
    b.release()  # once committed
    assert not (tmp_path / "w1").exists() and not (tmp_path / "w2").exists()


@pytest.mark.parametrize("writev", [True, False], ids=["writev", "no-writev"])
def test_a_decoder_spools_its_documents_as_lines_whatever_their_number(
    tmp_path, monkeypatch, writev
):
    if not writev:  # as on Windows
        monkeypatch.delattr(os, "writev", raising=False)
    elif not hasattr(os, "writev"):
        pytest.skip("no writev here")
    docs = [f'{{"n":{i},"pad":"{"x" * (i % 97)}"}}'.encode() for i in range(1234)]
    path = tmp_path / "run.ndjson"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0))
    try:
        length = write_lines(fd, docs)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(d + b"\n" for d in docs)
    assert length == path.stat().st_size
