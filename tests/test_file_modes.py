"""Least exposure: what the shipper writes (events, checkpoint, quarantine, dead letters) is
readable by its owner only, whatever the umask; an output may be given its own ``file_mode``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shipper.config import parse_config
from shipper.errors import ConfigError
from shipper.pipeline import Pipeline
from shipper.private import dir_mode_for, parse_mode
from shipper.rejects import RejectFile

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    """A service's usual umask, which would make every new file world-readable."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_a_run_creates_every_file_owner_only(tmp_path: Path, loose_umask):
    logs = tmp_path / "logs"
    logs.mkdir()
    rms = (EXAMPLES / "rms" / "rmslog-2024-03-04.log").read_bytes()
    (logs / "good.log").write_bytes(rms + b"2024-03-04\tbroken line\n")
    data = tmp_path / "state" / "data"
    cfg = parse_config(
        {
            "data_dir": str(data),
            "inputs": [{"type": "rms_usage", "paths": [str(logs / "*")]}],
            "outputs": [
                {"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")},
                {"type": "csv", "path": str(tmp_path / "csv" / "usage.csv")},
            ],
            "pipeline": {"workers": 1},
        }
    )
    summary = Pipeline(cfg, once=True).run()
    assert summary.events > 0 and summary.quarantined >= 1

    files = [
        tmp_path / "out" / "events.ndjson",
        tmp_path / "csv" / "usage.csv",
        data / "checkpoint.sqlite",
        data / "quarantine.jsonl",
        data / "shipper.lock",
    ]
    files += [p for p in data.glob("checkpoint.sqlite-*")]  # the WAL, while it exists
    for f in files:
        assert mode(f) == 0o600, f"{f}: {oct(mode(f))}"
    for d in (data, tmp_path / "out", tmp_path / "csv"):
        assert mode(d) == 0o700, f"{d}: {oct(mode(d))}"
    # the folder above the data dir was made too, and is no more open than the rest
    assert mode(tmp_path / "state") == 0o700


def test_an_output_may_be_given_its_own_mode(tmp_path: Path, loose_umask):
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("rmslog-2024-03-04.log", "rmslog-2024-03-05.log", "000000001"):
        (logs / name).write_bytes((EXAMPLES / "rms" / name).read_bytes())
    cfg = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(logs / "*")]}],
            "outputs": [
                {
                    "type": "ndjson",
                    "path": str(tmp_path / "shared" / "events.ndjson"),
                    "file_mode": "0640",
                    "max_bytes": 2000,  # rotates: the next file gets the mode too
                }
            ],
            "pipeline": {"workers": 1, "batch_events": 2},
        }
    )
    assert Pipeline(cfg, once=True).run().events > 2
    made = sorted((tmp_path / "shared").iterdir())
    assert len(made) > 1, made
    assert {mode(f) for f in made} == {0o640}
    assert mode(tmp_path / "shared") == 0o750  # the group may enter to read
    assert mode(tmp_path / "data" / "checkpoint.sqlite") == 0o600  # still the shipper's own


def test_a_stricter_umask_does_not_loosen_and_a_looser_one_does_not_widen(
    tmp_path: Path,
):
    old = os.umask(0o077)
    try:
        f = RejectFile(tmp_path / "dl" / "dead.jsonl")
        f.append([{"id": "x"}])
        f.close()
    finally:
        os.umask(old)
    assert mode(tmp_path / "dl" / "dead.jsonl") == 0o600
    assert mode(tmp_path / "dl") == 0o700


def test_an_existing_checkpoint_readable_by_others_is_tightened(tmp_path: Path):
    from shipper.state import Store

    Store(tmp_path).close()
    db = tmp_path / "checkpoint.sqlite"
    os.chmod(db, 0o644)
    Store(tmp_path).close()
    assert mode(db) == 0o600


@pytest.mark.parametrize(
    ("given", "want"), [("0640", 0o640), ("600", 0o600), ("0o660", 0o660), (0o644, 0o644)]
)
def test_file_mode_spellings(given: object, want: int):
    assert parse_mode(given) == want


@pytest.mark.parametrize("given", ["0400", "rw-r--r--", "01777", "0999", True])
def test_file_modes_that_cannot_work_are_config_errors(given: object):
    with pytest.raises(ConfigError, match=r"outputs\[0\]\.file_mode"):
        parse_config({"outputs": [{"type": "ndjson", "file_mode": given}]})


def test_folder_modes_follow_file_modes():
    assert dir_mode_for(0o600) == 0o700
    assert dir_mode_for(0o640) == 0o750
    assert dir_mode_for(0o644) == 0o755
    assert dir_mode_for(0o666) == 0o755  # nobody else deletes the shipper's files


def test_the_config_reference_mentions_file_mode():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert "file_mode" in readme and "0600" in readme


def test_shipper_run_makes_its_data_dir_owner_only(tmp_path: Path, cli):
    """Through the command, whose start-up checks make the data dir before the pipeline."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_bytes((EXAMPLES / "rms" / "rmslog-2024-03-04.log").read_bytes())
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        f"data_dir: {tmp_path / 'new' / 'data'}\n"
        f"inputs: [{{type: rms_usage, paths: ['{logs}/*']}}]\n"
        f"outputs: [{{type: ndjson, path: '{tmp_path / 'out' / 'e.ndjson'}'}}]\n",
        encoding="utf-8",
    )
    old = os.umask(0o022)  # inherited by the command
    try:
        done = cli("run", "--once", str(cfg), cwd=tmp_path)
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    assert mode(tmp_path / "new" / "data") == 0o700
    assert mode(tmp_path / "new") == 0o700
    assert mode(tmp_path / "out" / "e.ndjson") == 0o600
