"""The smaller ways a run used to misreport or misbehave (issue 9, defect 8)."""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
import threading
import time

from shipper.config import parse_config
from shipper.pipeline import Pipeline
from tests.faults.conftest import shipped_ids


def config(tmp_path, **pipeline):
    return parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
            "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
            "pipeline": {"workers": 1, **pipeline},
        }
    )


def deny(monkeypatch, path) -> None:
    """Opening ``path`` fails as a file without read permission does (tests run as root,
    whom permissions do not stop)."""
    real = builtins.open

    def guarded(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


def test_an_unreadable_file_counts_as_refused_and_fails_once(tmp_path, write_rms, monkeypatch):
    write_rms(tmp_path / "logs" / "000000001", range(10))
    locked = write_rms(tmp_path / "logs" / "000000002", range(10, 20))
    deny(monkeypatch, locked)
    summary = Pipeline(config(tmp_path), once=True).run()
    assert summary.files_refused == 1 and not summary.ok  # --once exits 1
    assert summary.events == 10  # the readable file shipped


def test_following_says_an_unreadable_file_once_and_reads_it_when_it_can(
    tmp_path, write_rms, monkeypatch, caplog
):
    locked = write_rms(tmp_path / "logs" / "000000001", range(10))
    deny(monkeypatch, locked)
    pipeline = Pipeline(config(tmp_path, poll_interval=0.05), once=False)
    runner = threading.Thread(target=pipeline.run)
    with caplog.at_level(logging.INFO, logger="shipper"):
        runner.start()
        time.sleep(1.0)  # about 20 scans
        said = caplog.text.count("Permission denied")
        monkeypatch.undo()  # permission granted
        deadline = time.monotonic() + 10
        while len(shipped_ids(tmp_path / "out.ndjson")) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        pipeline.stop()
        runner.join(10)
    assert said == 1
    assert len(shipped_ids(tmp_path / "out.ndjson")) == 10
    assert "readable again" in caplog.text


def test_an_empty_download_is_skipped_with_a_notice_and_read_when_it_grows(
    tmp_path, write_rms, caplog
):
    write_rms(tmp_path / "logs" / "000000001", range(10))
    empty = tmp_path / "logs" / "000000002"
    empty.write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="shipper"):
        first = Pipeline(config(tmp_path), once=True).run()
    assert first.ok and first.events == 10  # --once exits 0
    assert "000000002: empty; it will be read when it grows" in caplog.text
    write_rms(empty, range(10, 15))
    again = Pipeline(config(tmp_path), once=True).run()
    assert again.ok and again.events == 5


def test_a_huge_broken_line_is_kept_in_quarantine_in_part_with_its_size_and_hash(
    tmp_path, write_rms
):
    log = write_rms(tmp_path / "logs" / "000000001", range(10))
    garbage = "x" * 1_000_000  # one field, where seventeen are expected
    with open(log, "a") as f:
        f.write(garbage + "\n")
    write_rms(tmp_path / "logs" / "000000002", range(10, 20))
    summary = Pipeline(config(tmp_path), once=True).run()
    assert summary.events == 20 and summary.quarantined == 1
    [line] = (tmp_path / "data" / "quarantine.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert len(line) < 100_000
    assert entry["raw"] == garbage[: len(entry["raw"])] and len(entry["raw"]) == 64 * 1024
    assert entry["raw_truncated"] == {
        "bytes": len(garbage),
        "sha256": hashlib.sha256(garbage.encode()).hexdigest(),
    }
