"""The output against the spec receiver: delivery, acks, resends, failover, handshake, TLS."""

from __future__ import annotations

import random
import socket
import ssl
import threading
import time
from collections import Counter

import orjson
import pytest

from shipper.errors import OutputFailed, RetryLater
from shipper.outputs.fluentd import transport

from .conftest import batch_of, event, send_until_acked
from .receiver import EventTime, Faults, Receiver

N = 1000


def assert_resends_only_unacked(r: Receiver) -> None:
    """No chunk arrives again after the receiver acknowledged it."""
    acked: set[str | None] = set()
    for kind, chunk in r.log:
        if kind == "ack":
            acked.add(chunk)
        else:
            assert chunk not in acked, f"chunk {chunk} resent after its ack"


@pytest.mark.parametrize("mode", ["packed_forward", "forward", "compressed_packed_forward"])
def test_every_mode_delivers_records_tag_and_nanosecond_time(receiver, make_output, mode):
    events = [event(i) for i in range(N)]
    events[0]["@timestamp"] = "2024-03-04T09:00:00.123456789Z"
    events[1]["@timestamp"] = "2024-03-04T10:00:00.5+01:00"
    events[2]["event"]["dataset"] = "rms_connector.events"
    out = make_output(receiver, mode=mode, chunk_events=300)
    ack = out.send(batch_of(events))
    assert ack.delivered == N
    got = {e.record["event"]["id"]: e for e in receiver.events}
    assert len(receiver.events) == N and not receiver.errors
    assert {e.mode for e in receiver.events} == {mode}
    # each record is exactly the document the NDJSON output would have written
    for ev in events:
        assert orjson.dumps(got[ev["event"]["id"]].record) == orjson.dumps(ev)
    assert got["id-000000"].time == EventTime(1709542800, 123456789)
    assert got["id-000001"].time == EventTime(1709542800, 500000000)  # 10:00+01:00 = 09:00Z
    assert got["id-000005"].time == EventTime(1709542805, 5000000)
    assert got["id-000002"].tag == "shipper.rms_connector.events"
    assert Counter(e.tag for e in receiver.events)["shipper.azure_rms.usage"] == N - 1
    assert all(size <= 300 for _, size in receiver.chunks)
    assert len({c for c, _ in receiver.chunks}) == len(receiver.chunks)  # ids unique


def test_tag_prefix_and_chunk_bytes(receiver, make_output):
    out = make_output(receiver, tag_prefix="rms.prod", chunk_bytes="10KB")
    out.send(batch_of([event(i) for i in range(200)]))
    assert {e.tag for e in receiver.events} == {"rms.prod.azure_rms.usage"}
    assert len(receiver.chunks) > 5 and sum(s for _, s in receiver.chunks) == 200


def test_without_acks_no_chunk_option_is_sent(receiver, make_output):
    out = make_output(receiver, require_ack=False)
    out.send(batch_of([event(i) for i in range(N)]))
    deadline = time.monotonic() + 5
    while len(receiver.events) < N and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(receiver.ids()) == [f"id-{i:06d}" for i in range(N)]
    assert {c for c, _ in receiver.chunks} == {None}


def test_connection_dropped_mid_chunk_resends_only_unacked_chunks(make_output):
    with Receiver(faults=Faults(drop_after_bytes=150_000, drops=2)) as r:
        out = make_output(r, chunk_events=100, max_in_flight=4)
        send_until_acked(out, batch_of([event(i) for i in range(3000)]))
        ids = r.ids()
        assert set(ids) == {f"id-{i:06d}" for i in range(3000)}
        assert r.connections == 3 and out.resent >= 2
        # Only what was in flight when a connection dropped comes again: at most the window
        # per drop (an ack the receiver wrote just before dropping may be lost with it).
        arrivals = Counter(c for c, _ in r.chunks)
        assert sum(n - 1 for n in arrivals.values()) <= 2 * 4
        assert len(ids) - 3000 == sum((n - 1) * 100 for n in arrivals.values())


def test_ack_past_the_timeout_resends_the_same_chunk_id(make_output):
    with Receiver(faults=Faults(delay_ack=1.0, delayed=1)) as r:
        out = make_output(r, ack_timeout=0.3, chunk_events=250)
        send_until_acked(out, batch_of([event(i) for i in range(1000)]))
        arrivals = Counter(c for c, _ in r.chunks)
        twice = [c for c, n in arrivals.items() if n > 1]
        assert twice == [r.chunks[0][0]]  # the late one, same id, and only it
        assert set(r.ids()) == {f"id-{i:06d}" for i in range(1000)}
        assert len(r.ids()) == 1000 + r.chunks[0][1]
        assert_resends_only_unacked(r)


def test_an_ack_for_a_wrong_chunk_id_does_not_count(make_output):
    with Receiver(faults=Faults(wrong_acks=1)) as r:
        out = make_output(r, chunk_events=250, max_in_flight=1)
        send_until_acked(out, batch_of([event(i) for i in range(1000)]))
        first = r.chunks[0][0]
        assert [c for c, _ in r.chunks].count(first) == 2
        assert set(r.ids()) == {f"id-{i:06d}" for i in range(1000)}
        assert_resends_only_unacked(r)


def test_in_flight_chunks_are_bounded(make_output):
    with Receiver(faults=Faults(never_ack=True)) as r:
        out = make_output(r, chunk_events=10, max_in_flight=3, ack_timeout=0.3)
        with pytest.raises(RetryLater):
            out.send(batch_of([event(i) for i in range(100)]))
        # one connection got 3 chunks, waited for acks that never came, and gave up
        assert len(r.chunks) == 3 and r.connections == 1


def test_all_receivers_down_retries_later_then_resumes_without_resending_acked(make_output):
    with Receiver(faults=Faults(drop_after_bytes=100_000, drops=1)) as r:
        out = make_output(r, chunk_events=50, backoff_initial=5, backoff_max=5)
        b = batch_of([event(i) for i in range(1000)])
        with pytest.raises(RetryLater, match="every receiver is down"):
            out.send(b)
        assert r.connections == 1  # marked down for seconds: no retry loop inside send
        out.send(b)  # the pipeline waited and hands the same batch back
        assert set(r.ids()) == {f"id-{i:06d}" for i in range(1000)}
        # the chunks acked before the drop are not sent again; those in flight may be
        arrivals = Counter(c for c, _ in r.chunks)
        assert sum(n - 1 for n in arrivals.values()) <= 4


def test_failover_to_the_next_receiver(make_output):
    with Receiver() as gone:
        dead = gone.address
    with Receiver(faults=Faults(drop_after_bytes=200_000, drops=1)) as flaky, Receiver() as spare:
        out = make_output(dead, flaky, spare, chunk_events=100)
        out.send(batch_of([event(i) for i in range(2000)]))
        assert flaky.events and spare.events
        assert set(flaky.ids()) | set(spare.ids()) == {f"id-{i:06d}" for i in range(2000)}
        assert out.receivers[0].failures >= 1 and out.receivers[1].failures == 1


def test_handshake_with_shared_key_and_user(make_output):
    with Receiver(shared_key="s3cret", users={"alice": "pw"}) as r:
        out = make_output(r, shared_key="s3cret", username="alice", password="pw",
                          self_hostname="shipper.test")  # fmt: skip
        out.send(batch_of([event(i) for i in range(10)]))
        assert len(r.events) == 10
        ping = r.pings[0]
        assert ping[1] == "shipper.test" and ping[4] == "alice"
        assert "s3cret" not in repr(ping) and "pw" not in ping


def test_a_receiver_without_keepalive_gets_one_chunk_per_connection(make_output):
    with Receiver(shared_key="k", keepalive=False) as r:
        out = make_output(r, shared_key="k", chunk_events=100)
        out.send(batch_of([event(i) for i in range(500)]))
        assert len(r.ids()) == 500 and r.connections == 5 and out.resent == 0


def test_a_wrong_shared_key_is_a_clear_error_naming_the_receiver(make_output):
    with Receiver(shared_key="right") as r:
        out = make_output(r, shared_key="wrong")
        with pytest.raises(OutputFailed, match=rf"{r.address}.*shared_key mismatch"):
            out.send(batch_of([event(1)]))
        assert r.connections == 1  # no retry loop
        assert not r.events


def test_a_wrong_password_is_a_clear_error(make_output):
    with Receiver(shared_key="k", users={"alice": "pw"}) as r:
        out = make_output(r, shared_key="k", username="alice", password="nope")
        with pytest.raises(OutputFailed, match="username/password mismatch"):
            out.send(batch_of([event(1)]))


def test_a_receiver_that_does_not_know_the_key_is_not_trusted(make_output):
    with Receiver(shared_key="k", faults=Faults(fake_pong=True)) as r:
        out = make_output(r, shared_key="k")
        with pytest.raises(OutputFailed, match="could not prove it knows the shared key"):
            out.send(batch_of([event(1)]))
        assert not r.events


def test_a_receiver_wanting_a_handshake_without_our_key_is_a_clear_error(make_output):
    with Receiver(shared_key="k") as r:
        for acks in (True, False):
            out = make_output(r, require_ack=acks)
            with pytest.raises(OutputFailed, match="set shared_key"):
                send_until_acked(out, batch_of([event(i) for i in range(100)]), timeout=5)


def test_close_after_helo_is_retried(make_output):
    with Receiver(shared_key="k", faults=Faults(close_after_helo=1)) as r:
        out = make_output(r, shared_key="k")
        b = batch_of([event(i) for i in range(10)])
        # closed or reset, as the loopback's timing has it: the receiver is named, and retried
        why = rf"{r.address}: (the receiver closed the connection|connection lost)"
        with pytest.raises(RetryLater, match=why):
            out.send(b)
        out.send(b)
        assert len(r.events) == 10


def _server_tls(pki, client_auth: bool = False) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    if client_auth:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki["ca.pem"])
    return ctx


def test_tls_verified_with_client_certificate_and_handshake(make_output, pki):
    with Receiver(tls=_server_tls(pki, client_auth=True), shared_key="k") as r:
        out = make_output(r, tls=True, ca_file=pki["ca.pem"], shared_key="k",
                          client_cert=pki["client.pem"], client_key=pki["client.key"])  # fmt: skip
        out.send(batch_of([event(i) for i in range(50)]))
        assert len(r.events) == 50


def test_tls_refuses_an_untrusted_certificate_by_default(make_output, pki):
    with Receiver(tls=_server_tls(pki)) as r:
        out = make_output(r, tls=True)  # the system CAs do not know our test CA
        with pytest.raises(OutputFailed, match=rf"{r.address}.*certificate"):
            out.send(batch_of([event(1)]))
        unverified = make_output(r, tls=True, verify_certs=False)
        unverified.send(batch_of([event(1)]))
        assert len(r.events) == 1


def test_check_reaches_every_receiver_or_names_the_failing_one(tmp_path):
    from shipper.outputs.fluentd import Settings, check

    with Receiver(shared_key="k") as a, Receiver(shared_key="k") as b:
        line = check(Settings(hosts=[a.address, b.address], shared_key="k"), tmp_path)
        assert a.address in line and b.address in line and "shared key" in line
        assert not a.events
        with pytest.raises(OutputFailed, match=a.address):
            check(Settings(hosts=[a.address], shared_key="bad"), tmp_path)
    with pytest.raises(OutputFailed, match="cannot reach"):
        check(Settings(hosts=[a.address], connect_timeout=1), tmp_path)


def test_a_message_in_many_parts_arrives_whole_through_partial_writes():
    """Chunks are written as a list of buffers (``sendmsg``); a receiver that reads slowly
    makes each call write only part of them, and the next goes on where it stopped."""
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    a.settimeout(10)  # as a connection has: writes then take what fits and return
    rng = random.Random(7)
    # more buffers than one call takes (512), some empty, one a slice of a larger buffer
    parts = [rng.randbytes(rng.choice([0, 1, 17, 900, 9_000])) for _ in range(1200)]
    parts[3] = memoryview(b"abcdefgh")[2:6]
    got = bytearray()

    def read() -> None:
        while chunk := b.recv(5000):
            got.extend(chunk)
            if len(got) % 7 == 0:
                time.sleep(0.001)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        transport._send_gathered(a, parts)
    finally:
        a.close()
        reader.join()
        b.close()
    assert bytes(got) == b"".join(parts)
