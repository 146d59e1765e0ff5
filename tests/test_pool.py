"""The decoder pool: answers in call order, errors carried back, dead workers named."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shipper.pool import OrderedPool, WorkerDied

HERE = str(Path(__file__).resolve().parent)


@pytest.fixture
def pool(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", HERE)
    made = OrderedPool(2, "pool_worker:main", "hello")
    yield made
    made.close()


def test_answers_come_in_call_order_whichever_worker_finishes_first(pool):
    rng = random.Random(3)
    delays = [rng.choice([0.0, 0.02, 0.1]) for _ in range(16)]
    got = []
    for d in delays:
        pool.call("sleep", d)
        if len(pool) > 4:  # answers are taken while later calls are still running
            got.append(pool.answer())
    while len(pool):
        got.append(pool.answer())
    assert got == [("hello", d) for d in delays]
    assert len(set(delays)) == 3


def test_work_is_spread_over_every_worker(pool):
    for _ in range(4):
        pool.call("pid", 0)
    assert sorted({pool.answer() for _ in range(4)}) == sorted(pool.pids)


def test_printing_in_a_worker_does_not_corrupt_answers(pool, capfd):
    for i in range(6):
        pool.call("print", i)
    assert [pool.answer() for _ in range(6)] == list(range(6))


def test_an_exception_comes_back_raised_and_the_pool_goes_on(pool):
    pool.call("raise", 7)
    pool.call("unpicklable", 0)
    pool.call("sleep", 0)
    with pytest.raises(ValueError, match="bad value 7"):
        pool.answer()
    with pytest.raises(RuntimeError, match="ValueError: carries a lock"):
        pool.answer()
    assert pool.answer() == ("hello", 0)


def test_a_worker_that_dies_is_named_not_waited_for_forever(pool):
    pool.call("exit", 0)
    with pytest.raises(WorkerDied, match=r"decoder process \d+ ended unexpectedly \(exit code 3\)"):
        pool.answer()


def test_close_returns_while_workers_wait_to_hand_over_big_answers(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", HERE)
    made = OrderedPool(2, "pool_worker:main", "hello")
    for _ in range(6):  # answers nobody reads, each far bigger than a pipe's buffer
        made.call("big", 4_000_000)
    time.sleep(0.5)  # the workers are now blocked writing them
    closing = threading.Thread(target=made.close)
    closing.start()
    closing.join(20)
    assert not closing.is_alive(), "close() hung"
    # they left on their own, not killed for being stuck
    assert [p.returncode for p in made._procs] == [0, 0]


def test_close_ends_every_worker(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", HERE)
    made = OrderedPool(2, "pool_worker:main", "hello")
    made.call("sleep", 0.3)  # an abandoned call does not hold close up
    procs = list(made._procs)
    made.close()
    assert all(p.returncode is not None for p in procs)


def test_workers_run_without_a_stderr(tmp_path):
    """A service may start the shipper with no standard error: workers must work anyway."""
    script = (
        "import os, sys\n"
        "os.close(2)\n"
        "from shipper.pool import OrderedPool\n"
        "pool = OrderedPool(1, 'pool_worker:main', 'hi')\n"
        "pool.call('print', 5)\n"
        "print(pool.answer())\n"
        "pool.close()\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, str(Path(HERE).parent)]))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "5"
