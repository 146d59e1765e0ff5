"""The output contract (``shipper.outputs.base``), run by every output shipper registers.

What the pipeline relies on: an ``Ack`` accounts for every event of the batch; a batch sent but
not committed (the process died in between) is sent again after ``restore`` and the receiver
holds each event once (or, for a stream that cannot be rewound, at least once); a receiver that
is away for a while raises ``RetryLater`` and takes the same batch later; one that cannot work
raises ``OutputFailed``; ``close`` may be called twice; an empty batch is harmless.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from shipper.errors import OutputFailed, RetryLater
from shipper.outputs import build_output
from shipper.outputs.base import Ack, EventBatch

from .harness import CONNECTOR, Target, batch, ids, with_wires


def build(target: Target, settings: Any = None) -> Any:
    """The output, sent batches as the pipeline builds them (``harness.with_wires``)."""
    out = build_output(settings or target.settings, target.data_dir)
    send = out.send
    out.send = lambda b: send(with_wires(out, b))
    return out


def committed(state: Any) -> Any:
    """What the checkpoint store gives back: the state after a round trip through JSON."""
    return None if state is None else orjson.loads(orjson.dumps(state))


def accounted(ack: Ack, b: EventBatch) -> bool:
    return isinstance(ack, Ack) and ack.delivered + ack.duplicates + ack.dead_lettered == len(b)


def assert_received(target: Target, want: list[str]) -> None:
    got = target.delivered()
    if target.exactly_once:
        assert Counter(got) == Counter(want), "each event exactly once"
    else:
        assert set(got) == set(want), "each event at least once, nothing else"


def test_ack_accounts_for_every_event_of_each_dataset(target: Target) -> None:
    out = build(target)
    try:
        out.restore(None)
        meta = out.needs_metadata
        for b in (batch(range(0, 30), meta), batch(range(30, 40), meta, CONNECTOR)):
            ack = out.send(b)
            assert accounted(ack, b), ack
            assert ack.delivered == len(b)
    finally:
        out.close()
    assert_received(target, ids(range(0, 30)) + ids(range(30, 40), CONNECTOR))


def test_a_batch_sent_but_not_committed_is_sent_again_after_restore(target: Target) -> None:
    out = build(target)
    state = committed(out.restore(None))
    first = batch(range(0, 25), out.needs_metadata)
    ack = out.send(first)
    assert accounted(ack, first)
    state = committed(ack.state) if ack.state is not None else state
    out.send(batch(range(25, 50), out.needs_metadata))  # the process dies before the commit
    out.close()

    again = build(target)
    try:
        later = committed(again.restore(state))
        assert later is None or isinstance(later, dict)
        resent = batch(range(25, 50), again.needs_metadata)
        ack = again.send(resent)
        assert accounted(ack, resent), ack
    finally:
        again.close()
    assert_received(target, ids(range(0, 50)))


def test_a_receiver_away_for_a_while_means_retry_later_then_the_same_batch(
    target: Target,
) -> None:
    if target.down is None:
        pytest.skip("this output has no temporarily unavailable state")
    out = build(target)
    try:
        out.restore(None)
        b = batch(range(0, 20), out.needs_metadata)
        with target.down(), pytest.raises(RetryLater):
            out.send(b)
        ack = out.send(b)  # the pipeline hands the same batch back
        assert accounted(ack, b), ack
    finally:
        out.close()
    assert_received(target, ids(range(0, 20)))


def test_an_output_that_cannot_work_raises_output_failed(target: Target) -> None:
    if target.broken is None:
        pytest.skip("no way to make this output unusable")
    out = None
    with pytest.raises(OutputFailed) as failed:
        out = build(target, target.broken())
        out.restore(None)
        out.send(batch(range(0, 5), out.needs_metadata))
    assert str(failed.value), "the message says what failed"
    if out is not None:
        out.close()
    assert target.delivered() == []


def test_close_twice_and_close_without_use(target: Target) -> None:
    out = build(target)
    out.restore(None)
    assert accounted(out.send(b := batch(range(0, 3), out.needs_metadata)), b)
    out.close()
    out.close()
    unused = build(target)
    unused.close()
    unused.close()
    assert_received(target, ids(range(0, 3)))


def test_an_empty_batch_delivers_nothing_and_breaks_nothing(target: Target) -> None:
    out = build(target)
    try:
        out.restore(None)
        empty = EventBatch()
        ack = out.send(empty)
        assert accounted(ack, empty) and ack.delivered == 0, ack
        assert target.delivered() == []
        b = batch(range(0, 4), out.needs_metadata)
        assert accounted(out.send(b), b)
    finally:
        out.close()
    assert_received(target, ids(range(0, 4)))
