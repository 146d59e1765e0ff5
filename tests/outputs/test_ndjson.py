"""NDJSON output: what a crash leaves after the last commit is cut off on restart."""

from __future__ import annotations

from shipper.config import NdjsonOutput
from shipper.outputs import EventBatch
from shipper.outputs.ndjson import NdjsonFileOutput


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
