"""`shipper run --once` end to end, as a user runs it: counts, restarts, overlaps, refusals."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def write_config(tmp_path: Path, inputs: list[str], **pipeline: object) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": "rms_usage", "paths": inputs}],
        "outputs": [{"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")}],
        "pipeline": {"workers": 1, **pipeline},
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def events(tmp_path: Path) -> list[dict]:
    out = tmp_path / "out" / "events.ndjson"
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def quarantined(tmp_path: Path) -> list[dict]:
    q = tmp_path / "data" / "quarantine.jsonl"
    return [json.loads(line) for line in q.read_text().splitlines()] if q.exists() else []


def summary_counts(stderr: str) -> dict[str, int]:
    m = re.search(
        r"shipped ([\d,]+) events, ([\d,]+) duplicates skipped, ([\d,]+) lines quarantined,"
        r" ([\d,]+) files refused",
        stderr,
    )
    assert m, stderr
    keys = ("events", "duplicates", "quarantined", "refused")
    return {k: int(v.replace(",", "")) for k, v in zip(keys, m.groups(), strict=True)}


def expected_ids(folder: Path, skip: set[tuple[str, int]]) -> list[str]:
    """Row ids (or correlation ids) of every data line, read independently of the shipper."""
    ids = []
    for path in sorted(folder.iterdir()):
        raw = path.read_bytes()
        if raw.startswith(b"\xff\xfe"):
            text = raw.decode("utf-16")
        else:
            text = raw.decode("utf-8-sig", errors="replace")
        fields: list[str] = []
        for n, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
            if line.startswith("#Fields:"):
                fields = line[len("#Fields:") :].strip().split("\t")
            elif line and not line.startswith("#") and (str(path), n) not in skip:
                values = dict(zip(fields, line.split("\t"), strict=False))
                ids.append(values.get("row-id") or values["correlation-id"])
    return ids


def test_examples_ship_every_good_record_once(tmp_path, repo, cli):
    examples = tmp_path / "rms"
    shutil.copytree(repo / "examples" / "rms", examples)
    cfg = write_config(tmp_path, [str(examples / "*")])
    first = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    counts = summary_counts(first.stderr)
    bad = quarantined(tmp_path)
    assert counts["quarantined"] == len(bad) > 0
    for q in bad:  # every quarantined line says where and why
        assert Path(q["path"]).exists() and q["line"] > 0 and q["reason"] and q["raw"]
    want = expected_ids(examples, {(q["path"], q["line"]) for q in bad})
    got = [e["event"]["id"] for e in events(tmp_path)]
    assert sorted(got) == sorted(set(want))
    assert counts["events"] == len(got) and counts["duplicates"] == len(want) - len(set(want))

    again = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert again.returncode == 0
    assert summary_counts(again.stderr)["events"] == 0
    assert len(events(tmp_path)) == len(got)


def test_redownload_under_another_name_is_skipped_as_duplicates(tmp_path, write_rms, cli):
    logs = tmp_path / "logs"
    write_rms(logs / "000000001", range(0, 300))
    cfg = write_config(tmp_path, [str(logs / "*")])
    assert cli("run", "--once", str(cfg), cwd=tmp_path).returncode == 0
    write_rms(logs / "rmslog-2024-03-04.log", range(200, 400))  # overlaps 200..299
    second = cli("run", "--once", str(cfg), cwd=tmp_path)
    counts = summary_counts(second.stderr)
    assert (counts["events"], counts["duplicates"]) == (100, 100)
    ids = [e["event"]["id"] for e in events(tmp_path)]
    assert len(ids) == len(set(ids)) == 400


def test_refused_file_ships_nothing_and_exits_non_zero(tmp_path, write_rms, cli):
    logs = tmp_path / "logs"
    write_rms(logs / "000000001", range(10))
    (logs / "u_ex240304.log").write_text(
        "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
        "#Fields: date time c-ip\n2024-03-04 10:00:00 10.0.0.1\n"
    )
    cfg = write_config(tmp_path, [str(logs / "*")])
    result = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert result.returncode == 1
    assert "u_ex240304.log" in result.stderr and "Internet Information Services" in result.stderr
    assert summary_counts(result.stderr)["refused"] == 1
    assert len(events(tmp_path)) == 10


def test_check_names_errors_by_path(tmp_path, cli):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("inputs:\n  - type: rms_usage\noutputs:\n  - type: ndjson\n    path: 5\n")
    result = cli("check", str(cfg), cwd=tmp_path)
    assert result.returncode == 2
    assert "inputs[0].paths: Field required" in result.stderr
    assert "outputs[0].path:" in result.stderr


def test_big_input_is_decoded_by_worker_processes_with_the_same_result(tmp_path, write_rms, cli):
    logs = tmp_path / "logs"
    for i in range(3):
        write_rms(logs / f"{i:09d}", range(i * 12000, (i + 1) * 12000 + 500))  # overlapping
    cfg = write_config(tmp_path, [str(logs / "*")], workers=2, batch_events=5000)
    result = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ids = [e["event"]["id"] for e in events(tmp_path)]
    assert len(ids) == len(set(ids)) == 3 * 12000 + 500
    assert summary_counts(result.stderr)["duplicates"] == 1000
    # the workers handed their documents over in spool files, all removed once committed
    assert (tmp_path / "data" / "spool").is_dir()
    assert not list((tmp_path / "data" / "spool").iterdir())


@pytest.mark.skipif(sys.platform == "win32", reason="uses the shared ECS checker via python3")
def test_output_passes_the_ecs_checker(tmp_path, repo, shared, cli):
    cfg = write_config(tmp_path, [str(repo / "examples" / "rms" / "*")])
    assert cli("run", "--once", str(cfg), cwd=tmp_path).returncode == 0
    check = subprocess.run(
        [
            sys.executable,
            str(shared / "tools" / "ecs_check.py"),
            "--ecs",
            str(shared / "ecs" / "ecs_flat.yml"),
            "--custom-prefix",
            "azure_rms.",
            str(tmp_path / "out" / "events.ndjson"),
        ],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_rotated_output_files_hold_every_event_once(tmp_path, write_rms, cli):
    logs = tmp_path / "logs"
    for i in range(4):
        write_rms(logs / f"{i:09d}", range(i * 500, (i + 1) * 500))
    cfg = tmp_path / "shipper.yaml"
    out = tmp_path / "out" / "events.ndjson"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(logs / "*")]}],
                "outputs": [{"type": "ndjson", "path": str(out), "max_bytes": "100KB"}],
                "pipeline": {"batch_events": 100},
            }
        )
    )
    result = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted(out.parent.glob("events.ndjson*"))
    assert len(files) > 3  # it did rotate
    ids = [json.loads(line)["event"]["id"] for f in files for line in f.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 2000
