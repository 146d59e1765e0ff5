"""One encoding sniffer for every reader: UTF-8 with or without BOM, UTF-16LE and BE with or
without BOM (a W3C download in UTF-16BE without BOM used to be refused as not RMS)."""

from __future__ import annotations

import json

import pytest

from shipper.config import parse_config
from shipper.pipeline import Pipeline
from shipper.sources.encoding import head_text, sniff_encoding
from tests.conftest import rms_row, rms_text

ENCODINGS = {
    "utf-8": ("utf-8", b""),
    "utf-8 BOM": ("utf-8", b"\xef\xbb\xbf"),
    "utf-16le BOM": ("utf-16-le", b"\xff\xfe"),
    "utf-16le": ("utf-16-le", b""),
    "utf-16be BOM": ("utf-16-be", b"\xfe\xff"),
    "utf-16be": ("utf-16-be", b""),
}


@pytest.mark.parametrize("name", ENCODINGS)
def test_the_sniffer_names_the_encoding_and_the_bom(name):
    codec, bom = ENCODINGS[name]
    head = bom + "#Software: RMS".encode(codec)
    assert sniff_encoding(head) == (codec, len(bom))
    assert head_text(head) == "#Software: RMS"


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_an_rms_download_ships_in_every_encoding(tmp_path, name, newline):
    codec, bom = ENCODINGS[name]
    logs = tmp_path / "logs"
    logs.mkdir()
    text = rms_text([rms_row(i) for i in range(5)], newline=newline)
    (logs / "000000001").write_bytes(bom + text.encode(codec))
    cfg = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(logs / "*")]}],
            "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
            "pipeline": {"workers": 1},
        }
    )
    summary = Pipeline(cfg, once=True).run()
    assert summary.ok and summary.events == 5 and summary.quarantined == 0
    docs = [json.loads(x) for x in (tmp_path / "out.ndjson").read_text().splitlines()]
    assert [d["event"]["id"] for d in docs] == [rms_row(i)[2] for i in range(5)]
    assert docs[0]["file"]["name"] == "Q3 Forecast.docx"
