"""The output contract suite's factory for the syslog output: RELP into a real rsyslog.

RELP is the transport that acknowledges, so it is the one the contract's delivery cases mean.
A syslog receiver cannot recognise a message it already has, so a batch sent again after a
crash arrives twice: at least once (``exactly_once=False``). The receiver is reached through
the suite's ``Gate`` (shut = every connection reset), and a CA file that does not exist is the
configuration with which the output cannot work.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from shipper import registry

from ..contract.harness import Gate, Target
from .receivers import Rsyslog, free_port, rsyslog_available


def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    why = rsyslog_available("imrelp")
    if why:
        pytest.skip(why)
    folder = tmp_path / "rsyslog"
    folder.mkdir()
    receiver = Rsyslog(folder, free_port(), "imrelp", parse="none").start()
    gate = Gate("127.0.0.1", receiver.port)
    model = registry.settings_model("outputs", "syslog")

    def delivered() -> list[str]:
        return [orjson.loads(line["msg"])["event"]["id"] for line in receiver.lines()]

    try:
        yield Target(
            settings=model(
                hosts=[f"127.0.0.1:{gate.port}"],
                transport="relp",
                retry_rounds=1,
                backoff_initial=0.05,
                backoff_max=0.1,
                timeout=5,
            ),
            data_dir=tmp_path / "data",
            delivered=delivered,
            exactly_once=False,
            down=gate.shut,
            broken=lambda: model(
                hosts=[f"127.0.0.1:{receiver.port}"],
                transport="relp_tls",
                ca_file=tmp_path / "no-such-ca.pem",
            ),
        )
    finally:
        gate.close()
        receiver.stop()
