"""The output contract suite's factory for the Fluentd output: the spec receiver behind a Gate.

A Forward receiver keeps what it got, so a batch sent again after a crash arrives twice: at
least once (``exactly_once=False``). A receiver that refuses our shared key is the
configuration with which the output cannot work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper import registry

from ..contract.harness import Gate, Target
from .receiver import Receiver


def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    model = registry.settings_model("outputs", "fluentd")
    receiver = Receiver(shared_key="contract")
    gate = Gate("127.0.0.1", receiver.port)
    quick = {"connect_timeout": 2, "ack_timeout": 2, "backoff_initial": 0.05, "backoff_max": 0.1}
    try:
        yield Target(
            settings=model(hosts=[f"127.0.0.1:{gate.port}"], shared_key="contract", **quick),
            data_dir=tmp_path / "data",
            delivered=receiver.ids,
            exactly_once=False,
            down=gate.shut,
            broken=lambda: model(hosts=[receiver.address], shared_key="not-it", **quick),
        )
    finally:
        gate.close()
        receiver.close()
