"""Pipeline behaviour that needs a fault no real file produces: a decoder that crashes."""

from __future__ import annotations

import json

from shipper.config import parse_config
from shipper.pipeline import Pipeline
from shipper.sources import FORMATS


def test_a_crashing_decoder_costs_that_file_only(tmp_path, write_rms, monkeypatch):
    write_rms(tmp_path / "logs" / "000000001", range(0, 50))
    write_rms(tmp_path / "logs" / "000000002", range(50, 100))
    w3c = FORMATS["w3c_rms"]
    real = w3c.decode

    def flaky(chunk):
        if chunk.path.endswith("000000001"):
            raise ValueError("a bug")
        return real(chunk)

    monkeypatch.setattr(w3c, "decode", flaky)
    cfg = parse_config(
        {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
            "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
            "pipeline": {"workers": 1},
        }
    )
    summary = Pipeline(cfg, once=True).run()
    assert summary.files_refused == 1 and not summary.ok
    assert summary.events == 50
    lines = (tmp_path / "out.ndjson").read_text().splitlines()
    assert {json.loads(x)["log"]["file"]["path"] for x in lines} == {
        str(tmp_path / "logs" / "000000002")
    }

    monkeypatch.setattr(w3c, "decode", real)  # fixed: the refused file ships next time
    again = Pipeline(cfg, once=True).run()
    assert again.ok and again.events == 50
