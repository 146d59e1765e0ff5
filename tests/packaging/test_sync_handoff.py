"""Where Sync-RmsLogs.ps1 meets shipper: the script's temporary names are never read, the
complete files it renames into place ship exactly once, and its re-fetches cost nothing.

No PowerShell can be installed here (none on PyPI, npm or Debian that does not download a
binary at install time), so the script's own functions are not run; these tests hold shipper
to the naming rules the script relies on, using the names the script writes:

- usage logs are downloaded into ``<folder>/.sync-rmslogs/<day>/`` and renamed into
  ``<folder>``; a re-fetched day replaces the old file (or goes beside it as
  ``<name>-refetch-<stamp>.log`` when the old one is locked);
- events are written to ``.<name>-<stamp>.xml.partial`` and renamed to ``<name>-<stamp>.xml``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, rms_row, rms_text, start_shipper

WEVTUTIL_SAMPLE = REPO / "examples" / "windows" / "ecma2host_wevtutil_ps5.xml"
SCRIPT = REPO / "packaging" / "windows" / "Sync-RmsLogs.ps1"


def test_names_used_here_are_the_scripts():
    """If the script's naming changes, these tests must change with it."""
    text = SCRIPT.read_text()
    assert "$script:StagingFolderName = '.sync-rmslogs'" in text
    assert 'Temporary = ".$final.partial"' in text
    assert "'{0}-refetch-{1}{2}'" in text


def config(tmp_path: Path, usage: list[str], events: list[str]) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [
            {"type": "rms_usage", "paths": usage},
            {"type": "windows_events", "paths": events},
        ],
        "outputs": [{"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")}],
        "pipeline": {"workers": 1, "poll_interval": 0.1},
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))
    return path


def shipped(tmp_path: Path) -> list[dict]:
    out = tmp_path / "out" / "events.ndjson"
    return [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []


def counts(stderr: str) -> tuple[int, int, int, int]:
    m = re.search(
        r"shipped ([\d,]+) events, ([\d,]+) duplicates skipped, ([\d,]+) lines quarantined,"
        r" ([\d,]+) files refused",
        stderr,
    )
    assert m, stderr
    return tuple(int(g.replace(",", "")) for g in m.groups())  # type: ignore[return-value]


def day_file(ids: range, partial: bool = False) -> bytes:
    text = rms_text([rms_row(i) for i in ids], newline="\r\n")
    if partial:
        text = text[: len(text) * 2 // 3]  # mid-record, as a download in progress
    return text.encode()


def wevtutil_stream() -> tuple[bytes, int]:
    """What the script writes for an export: the <Event> elements one a line, UTF-8."""
    text = WEVTUTIL_SAMPLE.read_bytes().decode("utf-16")
    events = [line for line in text.splitlines() if line.startswith("<Event ")]
    body = text.strip().replace("\r\n", "\n").replace("\n", "\r\n") + "\r\n"
    return body.encode(), len(events)


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    usage, events = tmp_path / "RMSLogs", tmp_path / "Exports"
    usage.mkdir()
    events.mkdir()
    return usage, events


@pytest.mark.parametrize("pattern", ["*", "**/*"])
def test_usage_day_staged_then_renamed_ships_once(tmp_path, folders, cli, pattern):
    usage, events = folders
    cfg = config(tmp_path, [str(usage / pattern)], [str(events / "*")])
    staging = usage / ".sync-rmslogs" / "2024-03-04"
    staging.mkdir(parents=True)
    staged = staging / "rmslog-2024-03-04.log"
    staged.write_bytes(day_file(range(1, 31), partial=True))

    r = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert counts(r.stderr) == (0, 0, 0, 0)
    quarantine = tmp_path / "data" / "quarantine.jsonl"
    assert not quarantine.exists() or quarantine.stat().st_size == 0

    staged.write_bytes(day_file(range(1, 31)))  # download complete
    os.rename(staged, usage / staged.name)
    r = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert counts(r.stderr) == (30, 0, 0, 0), r.stderr
    r = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert counts(r.stderr) == (0, 0, 0, 0), r.stderr
    assert sorted(e["azure_rms"]["row_id"] for e in shipped(tmp_path)) == sorted(
        rms_row(i)[2] for i in range(1, 31)
    )


def test_refetched_days_ship_only_late_records(tmp_path, folders, cli):
    usage, events = folders
    cfg = config(tmp_path, [str(usage / "*")], [str(events / "*")])
    target = usage / "rmslog-2024-03-04.log"
    target.write_bytes(day_file(range(1, 21)))
    assert counts(cli("run", "--once", str(cfg), cwd=tmp_path).stderr)[0] == 20

    # The script drops an identical re-fetch; a changed one replaces the file (a new file to
    # shipper, read from the start: the 20 it had are duplicates, the 3 late ones ship).
    staged = usage / ".sync-rmslogs" / "2024-03-04" / target.name
    staged.parent.mkdir(parents=True)
    staged.write_bytes(day_file(range(1, 24)))
    os.replace(staged, target)
    r = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert counts(r.stderr) == (3, 20, 0, 0), r.stderr

    # Old file locked on Windows: the re-fetch goes beside it under a -refetch- name.
    (usage / "rmslog-2024-03-04-refetch-20240306T003000Z.log").write_bytes(day_file(range(1, 26)))
    r = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert counts(r.stderr) == (2, 23, 0, 0), r.stderr
    ids = [e["event"]["id"] for e in shipped(tmp_path)]
    assert len(ids) == len(set(ids)) == 25


def test_event_export_partial_name_ignored_rename_ships_once(tmp_path, folders, cli):
    usage, events = folders
    cfg = config(tmp_path, [str(usage / "*")], [str(events / "*")])
    body, n = wevtutil_stream()
    assert n >= 3
    tmp = events / ".ecma2host-20240304T141500123Z.xml.partial"
    tmp.write_bytes(body[: len(body) // 2])
    r = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert counts(r.stderr) == (0, 0, 0, 0), r.stderr

    tmp.write_bytes(body)
    os.rename(tmp, events / "ecma2host-20240304T141500123Z.xml")
    r = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert counts(r.stderr) == (n, 0, 0, 0), r.stderr
    assert {e["event"]["dataset"] for e in shipped(tmp_path)} == {"ecma2host.events"}

    # The next run's export repeats the last exported event at most (the XPath filter is
    # inclusive to the millisecond; the script drops it, and if it did not, dedupe would).
    (events / "ecma2host-20240304T143000456Z.xml").write_bytes(body)
    r = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert counts(r.stderr) == (0, n, 0, 0), r.stderr


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_follow_mode_never_reads_a_growing_temporary_file(tmp_path, folders):
    usage, events = folders
    cfg = config(tmp_path, [str(usage / "**/*")], [str(events / "*")])
    proc = start_shipper(cfg, tmp_path)
    try:
        wait_for(lambda: (tmp_path / "data" / "checkpoint.sqlite").exists())
        staging = usage / ".sync-rmslogs" / "2024-03-05"
        staging.mkdir(parents=True)
        staged = staging / "rmslog-2024-03-05.log"
        whole = day_file(range(100, 150))
        with open(staged, "wb") as f:  # written slowly, as a download is
            for i in range(0, len(whole), 512):
                f.write(whole[i : i + 512])
                f.flush()
                time.sleep(0.02)
        time.sleep(0.5)  # several polls over the finished temporary file
        assert shipped(tmp_path) == []
        os.rename(staged, usage / staged.name)
        wait_for(lambda: len(shipped(tmp_path)) >= 50)
        time.sleep(0.5)  # more polls: nothing read twice
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    ids = [e["event"]["id"] for e in shipped(tmp_path)]
    assert len(ids) == len(set(ids)) == 50
