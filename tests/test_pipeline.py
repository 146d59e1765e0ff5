"""Pipeline behaviour that needs the pipeline in hand: a crashing decoder, forced workers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import shipper.pipeline.routing
from shipper.config import parse_config
from shipper.pipeline import Pipeline
from shipper.sources import FORMATS
from shipper.state import Store

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def test_a_crashing_decoder_costs_that_file_only(tmp_path, write_rms, monkeypatch):
    write_rms(tmp_path / "logs" / "000000001", range(0, 50))
    write_rms(tmp_path / "logs" / "000000002", range(50, 100))
    w3c = FORMATS["w3c_rms"]
    real = w3c.decode

    def flaky(chunk):
        if chunk.path.endswith("000000001"):
            raise ValueError("a bug")
        return real(chunk)

    monkeypatch.setattr(w3c, "decode", flaky)
    cfg = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
            "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
            "pipeline": {"workers": 1},
        }
    )
    summary = Pipeline(cfg, once=True).run()
    assert summary.files_refused == 1 and not summary.ok
    assert summary.events == 50
    lines = (tmp_path / "out.ndjson").read_text().splitlines()
    assert {json.loads(x)["log"]["file"]["path"] for x in lines} == {
        str(tmp_path / "logs" / "000000002")
    }

    monkeypatch.setattr(w3c, "decode", real)  # fixed: the refused file ships next time
    again = Pipeline(cfg, once=True).run()
    assert again.ok and again.events == 50


@pytest.mark.parametrize(
    ("workers", "pooled_from"),
    [(1, None), (2, 0), (2, 1000)],
    ids=["in-process", "all-in-workers", "big-in-workers"],
)
def test_many_small_files_in_one_hour_with_overlaps_ship_each_record_once(
    tmp_path, write_rms, monkeypatch, workers, pooled_from
):
    """Many commits into one event hour: lookups reuse a snapshot of it across commits, and
    the pipeline must still catch a duplicate committed after that snapshot was taken, whether
    chunks are decoded in worker processes, here, or (the re-downloads being the bigger files)
    alternately."""
    monkeypatch.setattr(shipper.pipeline.routing, "POOL_THRESHOLD", 0)
    if pooled_from is not None:
        monkeypatch.setattr(shipper.pipeline.routing, "REREAD_MIN", pooled_from)
    logs = tmp_path / "logs"
    for i in range(300):  # a record each, all in the same hour, a commit each
        write_rms(logs / f"tiny-{i:04d}.log", [i])
        if i % 10 == 9:  # right after it, a re-download of the last four files
            write_rms(logs / f"tiny-{i:04d}b.log", range(i - 3, i + 1))
    sizes = {p.stat().st_size < 1000 for p in logs.iterdir()}
    assert sizes == {True, False}  # so "big-in-workers" does split them
    cfg = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(logs / "*")]}],
            "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
            "pipeline": {"workers": workers, "batch_events": 1},
        }
    )
    summary = Pipeline(cfg, once=True).run()
    assert summary.ok
    ids = [json.loads(x)["event"]["id"] for x in (tmp_path / "out.ndjson").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 300
    assert summary.duplicates == 30 * 4
    assert not list((tmp_path / "data" / "spool").iterdir())  # every spool file was removed


def test_deleted_files_are_forgotten_and_renamed_ones_keep_their_place(tmp_path, write_rms):
    logs = tmp_path / "logs"
    for i in range(3):
        write_rms(logs / f"{i + 1:09d}", range(i * 10, i * 10 + 10))
    cfg = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(logs / "*")]}],
            "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
            "pipeline": {"workers": 1},
        }
    )
    assert Pipeline(cfg, once=True).run().events == 30
    (logs / "000000001").unlink()
    (logs / "000000002").rename(logs / "renamed.log")
    again = Pipeline(cfg, once=True).run()
    assert again.events == 0 and again.files_read == 0  # the renamed file is not read again
    store = Store(tmp_path / "data")
    try:
        known = {os.path.basename(state.path) for state in store.files().values()}
    finally:
        store.close()
    assert known == {"000000003", "000000002"}  # the path is updated when the file changes


@pytest.mark.skipif(not (SHARED / "thirdparty" / "evtx").is_dir(), reason="../shared is absent")
def test_windows_exports_decode_the_same_in_worker_processes(tmp_path, repo, monkeypatch):
    """Every Windows format, .evtx included (whose chunks carry no bytes: a worker reads the
    file itself), gives the same events and the same quarantine through decoder processes."""
    shutil.copytree(repo / "examples" / "windows", tmp_path / "logs")
    for name in (  # the peer's test files with events to ship, and some with damage
        "post-Security.evtx",
        "sample_with_a_bad_chunk_magic.evtx",
        "sample-with-zero-data-size-event.evtx",
    ):
        shutil.copy(SHARED / "thirdparty" / "evtx" / name, tmp_path / "logs")

    def ship(workers: int) -> tuple[list[str], list[str], int]:
        run = tmp_path / f"run{workers}"
        cfg = parse_config(
            {
                "data_dir": str(run / "data"),
                "inputs": [
                    {
                        "type": "windows_events",
                        "paths": [str(tmp_path / "logs" / "*")],
                        "timezone": "America/New_York",
                        "date_format": "%m/%d/%Y %I:%M:%S %p",
                    }
                ],
                "outputs": [{"type": "ndjson", "path": str(run / "out.ndjson")}],
                "pipeline": {"workers": workers},
            }
        )
        summary = Pipeline(cfg, once=True).run()
        docs = (run / "out.ndjson").read_text().splitlines()
        quarantined = (run / "data" / "quarantine.jsonl").read_text().splitlines()
        reasons = sorted(json.loads(q)["reason"] for q in quarantined)
        return sorted(json.loads(d)["event"]["id"] for d in docs), reasons, summary.files_refused

    in_process = ship(1)
    monkeypatch.setattr(shipper.pipeline.routing, "POOL_THRESHOLD", 0)
    monkeypatch.setattr(shipper.pipeline.routing, "REREAD_MIN", 0)  # every chunk to a worker
    assert ship(2) == in_process
    assert len(in_process[0]) > 700 and len(in_process[1]) == 3  # as the peer's tests count


def test_follow_mode_polls_at_the_interval_unless_scans_are_slow():
    assert shipper.pipeline.poll_wait(1.0, 0.01) == 1.0
    assert shipper.pipeline.poll_wait(1.0, 1.2) == pytest.approx(3.6)  # scanning <= 1/4 of the time
