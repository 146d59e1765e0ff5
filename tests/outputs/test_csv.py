"""CSV output: W3C columns from the normalised event, RFC 4180, a header once per file, an
optional BOM, formula injection defused, other datasets to their own file or skipped, exactly
once across crashes and rotation (the shared contract is in ``contract/``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.config import parse_config
from shipper.errors import ConfigError
from shipper.mappings import load_yaml
from shipper.outputs import EventBatch, build_output

W3C = [
    "date", "time", "row-id", "request-type", "user-id", "result", "correlation-id",
    "content-id", "owner-email", "issuer", "template-id", "file-name", "date-published",
    "c-info", "c-ip", "admin-action", "acting-as-user",
]  # fmt: skip


def output(tmp_path: Path, **kw: Any) -> Any:
    settings = parse_config({"outputs": [{"type": "csv", **kw}]}).outputs[0]
    return build_output(settings, tmp_path / "data")


def batch(*events: dict[str, Any]) -> EventBatch:
    b = EventBatch()
    b.add_ndjson(b"".join(orjson.dumps(e) + b"\n" for e in events), len(events))
    return b


def rms(n: int, **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "@timestamp": f"2024-03-04T09:00:{n % 60:02d}.000Z",
        "event": {"dataset": "azure_rms.usage", "id": f"id-{n}", "outcome": "success"},
        "azure_rms": {"row_id": f"id-{n}"},
        "user": {"id": "joe@contoso.com"},
    }
    e.update(over)
    return e


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


def test_ships_the_examples_as_w3c_columns_in_microsofts_order(tmp_path, cli, repo):
    out = tmp_path / "out"
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [
                    {"type": "rms_usage", "paths": [str(repo / "examples" / "rms" / "*")]},
                    {"type": "windows_events", "paths": [str(repo / "examples/windows/*")]},
                ],
                "outputs": [
                    {"type": "csv", "path": str(out / "AllLogs.csv"),
                     "other_path": str(out / "{dataset}.csv")},
                    {"type": "ndjson", "path": str(out / "events.ndjson")},
                ],
            }
        )
    )  # fmt: skip
    result = cli("run", "--once", str(cfg), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in (out / "events.ndjson").read_text().splitlines()]
    usage = [e for e in events if e["event"]["dataset"] == "azure_rms.usage"]
    table = rows(out / "AllLogs.csv")
    assert table[0] == W3C
    assert list(load_yaml("rms/fields.yaml")["fields"]) == W3C  # the normaliser's documented order
    assert [r[2] for r in table[1:]] == [e["azure_rms"]["row_id"] for e in usage]
    for e, r in zip(usage, table[1:], strict=True):
        cells = dict(zip(W3C, r, strict=True))
        assert cells["date"] + "T" + cells["time"] == e["@timestamp"][:19]
        assert cells["request-type"] == e["event"]["action"]
        assert cells["c-ip"] == e.get("source", {}).get("ip", e["azure_rms"].get("c_ip", ""))
    others = {e["event"]["dataset"] for e in events} - {"azure_rms.usage"}
    assert others, "the examples include Windows events"
    for dataset in others:
        table = rows(out / f"{dataset}.csv")
        assert table[0][:3] == ["@timestamp", "event.dataset", "event.id"]
        want = [e["event"]["id"] for e in events if e["event"]["dataset"] == dataset]
        assert [r[2] for r in table[1:]] == want


def test_a_record_reads_back_as_microsoft_wrote_it(tmp_path, cli, repo):
    """The bundled fixture's values, through the normaliser and back to W3C columns."""
    log = repo / "tests" / "fixtures" / "rms" / "acquire_license.log"
    raw = [line.split("\t") for line in log.read_text().splitlines() if not line.startswith("#")]
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(log)]}],
                "outputs": [{"type": "csv", "path": str(tmp_path / "u.csv")}],
            }
        )
    )
    assert cli("run", "--once", str(cfg), cwd=tmp_path).returncode == 0
    row = dict(zip(W3C, rows(tmp_path / "u.csv")[1], strict=True))
    written = dict(zip(W3C, raw[0], strict=False))
    for name in ("date", "time", "row-id", "request-type", "correlation-id", "file-name", "c-ip"):
        assert row[name] == written[name], name
    assert row["user-id"] == written["user-id"].strip("'")
    assert row["result"] == written["result"].strip("'")
    assert row["c-info"] == written["c-info"].strip("'")
    assert row["content-id"] == written["content-id"].strip("{}").lower()


def test_rfc_4180_quoting_and_formula_injection(tmp_path):
    out = output(tmp_path, path=str(tmp_path / "u.csv"), columns=["event.id", "user.id", "message"])
    out.restore(None)
    hostile = [
        ("a", '=HYPERLINK("http://x")', 'comma, "quote"\r\nnew line'),
        ("b", "+1", "-2+3"),
        ("c", "@SUM(A1)", "\tTAB"),
        ("d", "\rCR", "plain ünïcode"),
    ]
    events = [rms(0, event={"dataset": "azure_rms.usage", "id": i}, user={"id": u}, message=m)
              for i, u, m in hostile]  # fmt: skip
    ack = out.send(batch(*events))
    out.close()
    assert ack.delivered == 4
    data = (tmp_path / "u.csv").read_bytes()
    assert data.startswith(b"event.id,user.id,message\r\n")
    assert b'"\'=HYPERLINK(""http://x"")","comma, ""quote""\r\nnew line"\r\n' in data
    assert rows(tmp_path / "u.csv")[1:] == [
        ["a", '\'=HYPERLINK("http://x")', 'comma, "quote"\r\nnew line'],
        ["b", "'+1", "'-2+3"],
        ["c", "'@SUM(A1)", "'\tTAB"],
        ["d", "'\rCR", "plain ünïcode"],
    ]


@pytest.mark.parametrize("bom", [True, False])
def test_header_once_per_file_and_the_bom_on_request(tmp_path, bom):
    path = tmp_path / "u.csv"
    kw = {"path": str(path), "columns": ["event.id"], "bom": bom, "max_bytes": 20}
    out = output(tmp_path, **kw)
    state = out.restore(None)
    for n in range(0, 4):
        state = out.send(batch(rms(2 * n), rms(2 * n + 1))).state
    out.close()
    again = output(tmp_path, **kw)  # a restart appends to the active file: no second header
    again.restore(state)
    again.send(batch(rms(8)))
    again.close()
    files = sorted(tmp_path.glob("u.csv*"))
    assert len(files) > 2, "rotated"
    ids = []
    for f in files:
        data = f.read_bytes()
        assert data.startswith(b"\xef\xbb\xbfevent.id\r\n" if bom else b"event.id\r\n")
        assert data.count(b"event.id") == 1 and data.count(b"\xef\xbb\xbf") == int(bom)
        ids += [r[0] for r in rows(f)[1:]]
    assert sorted(ids) == sorted(f"id-{n}" for n in range(9))


def test_other_datasets_to_their_own_file_or_skipped(tmp_path):
    win = {"@timestamp": "2024-03-04T09:00:00Z", "message": "m",
           "event": {"dataset": "rms_connector.events", "id": "w1", "code": "1001"}}  # fmt: skip
    own = output(tmp_path, path=str(tmp_path / "u.csv"), other_path=str(tmp_path / "{dataset}.csv"))
    own.restore(None)
    assert own.send(batch(rms(1), win)).delivered == 2
    own.close()
    table = rows(tmp_path / "rms_connector.events.csv")
    assert [dict(zip(table[0], r, strict=True))["event.code"] for r in table[1:]] == ["1001"]

    skip = tmp_path / "skip"
    out = output(skip, path=str(skip / "u.csv"), other_datasets="skip",
                 other_path=str(skip / "{dataset}.csv"))  # fmt: skip
    out.restore(None)
    ack = out.send(batch(rms(1), win, rms(2)))
    out.close()
    assert ack.delivered == 3  # skipped by configuration is done with, not failed
    assert sorted(p.name for p in skip.glob("*.csv")) == ["u.csv"]
    assert len(rows(skip / "u.csv")) == 3


def test_a_dataset_file_first_written_after_the_last_commit_is_cut_on_restart(tmp_path):
    win = {"event": {"dataset": "rms_connector.events", "id": "w1"}}
    kw = {"path": str(tmp_path / "u.csv"), "other_path": str(tmp_path / "{dataset}.csv")}
    out = output(tmp_path, **kw)
    committed = out.restore(None)
    committed = out.send(batch(rms(1))).state
    out.send(batch(win))  # creates rms_connector.events.csv; the process dies before the commit
    out.close()
    again = output(tmp_path, **kw)
    again.restore(json.loads(json.dumps(committed)))
    again.send(batch(win))
    again.close()
    assert [r[2] for r in rows(tmp_path / "rms_connector.events.csv")] == ["event.id", "w1"]


def test_first_start_appends_to_files_already_there(tmp_path):
    (tmp_path / "rms_connector.events.csv").write_bytes(b"old\r\n")
    (tmp_path / "u.csv").write_bytes(b"older\r\n")
    out = output(tmp_path, path=str(tmp_path / "u.csv"), other_path=str(tmp_path / "{dataset}.csv"))
    out.restore(None)
    out.send(batch(rms(1), {"event": {"dataset": "rms_connector.events", "id": "w1"}}))
    out.close()
    assert (tmp_path / "rms_connector.events.csv").read_bytes().startswith(b"old\r\n")
    no_header = b"older\r\n2024-03-04,09:00:01,id-1,"
    assert (tmp_path / "u.csv").read_bytes().startswith(no_header)


def test_settings_errors_name_the_setting():
    with pytest.raises(ConfigError, match=r"outputs\[0\]\.columns"):
        parse_config({"outputs": [{"type": "csv", "columns": []}]})
    with pytest.raises(ConfigError, match=r"outputs\[0\]\.colums: Extra inputs"):
        parse_config({"outputs": [{"type": "csv", "colums": ["a"]}]})
    with pytest.raises(ConfigError, match=r"outputs\[0\].*other_path must differ"):
        parse_config({"outputs": [{"type": "csv", "path": "a.csv", "other_path": "a.csv"}]})


def test_disk_full_in_one_file_undoes_the_batch_in_all_of_them(tmp_path, monkeypatch):
    """The pipeline resends a batch after RetryLater: no file may keep half of it."""
    import errno

    from shipper.errors import RetryLater
    from shipper.outputs import appendfile

    win = {"event": {"dataset": "rms_connector.events", "id": "w1"}}
    out = output(tmp_path, path=str(tmp_path / "u.csv"), other_path=str(tmp_path / "{dataset}.csv"))
    out.restore(None)
    real = appendfile.write_all
    full = {"once": True}

    def write_all(fd: int, data: bytes) -> None:
        if b"w1" in bytes(data) and full.pop("once", False):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(appendfile, "write_all", write_all)
    b = batch(rms(1), win, rms(2))
    with pytest.raises(RetryLater, match="disk full"):
        out.send(b)
    assert out.send(b).delivered == 3
    out.close()
    assert [r[2] for r in rows(tmp_path / "u.csv")] == ["row-id", "id-1", "id-2"]
    assert [r[2] for r in rows(tmp_path / "rms_connector.events.csv")] == ["event.id", "w1"]
