"""An emptied, truncated, foreign or damaged checkpoint (defect: ``: > checkpoint.sqlite``
silently re-shipped everything, 20,000 duplicates appended, exit 0)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest


def emptied(path: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def not_a_database(path: Path) -> None:
    path.write_text("these are not the pages you are looking for\n" * 100)


def malformed(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    for at in range(page, len(data), page):  # every page after the first: its header wrecked
        data[at : at + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))


def foreign(path: Path) -> None:
    path.unlink()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE inventory (item TEXT)")
    db.commit()
    db.close()


@pytest.mark.parametrize("damage", [emptied, truncated, not_a_database, malformed, foreign])
def test_a_damaged_checkpoint_is_refused_with_the_file_and_the_remedy(
    tmp_path, write_rms, cli, damage: Callable[[Path], None]
):
    for i in range(3):
        write_rms(tmp_path / "logs" / f"{i + 1:09d}", range(i * 3000, i * 3000 + 3000))
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
                "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
                "pipeline": {"workers": 1},
            }
        )
    )
    first = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out.ndjson"
    shipped = out.read_bytes()
    checkpoint = tmp_path / "data" / "checkpoint.sqlite"
    damage(checkpoint)

    again = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    problem = [line for line in again.stderr.splitlines() if str(checkpoint) in line]
    assert len(problem) == 1 and "shipper state reset" in problem[0], again.stderr
    assert out.read_bytes() == shipped  # nothing shipped twice
    assert checkpoint.exists()  # and nothing of the evidence touched

    reset = cli("state", "reset", str(cfg), cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert not checkpoint.exists()
    assert len(list((tmp_path / "data").glob("checkpoint.sqlite.set-aside-*Z"))) == 1
    fresh = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr  # deliberately started over
