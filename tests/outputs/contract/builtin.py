"""Contract factories for the outputs that ship with shipper (see ``harness.Target``)."""

from __future__ import annotations

import contextlib
import csv
import errno
import importlib.util
import io
import os
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper import registry

from .harness import Gate, Target


def _settings(name: str, **kw: Any) -> Any:
    return registry.settings_model("outputs", name)(type=name, **kw)


def _blocked(tmp_path: Path) -> str:
    """A path whose folder is a regular file: no file output can work there."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    return str(blocker / "out" / "events")


@contextlib.contextmanager
def _disk_full() -> Iterator[None]:
    """The disk full while a batch is written: every write and fsync fails with ENOSPC, which
    a file output (``AppendFile``) waits out with ``RetryLater``, as space may be freed."""

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.MonkeyPatch.context() as m:
        for name in ("write", "writev", "fsync", "sendfile"):
            if hasattr(os, name):
                m.setattr(os, name, full)
        yield


def ndjson(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    path = tmp_path / "out" / "events.ndjson"

    def delivered() -> list[str]:
        files = sorted(path.parent.glob(path.name + "*"), key=_oldest_first)
        return [orjson.loads(line)["event"]["id"] for f in files for line in f.open("rb")]

    yield Target(
        settings=_settings("ndjson", path=str(path), max_bytes=2000, keep_files=100),
        data_dir=tmp_path / "data",
        delivered=delivered,
        down=_disk_full,
        broken=lambda: _settings("ndjson", path=_blocked(tmp_path)),
    )


def _oldest_first(f: Path) -> int:
    """events.ndjson.3, .2, .1, then the active file."""
    suffix = f.name.rsplit(".", 1)[-1]
    return -int(suffix) if suffix.isdigit() else 0


def csv_output(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    out = tmp_path / "out"

    def delivered() -> list[str]:
        found = []
        for name in ("rms_usage.csv", "rms_connector.events.csv"):
            files = sorted(out.glob(name + "*"), key=_oldest_first)
            for f in files:
                rows = list(csv.DictReader(io.StringIO(f.read_text(encoding="utf-8-sig"))))
                found += [r.get("row-id") or r["event.id"] for r in rows]
        return found

    yield Target(
        settings=_settings(
            "csv",
            path=str(out / "rms_usage.csv"),
            other_datasets="file",
            other_path=str(out / "{dataset}.csv"),
            max_bytes=2000,
            keep_files=100,
        ),
        data_dir=tmp_path / "data",
        delivered=delivered,
        down=_disk_full,
        broken=lambda: _settings("csv", path=_blocked(tmp_path) + ".csv"),
    )


def stdout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Standard output, captured: a pipe cannot be rewound, so at least once."""
    capture = request.getfixturevalue("capsysbinary")
    seen: list[bytes] = []

    def delivered() -> list[str]:
        seen.extend(capture.readouterr().out.splitlines())
        return [orjson.loads(line)["event"]["id"] for line in seen]

    monkey = pytest.MonkeyPatch()

    def broken() -> Any:
        closed = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        closed.close()
        monkey.setattr(sys, "stdout", closed)  # the reader went away
        return _settings("stdout")

    try:
        yield Target(
            settings=_settings("stdout"),
            data_dir=tmp_path / "data",
            delivered=delivered,
            exactly_once=False,
            broken=broken,
        )
    finally:
        monkey.undo()


def _es_conftest() -> Any:
    """The Elasticsearch tests' fixtures module (osmem-server), loaded by path."""
    path = Path(__file__).resolve().parents[1] / "elasticsearch" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_contract_es_conftest", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def opensearch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The Elasticsearch/OpenSearch output against osmem-server (OpenSearch-compatible)."""
    import requests

    url = request.getfixturevalue("engine_url")
    parts = urllib.parse.urlsplit(url)
    gate = Gate(parts.hostname or "127.0.0.1", parts.port or 80)
    index = "contract-{dataset}"

    def settings(hosts: list[str]) -> Any:
        return _settings(
            "opensearch",
            hosts=hosts,
            index=index,
            retry_rounds=1,
            backoff_initial=0.05,
            backoff_max=0.1,
            request_timeout=5,
        )

    def delivered() -> list[str]:
        requests.post(f"{url}/contract-*/_refresh", timeout=10)
        r = requests.post(
            f"{url}/contract-*/_search",
            json={"size": 10000, "query": {"match_all": {}}, "_source": False},
            timeout=10,
        )
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return [hit["_id"] for hit in r.json()["hits"]["hits"]]

    try:
        yield Target(
            settings=settings([f"http://127.0.0.1:{gate.port}"]),
            data_dir=tmp_path / "data",
            delivered=delivered,
            down=gate.shut,
            # TLS to a plain HTTP port: the handshake fails, which no retry can mend
            broken=lambda: settings([url.replace("http:", "https:")]),
        )
    finally:
        gate.close()


def elasticsearch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    pytest.skip(
        "same module as opensearch (run there); the test engine, osmem-server, answers as"
        " OpenSearch, which the Elasticsearch client refuses"
    )
    yield  # pragma: no cover
