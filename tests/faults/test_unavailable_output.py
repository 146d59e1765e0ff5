"""``--once`` against an engine that is not there (defect: about 9.5 minutes to give up with
the default settings, without saying that it was waiting or for how long)."""

from __future__ import annotations

import json
import socket
import time


def test_once_gives_up_on_an_unreachable_engine_when_it_said_it_would(tmp_path, write_rms, cli):
    write_rms(tmp_path / "logs" / "000000001", range(20))
    with socket.socket() as s:  # a loopback port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        json.dumps(
            {
                "data_dir": str(tmp_path / "data"),
                "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "*")]}],
                "outputs": [
                    {
                        "type": "opensearch",
                        "hosts": [f"http://127.0.0.1:{port}"],
                        "retry_rounds": 1,
                        "backoff_initial": 0.1,
                        "backoff_max": 0.2,
                    }
                ],
                "pipeline": {"workers": 1, "once_retry_seconds": 3},
            }
        )
    )
    started = time.monotonic()
    run = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path, timeout=60)
    took = time.monotonic() - started
    assert run.returncode == 1
    assert "giving up after 3 s (pipeline.once_retry_seconds)" in run.stderr, run.stderr
    assert "still unavailable after" in run.stderr and "Traceback" not in run.stderr
    assert 3 <= took < 15
    assert "shipped 0 events" in run.stderr  # nothing committed
