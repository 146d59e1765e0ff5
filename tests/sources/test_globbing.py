"""Glob patterns walked without hanging on symlink loops, and stoppable mid-walk."""

from __future__ import annotations

import glob
import os
import sys
import threading

import pytest

from shipper.sources.globbing import iter_glob

TREE = ["logs/a/x.log", "logs/a/b/y.log", "logs/z.log", "logs/.hid/h.log", "logs/.dot.log",
        "logs/c/d/e/q.txt", "logs/[odd]/w.log"]  # fmt: skip


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for p in TREE:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        open(p, "w").close()
    return tmp_path


@pytest.mark.parametrize(
    "pattern",
    ["logs/**/*", "logs/**/*.log", "**/*.log", "logs/*/**/y.log", "logs/**/[!x]*",
     "logs/*.log", "logs/.*", "logs/**/.*"],
)  # fmt: skip
def test_files_matched_are_those_glob_matches(tree, pattern):
    expected = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    assert sorted(p for p in iter_glob(pattern) if os.path.isfile(p)) == expected
    absolute = str(tree / pattern)
    expected = sorted(p for p in glob.glob(absolute, recursive=True) if os.path.isfile(p))
    assert sorted(p for p in iter_glob(absolute) if os.path.isfile(p)) == expected


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_two_symlink_loops_are_walked_once_and_finish(tree):
    os.symlink("..", "logs/a/up")  # logs/a/up -> logs
    os.symlink("../../c", "logs/c/d/back")  # logs/c/d/back -> logs/c
    found: list[str] = []
    walker = threading.Thread(target=lambda: found.extend(iter_glob("logs/**/*.log")))
    walker.start()
    walker.join(10)
    assert not walker.is_alive(), "the walk did not finish"
    names = sorted(os.path.basename(p) for p in found)
    assert names == ["w.log", "x.log", "y.log", "z.log"]  # each file once


def test_a_walk_stops_when_asked(tree):
    for i in range(50):
        os.makedirs(f"logs/many/{i}", exist_ok=True)
        open(f"logs/many/{i}/f.log", "w").close()
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 5

    assert len(list(iter_glob("logs/**/*.log", stop))) < 10
