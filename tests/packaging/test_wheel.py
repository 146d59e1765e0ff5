"""A plain, non-editable install must carry the declarative rules in ``mappings/``."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path


def test_wheel_contains_every_mapping_file(wheel):
    repo = Path(__file__).resolve().parents[2]
    wanted = {
        "shipper/mappings/" + p.relative_to(repo / "mappings").as_posix()
        for p in (repo / "mappings").rglob("*")
        if p.is_file()
    }
    assert wanted, "mappings/ is empty"
    names = set(zipfile.ZipFile(wheel).namelist())
    assert wanted <= names, sorted(wanted - names)


def test_installed_package_finds_its_mappings_away_from_the_checkout(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    probe = (
        "from shipper.mappings import mappings_dir, load_yaml;"
        "print(mappings_dir());"
        "print(len(load_yaml('rms/request_types.yaml')))"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    where, count = result.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "site")
    assert int(count) > 0
