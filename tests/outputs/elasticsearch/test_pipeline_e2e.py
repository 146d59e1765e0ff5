"""``shipper setup / check / run`` end to end against a real engine, as a user runs them.

Every command runs in a subprocess (``python -m shipper.cli ...``) against osmem-server, an
in-memory OpenSearch-compatible engine on loopback (``engine_url``: one clone per test).
osmem has no data streams, so the output writes classic daily indices
(``index: shipper-{dataset}-%{+yyyy.MM.dd}``). Each run also writes an NDJSON file, so what
reached the engine can be compared with what the same run shipped to a file.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

REPO = Path(__file__).resolve().parents[3]
INDEX = "shipper-{dataset}-%{+yyyy.MM.dd}"
PATTERN = "shipper-*"
STEP = re.compile(r"^opensearch: (.+): (installed|unchanged|skipped)(?: \(.*\))?$")


# --- running the CLI ----------------------------------------------------------------------------


def write_config(
    tmp_path: Path, url: str, inputs: str, bulk_max_docs: int = 5000, **pipeline: object
) -> Path:
    outputs = [
        {"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")},
        {
            "type": "opensearch",
            "hosts": [url],
            "index": INDEX,
            "bulk_max_docs": bulk_max_docs,
            "request_timeout": 30,
            "backoff_initial": 0.2,
            "backoff_max": 2,
        },
    ]
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [{"type": "rms_usage", "paths": [inputs]}],
        "outputs": outputs,
        "pipeline": {"poll_interval": 0.1, **pipeline},
    }
    path = tmp_path / "shipper.yaml"
    path.write_text(json.dumps(cfg))  # JSON is YAML
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def shipper(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(cfg: Path) -> subprocess.Popen[str]:
    """``run --once`` in its own process group, so kill -9 takes its decoder workers too."""
    return subprocess.Popen(
        [sys.executable, "-m", "shipper.cli", "run", "--once", "--no-progress", str(cfg)],
        cwd=cfg.parent,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def shipped(stderr: str) -> int:
    m = re.search(r"shipped ([\d,]+) events", stderr)
    assert m, stderr
    return int(m.group(1).replace(",", ""))


# --- looking at the engine and the file ---------------------------------------------------------


def refresh(url: str) -> None:
    requests.post(f"{url}/{PATTERN}/_refresh", timeout=30).raise_for_status()


def count(url: str) -> int:
    refresh(url)
    r = requests.get(f"{url}/{PATTERN}/_count", timeout=30)
    if r.status_code == 404:
        return 0
    r.raise_for_status()
    return int(r.json()["count"])


def engine_ids(url: str) -> list[str]:
    """Every document's ``_id`` (scrolling past the 10,000 result window); each must equal
    the ``event.id`` it carries."""
    refresh(url)
    r = requests.post(
        f"{url}/{PATTERN}/_search",
        params={"scroll": "1m"},
        json={"size": 5000, "_source": ["event.id"], "query": {"match_all": {}}},
        timeout=60,
    )
    r.raise_for_status()
    ids: list[str] = []
    while True:
        page = r.json()
        hits = page["hits"]["hits"]
        if not hits:
            break
        for h in hits:
            assert h["_source"]["event"]["id"] == h["_id"], h
            ids.append(h["_id"])
        r = requests.post(
            f"{url}/_search/scroll",
            json={"scroll": "1m", "scroll_id": page["_scroll_id"]},
            timeout=60,
        )
        r.raise_for_status()
    requests.delete(f"{url}/_search/scroll", json={"scroll_id": page["_scroll_id"]}, timeout=10)
    return ids


def file_ids(tmp_path: Path) -> list[str]:
    out = tmp_path / "out" / "events.ndjson"
    if not out.exists():
        return []
    return [json.loads(line)["event"]["id"] for line in out.read_text().splitlines()]


def properties(url: str, index: str) -> dict[str, Any]:
    mapping = requests.get(f"{url}/{index}/_mapping", timeout=10).json()
    assert mapping, f"no index matches {index}"
    return next(iter(mapping.values()))["mappings"]["properties"]


def setup_steps(stdout: str) -> list[str]:
    steps = []
    for line in stdout.splitlines():
        m = STEP.match(line)
        assert m, f"unexpected setup line: {line!r}"
        steps.append(m.group(1))
    return steps


# --- the tests --------------------------------------------------------------------------------


def test_setup_twice_then_check_reports_the_engine(engine_url: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, engine_url, str(tmp_path / "logs" / "*"))
    before = shipper("check", str(cfg), "--outputs", "--skip-local", cwd=tmp_path)
    assert before.returncode == 1, before
    assert "templates missing" in before.stderr and "shipper setup" in before.stderr

    first = shipper("setup", str(cfg), "--no-kibana", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    steps = setup_steps(first.stdout)
    assert any(s.startswith("component template ") for s in steps), steps
    assert any(s.startswith("index template ") for s in steps), steps
    assert not any("Kibana" in s for s in steps), steps  # --no-kibana

    second = shipper("setup", str(cfg), "--no-kibana", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert setup_steps(second.stdout) == steps

    check = shipper("check", str(cfg), "--outputs", "--skip-local", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    version = requests.get(engine_url, timeout=10).json()["version"]["number"]
    assert f"(opensearch): opensearch {version}, all templates installed" in check.stdout
    assert "(ndjson):" in check.stdout and "writable" in check.stdout


def test_run_once_lands_every_event_once_even_without_the_checkpoint(
    engine_url: str, tmp_path: Path
) -> None:
    examples = tmp_path / "rms"
    shutil.copytree(REPO / "examples" / "rms", examples)
    cfg = write_config(tmp_path, engine_url, str(examples / "*"), workers=1)
    assert shipper("setup", str(cfg), "--no-kibana", cwd=tmp_path).returncode == 0

    first = shipper("run", "--once", str(cfg), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    want = file_ids(tmp_path)
    assert want and len(want) == len(set(want)) == shipped(first.stderr)
    got = engine_ids(engine_url)
    assert len(got) == len(set(got))
    assert set(got) == set(want)
    assert not (tmp_path / "data" / "dead_letter").exists()

    props = properties(engine_url, "shipper-azure_rms.usage-*")
    assert props["@timestamp"]["type"] == "date"
    assert props["source"]["properties"]["ip"]["type"] == "ip"
    assert props["user"]["properties"]["email"]["type"] == "keyword"
    assert props["azure_rms"]["properties"]["admin_action"]["type"] == "boolean"

    again = shipper("run", "--once", str(cfg), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert shipped(again.stderr) == 0
    assert count(engine_url) == len(want)
    assert file_ids(tmp_path) == want

    # The checkpoint is lost (and the file with it): everything is read and sent again, and
    # create + _id = event id keeps the engine at one document per event.
    shutil.rmtree(tmp_path / "data")
    shutil.rmtree(tmp_path / "out")
    lost = shipper("run", "--once", str(cfg), cwd=tmp_path)
    assert lost.returncode == 0, lost.stderr
    assert shipped(lost.stderr) == len(want)
    assert sorted(file_ids(tmp_path)) == sorted(want)
    assert count(engine_url) == len(want)
    assert set(engine_ids(engine_url)) == set(want)
    assert not (tmp_path / "data" / "dead_letter").exists()


def test_kill_9_during_bulk_then_restart_leaves_one_document_per_event(
    engine_url: str, tmp_path: Path, write_rms: Any
) -> None:
    files, per_file = 12, 1000
    for i in range(files):
        write_rms(tmp_path / "logs" / f"{i + 1:09d}", range(i * per_file, (i + 1) * per_file))
    # a re-download overlapping two blobs, so dedupe is exercised across crashes too
    write_rms(tmp_path / "logs" / "rmslog-2024-03-04.log", range(per_file - 500, per_file + 500))
    expected = files * per_file
    cfg = write_config(
        tmp_path, engine_url, str(tmp_path / "logs" / "*"), batch_events=700, bulk_max_docs=250
    )
    assert shipper("setup", str(cfg), "--no-kibana", cwd=tmp_path).returncode == 0

    rng = random.Random(7)
    kills = 0
    partial = []  # engine counts seen after each kill
    for _ in range(10):
        proc = start(cfg)
        time.sleep(rng.uniform(0.5, 2.0))
        if proc.poll() is not None:
            break  # finished before we could kill it
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        partial.append(count(engine_url))
    final = start(cfg)
    _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err
    assert kills >= 5, "the runs finished too fast to be killed mid-way"
    assert any(0 < n < expected for n in partial), f"no kill landed mid-shipping: {partial}"
    # Files are read in name order and each is one batch of `per_file` new events, so a count
    # that is not a multiple of it means a kill landed between two _bulk requests of a batch.
    assert any(n % per_file for n in partial), f"no kill landed inside a batch: {partial}"

    ids = engine_ids(engine_url)
    assert count(engine_url) == len(ids) == len(set(ids)) == expected
    assert set(ids) == {f"{n:08x}-0000-4000-8000-000000000000" for n in range(expected)}
    out = file_ids(tmp_path)
    assert len(out) == len(set(out)), "an event was written twice to the file"
    assert set(out) == set(ids)
    assert not (tmp_path / "data" / "dead_letter").exists()


def test_check_outputs_says_connection_refused_when_nothing_listens(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = write_config(tmp_path, f"http://127.0.0.1:{port}", str(tmp_path / "logs" / "*"))
    started = time.monotonic()
    check = shipper("check", str(cfg), "--outputs", cwd=tmp_path, timeout=60)
    assert check.returncode == 1, check
    assert time.monotonic() - started < 30
    line = next(x for x in check.stderr.splitlines() if "(opensearch)" in x)
    assert f"127.0.0.1:{port}" in line and "cannot connect" in line, check.stderr
    assert "connection refused" in line.lower(), check.stderr
    assert "Traceback" not in check.stderr


def test_documents_from_decoder_processes_reach_the_engine_once(
    engine_url: str, tmp_path: Path, write_rms, monkeypatch
) -> None:
    """With worker processes, big runs of documents come back in spool files; the engine
    output reads them (ids, data streams and dates included) like the file output does."""
    from shipper import pipeline as pipeline_module
    from shipper.config import load_config
    from shipper.pipeline import Pipeline
    from shipper.spool import Spooled

    monkeypatch.setattr(pipeline_module.routing, "POOL_THRESHOLD", 0)  # workers even for this input
    removed: list[str] = []
    real_remove = Spooled.remove
    monkeypatch.setattr(
        Spooled, "remove", lambda self: (removed.append(self.path), real_remove(self))
    )
    logs = tmp_path / "logs"
    write_rms(logs / "000000001", range(0, 2500))  # about 2.6 MB: chunks of 1 MiB, spooled
    write_rms(logs / "000000002", range(2400, 2600))  # overlaps the first
    cfg = write_config(tmp_path, engine_url, str(logs / "*"), workers=2)
    summary = Pipeline(load_config(cfg), once=True).run()
    assert summary.ok and summary.events == 2600 and summary.duplicates == 100
    want = file_ids(tmp_path)
    assert len(want) == len(set(want)) == 2600
    got = engine_ids(engine_url)
    assert len(got) == len(set(got)) and set(got) == set(want)
    assert removed and not list((tmp_path / "data" / "spool").iterdir())  # spooled, then gone
