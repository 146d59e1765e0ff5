"""Helpers of the fault suite: ship a folder with the pipeline in hand, read back what shipped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import shipper.pipeline.routing
from shipper.config import parse_config
from shipper.pipeline import Pipeline, Summary


def shipped_ids(out: Path) -> list[str]:
    """``event.id`` of every event in an NDJSON output, in order, duplicates kept."""
    if not out.exists():
        return []
    return [json.loads(line)["event"]["id"] for line in out.read_text().splitlines()]


@pytest.fixture
def ship(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Summary]:
    """``ship(workers=1, once=True, **settings)``: run the pipeline over ``tmp_path/logs``
    into ``tmp_path/out.ndjson`` with the checkpoint in ``tmp_path/data``. With workers > 1,
    every chunk goes to a decoder process, however small the input."""

    def run(workers: int = 1, **settings: Any) -> Summary:
        if workers > 1:
            monkeypatch.setattr(shipper.pipeline.routing, "POOL_THRESHOLD", 0)
            monkeypatch.setattr(shipper.pipeline.routing, "REREAD_MIN", 0)
        cfg = {
            "data_dir": str(tmp_path / "data"),
            "inputs": [{"type": "rms_usage", "paths": [str(tmp_path / "logs" / "**" / "*")]}],
            "outputs": [{"type": "ndjson", "path": str(tmp_path / "out.ndjson")}],
            "pipeline": {"workers": workers},
        }
        for key, value in settings.items():
            if key in ("batch_events", "poll_interval"):
                cfg["pipeline"][key] = value
            else:
                cfg[key] = value
        return Pipeline(parse_config(cfg), once=True).run()

    return run
