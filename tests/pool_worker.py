"""Worker functions for tests/test_pool.py, importable in the worker processes it starts."""

from __future__ import annotations

import os
import time

from shipper.pool import serve


def main(greeting: str) -> None:
    serve(lambda *args: _act(greeting, *args))


def _act(greeting: str, what: str, value: float) -> object:
    if what == "sleep":  # answers later than the calls after it, when those are quicker
        time.sleep(value)
        return (greeting, value)
    if what == "print":  # chatter on stdout must not reach the caller as an answer
        print("some library talking on stdout")
        return value
    if what == "raise":
        raise ValueError(f"bad value {value}")
    if what == "unpicklable":
        e = ValueError("carries a lock")
        e.lock = __import__("threading").Lock()  # type: ignore[attr-defined]
        raise e
    if what == "exit":
        os._exit(3)
    if what == "big":  # more than a pipe holds
        return b"x" * int(value)
    if what == "pid":
        return os.getpid()
    raise AssertionError(what)
