"""Two ids that share their first half are two records (defect: the dedupe took the ``hi``
half of a key for the whole of it, dropping one record as a "duplicate")."""

from __future__ import annotations

import pytest

from tests.conftest import rms_row, rms_text
from tests.faults.conftest import shipped_ids

PREFIX = "5eed5eed-0000-4000"  # 16 hex digits: the whole hi half of the key


def guid(n: int) -> str:
    return f"{PREFIX}-8000-{n:012x}"


def write(path, ids: list[int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [rms_row(n, row_id=guid(n), correlation_id=guid(n)) for n in ids]
    path.write_text(rms_text(rows))


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "workers"])
def test_ids_sharing_a_prefix_ship_once_each_in_a_file_across_files_and_runs(
    tmp_path, ship, workers
):
    logs = tmp_path / "logs"
    # one file: 200 ids with one hi half, and two real duplicates within the file
    write(logs / "000000001", [*range(200), 5, 150])
    # another file: 100 new ids with the same hi half, and 50 copies of the first file's
    write(logs / "000000002", [*range(200, 300), *range(0, 100, 2)])
    first = ship(workers, batch_events=64)  # several batches: in-flight and committed checks
    assert first.ok
    ids = shipped_ids(tmp_path / "out.ndjson")
    assert sorted(ids) == sorted(guid(n) for n in range(300))
    assert first.duplicates == 2 + 50

    # a later run: a re-download of part of both files, and 20 new ids of the same prefix
    write(logs / "000000003", [*range(290, 320), 7, 199])
    again = ship(workers, batch_events=64)
    assert again.ok and again.events == 20 and again.duplicates == 12
    ids = shipped_ids(tmp_path / "out.ndjson")
    assert len(ids) == len(set(ids)) == 320
