"""``kill -9`` at random moments of follow mode while downloads are still being written, with
decoder processes on and off: counted as lost, duplicated and torn lines against the corpus.

(``tests/test_follow_and_crash.py`` kills ``--once`` backfills of a big corpus; this one kills
the service as it runs: files appended to between kills, polls, partial last lines.)
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FIELDS_17, rms_row
from tests.test_follow_and_crash import start, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def tally(out_dir: Path, expected: set[str]) -> dict[str, int]:
    ids: list[str] = []
    torn = 0
    for out in sorted(out_dir.glob("events.ndjson*")):
        data = out.read_bytes()
        torn += 0 if not data or data.endswith(b"\n") else 1
        for line in data.splitlines():
            try:
                ids.append(json.loads(line)["event"]["id"])
            except ValueError:
                torn += 1
    return {
        "lost": len(expected - set(ids)),
        "duplicated": len(ids) - len(set(ids)),
        "torn": torn,
        "foreign": len(set(ids) - expected),
    }


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "workers"])
def test_kill_9_while_following_growing_downloads_loses_and_duplicates_nothing(tmp_path, workers):
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(logs / "*")]}],
                "outputs": [
                    {
                        "type": "ndjson",
                        "path": str(tmp_path / "out" / "events.ndjson"),
                        "max_bytes": "4MB",  # rotations between kills too
                        "keep_files": 1000,
                    }
                ],
                "pipeline": {"poll_interval": 0.05, "batch_events": 500, "workers": workers},
            }
        )
    )
    header = "#Software: RMS\n#Version: 1.1\n#Fields: " + "\t".join(FIELDS_17) + "\n"
    rng = random.Random(workers)
    expected: set[str] = set()
    n = 0
    files = [logs / f"{i + 1:09d}" for i in range(4)]
    for f in files:
        f.write_text(header)
    for _ in range(8):
        proc = start(cfg)
        for _ in range(rng.randint(2, 6)):  # the downloads grow while the shipper runs
            f = rng.choice(files)
            rows = [rms_row(n + k) for k in range(rng.randint(300, 2000))]
            text = "".join("\t".join(r) + "\n" for r in rows)
            cut = rng.randint(0, len(text) - 1)
            with open(f, "a") as out:  # in two writes: a partial last line meanwhile
                out.write(text[:cut])
                out.flush()
                time.sleep(rng.uniform(0, 0.05))
                out.write(text[cut:])
            expected |= {r[2] for r in rows}
            n += len(rows)
            time.sleep(rng.uniform(0.05, 0.3))
        proc.kill()
        proc.wait()
    final = start(cfg)
    try:
        wait_for(lambda: tally(tmp_path / "out", expected)["lost"] == 0, timeout=60)
    finally:
        final.terminate()
        final.communicate(timeout=30)
    assert final.returncode == 0
    counts = tally(tmp_path / "out", expected)
    assert counts == {"lost": 0, "duplicated": 0, "torn": 0, "foreign": 0}, counts
