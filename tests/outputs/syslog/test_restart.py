"""The receiver killed (SIGKILL) and restarted mid-stream, as the pipeline drives the output
(``RetryLater`` -> the same batch again): nothing lost over RELP; over TCP at most what the
README says (what the receiver's TCP had acknowledged but its process had not stored yet)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.errors import RetryLater
from shipper.outputs.syslog import build
from shipper.outputs.syslog.settings import Settings

from .helpers import as_pipeline_sends

pytestmark = pytest.mark.integration

BATCHES, PER_BATCH = 40, 100


def events(n0: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "@timestamp": f"2024-03-04T09:{n // 60 % 60:02d}:{n % 60:02d}.000Z",
            "event": {"id": f"r{n:06d}", "dataset": "azure_rms.usage", "outcome": "success"},
            "message": "x" * 300,
        }
        for n in range(n0, n0 + count)
    ]


def run_and_restart(rsyslog: Any, kind: str, transport: str, tmp_path: Path) -> dict[str, Any]:
    first = rsyslog(kind, parse="none")
    out = build(
        Settings(
            hosts=[f"127.0.0.1:{first.port}"],
            transport=transport,
            retry_rounds=2,
            backoff_initial=0.05,
            backoff_max=0.2,
            timeout=5,
        ),
        tmp_path,
    )
    out.restore(None)
    retries = 0
    failed: list[BaseException] = []

    def stream() -> None:
        nonlocal retries
        try:
            for k in range(BATCHES):
                b = as_pipeline_sends(out, events(k * PER_BATCH, PER_BATCH))
                while True:  # what the pipeline does with RetryLater: wait, the same batch
                    try:
                        out.send(b)
                        break
                    except RetryLater:
                        retries += 1
                        time.sleep(0.05)
                time.sleep(0.02)  # a live stream, not a burst
        except BaseException as e:  # pragma: no cover - reported below
            failed.append(e)

    sender = threading.Thread(target=stream)
    sender.start()
    deadline = time.monotonic() + 20
    while len(first.lines()) < BATCHES * PER_BATCH // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.kill()
    time.sleep(0.3)
    second = rsyslog(kind, parse="none", port=first.port)
    sender.join(timeout=60)
    out.close()
    assert not sender.is_alive() and not failed, failed
    second.wait_for(1, timeout=5)
    got = Counter(
        orjson.loads(line["msg"])["event"]["id"] for r in (first, second) for line in r.lines()
    )
    want = {e["event"]["id"] for k in range(BATCHES) for e in events(k * PER_BATCH, PER_BATCH)}
    result = {
        "lost": sorted(want - set(got)),
        "duplicates": sum(c - 1 for c in got.values()),
        "retries": retries,
        "unknown": set(got) - want,
    }
    print(f"{transport}: {len(result['lost'])} lost, {result['duplicates']} twice")  # -s shows
    return result


def test_relp_loses_nothing_when_the_receiver_is_killed(rsyslog: Any, tmp_path: Path) -> None:
    result = run_and_restart(rsyslog, "imrelp", "relp", tmp_path)
    assert result["retries"] >= 1, "the kill was noticed"
    assert result["lost"] == [] and not result["unknown"]
    # re-sent: only messages whose rsp 200 was lost with the connection (at most a batch)
    assert result["duplicates"] <= PER_BATCH


def test_tcp_loses_at_most_the_receivers_unread_bytes(rsyslog: Any, tmp_path: Path) -> None:
    result = run_and_restart(rsyslog, "imptcp", "tcp", tmp_path)
    assert result["retries"] >= 1 and not result["unknown"]
    # README: what the receiver's TCP acknowledged and its process had not stored when it
    # died: at most its socket receive buffer (Linux: net.ipv4.tcp_rmem's maximum)
    rmem_max = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    frame = len(orjson.dumps(events(0, 1)[0])) + 120  # document + RFC 5424 header + framing
    assert len(result["lost"]) * frame <= rmem_max, result["lost"]
    # and nothing sent after the new connection was lost: the lost ones are one stretch
    lost = [int(i[1:]) for i in result["lost"]]
    assert lost == list(range(lost[0], lost[0] + len(lost))) if lost else True
    assert result["duplicates"] <= PER_BATCH


@pytest.mark.parametrize("kind,transport", [("imptcp", "tcp"), ("imrelp", "relp")])
def test_a_receiver_restarted_between_batches_costs_nothing(
    rsyslog: Any, tmp_path: Path, kind: str, transport: str
) -> None:
    """Receivers close idle connections (and restart): the next batch notices before writing
    and connects again at once, without a retry or a lost event."""
    first = rsyslog(kind, parse="none")
    out = build(
        Settings(hosts=[f"127.0.0.1:{first.port}"], transport=transport, retry_rounds=0),
        tmp_path,
    )
    out.restore(None)
    try:
        assert out.send(as_pipeline_sends(out, events(0, 50))).delivered == 50
        first.wait_for(50)  # (stopped before reading them, rsyslog would drop them: TCP's gap)
        first.stop()  # SIGTERM: rsyslog closes its connections in order
        second = rsyslog(kind, parse="none", port=first.port)
        time.sleep(0.2)
        # retry_rounds=0: no retry
        assert out.send(as_pipeline_sends(out, events(50, 50))).delivered == 50
    finally:
        out.close()
    second.wait_for(50)  # TCP's "delivered" comes before rsyslog has written it
    got = [orjson.loads(line["msg"])["event"]["id"] for r in (first, second) for line in r.lines()]
    assert sorted(got) == [f"r{n:06d}" for n in range(100)]
