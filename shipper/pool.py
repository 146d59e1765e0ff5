"""Worker processes that take calls one by one and answer in the order they were made.

Hand-written, not ``multiprocessing``: its spawn start method (the one that works alike on
Linux and Windows) starts, on POSIX, a resource tracker with the first worker, one more Python
process (15 MB resident) that does nothing for us, and re-imports the program's main module in
every worker; ``ProcessPoolExecutor`` adds two threads in the calling process to feed and drain
its queues. The pipeline needs much less: answers in call order, a bounded number of calls
outstanding. So a worker here is a plain ``python -c`` subprocess that reads pickled calls
from its stdin and writes pickled answers to its stdout; calls go to the worker with the fewest
outstanding, and the answer to the oldest call is the next one from its worker.

One thread sends, so that the caller never blocks on a full pipe: a worker busy writing a big
answer reads no calls meanwhile, and a caller stuck sending it another would never read that
answer. A worker leaves at the end of its stdin, which is also what happens when the calling
process dies, even by ``kill -9``.

That is the only way a worker leaves: the caller owns stopping. A closing terminal's SIGHUP, a
Ctrl-C or a ``kill -TERM -PGID`` reaches every process of the group, and a worker killed by it
would turn a stop the caller handles (or a hang-up it ignores) into a "decoder process ended
unexpectedly". So on POSIX the workers start in a session of their own (no terminal signal
reaches them, not even while Python starts), and every worker ignores SIGINT, SIGTERM, SIGHUP
and Windows' SIGBREAK from its first statement (a signal to the whole control group, or sent
to the worker itself).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from queue import SimpleQueue
from typing import IO, Any

from shipper.errors import ShipperError

#: the directory ``shipper`` is imported from, so that workers run the same code
_IMPORT_ROOT = str(Path(__file__).resolve().parent.parent)
#: a worker's first statement: the stop and hang-up signals are the caller's to handle
_IGNORE_STOPS = (
    "import signal; [signal.signal(getattr(signal, n), signal.SIG_IGN) for n in"
    " ('SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK') if hasattr(signal, n)]; "
)


class WorkerDied(ShipperError):
    """A worker process ended while calls to it were outstanding (killed, out of memory)."""


class OrderedPool:
    def __init__(self, processes: int, main: str, *args: str) -> None:
        """Start ``processes`` workers, each running ``main(*args)``, ``main`` given as
        ``"module:function"``; that function calls ``serve``."""
        module, function = main.split(":")
        # last on the path: where nothing else provides shipper (a checkout run in place)
        code = (
            f"{_IGNORE_STOPS}import sys; sys.path.append({_IMPORT_ROOT!r}); "
            f"from {module} import {function}; {function}(*sys.argv[1:])"
        )
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=sys.platform != "win32",
            )
            for _ in range(processes)
        ]
        self._outstanding = [0] * processes
        self._order: deque[int] = deque()  # the worker of each outstanding call, oldest first
        self._outbox: SimpleQueue[tuple[int, tuple[Any, ...]] | None] = SimpleQueue()
        self._send_error: BaseException | None = None
        self._sender = threading.Thread(target=self._send_all, name="pool-send", daemon=True)
        self._sender.start()

    def __len__(self) -> int:
        """Calls made and not yet answered."""
        return len(self._order)

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def call(self, *args: Any) -> None:
        """Queue a call; its answer comes from ``answer`` after those of earlier calls."""
        worker = min(range(len(self._procs)), key=self._outstanding.__getitem__)
        self._outstanding[worker] += 1
        self._order.append(worker)
        self._outbox.put((worker, args))

    def answer(self) -> Any:
        """The answer to the oldest outstanding call (its exception, raised here)."""
        worker = self._order.popleft()
        self._outstanding[worker] -= 1
        proc = self._procs[worker]
        assert proc.stdout is not None
        try:
            ok, value = pickle.load(proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            try:
                code = proc.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            why = f"exit code {code}" if code is not None else "its output ended"
            if self._send_error is not None:
                why += f"; sending to it failed: {self._send_error}"
            raise WorkerDied(
                f"decoder process {proc.pid} ended unexpectedly ({why}); stopping. Nothing"
                " uncommitted is lost: the next run reads it again"
            ) from None
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the workers; outstanding calls are abandoned."""
        self._outbox.put(None)
        for proc in self._procs:
            # first, so that a worker stuck writing an answer nobody will read gets a broken
            # pipe and leaves, and the sender, stuck writing to it, gets one too
            proc.stdout.close()  # type: ignore[union-attr]
        self._sender.join()
        for proc in self._procs:
            try:
                proc.stdin.close()  # type: ignore[union-attr]  # a worker leaves at its end
            except OSError:
                pass
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:  # busy with a call whose answer is not wanted
                proc.kill()
                proc.wait()

    def _send_all(self) -> None:
        while (item := self._outbox.get()) is not None:
            worker, args = item
            stdin = self._procs[worker].stdin
            assert stdin is not None
            try:
                pickle.dump(args, stdin, pickle.HIGHEST_PROTOCOL)
                stdin.flush()
            except (OSError, ValueError) as e:  # the worker died; `answer` reports it
                self._send_error = e


def serve(function: Callable[..., Any]) -> None:
    """A worker's loop: call ``function`` with each set of arguments read, until input ends.

    Stdout carries the answers, so anything else printed goes to stderr instead.
    """
    calls: IO[bytes] = sys.stdin.buffer
    answers: IO[bytes] = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no usable stderr (a service, say)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    while True:
        try:
            args = pickle.load(calls)
        except EOFError:
            return
        try:
            answer: tuple[bool, Any] = (True, function(*args))
        except Exception as e:
            answer = (False, e)
        try:
            try:
                data = pickle.dumps(answer, pickle.HIGHEST_PROTOCOL)
            except Exception:  # an exception that does not pickle
                if answer[0]:
                    raise
                error = RuntimeError(f"{type(answer[1]).__name__}: {answer[1]}")
                data = pickle.dumps((False, error), pickle.HIGHEST_PROTOCOL)
            answers.write(data)
            answers.flush()
        except OSError:  # the caller is gone
            return
