"""Stop requests from the operator: signals in, a bounded shutdown out.

The first SIGINT or SIGTERM (on Windows, the console's Ctrl-C and Ctrl-Break) asks the pipeline
to stop: every wait ends at once and what the outputs acknowledged is committed. A watchdog
then gives the shutdown ``pipeline.shutdown_timeout`` seconds; past that, or at a second
signal, the process leaves at once with ``os._exit``. Nothing is lost either way: positions
move only with commits, so what was not committed is read again by the next run (the same
guarantee that makes ``kill -9`` safe).

SIGHUP (POSIX) does not kill: the configuration is read at start, so a HUP from a terminal
going away or a log rotation script is logged and ignored.

``shipper run`` installs the handlers before anything else (loading the configuration, opening
the checkpoint), so a stop while starting is an interruption like a later one; other commands
turn a Ctrl-C into exit 130 (``shipper.cli``).

Exit codes follow the shell's convention for a process ended by a signal, 128 + its number
(130 for SIGINT, 143 for SIGTERM, 149 for Windows' Ctrl-Break), whenever a stop cut the work
short: ``--once`` interrupted, or a shutdown that had to be forced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["StopRequests", "exit_code"]

log = logging.getLogger("shipper")

#: seconds; ``pipeline.shutdown_timeout``'s default, for a stop before the configuration is read
DEFAULT_TIMEOUT = 10.0


def exit_code(signum: int) -> int:
    """The conventional exit status of a process stopped by ``signum``."""
    return 128 + int(signum)


def _stop_signals() -> list[signal.Signals]:
    found = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGBREAK"):  # Windows: Ctrl-Break in the console
        found.append(signal.SIGBREAK)
    return found


class StopRequests:
    """Installs the handlers; ``signum`` is the first stop signal received, or None."""

    def __init__(
        self,
        stop: Callable[[], None],
        timeout: float = DEFAULT_TIMEOUT,
        exit_now: Callable[[int], None] = os._exit,
    ) -> None:
        self._stop = stop
        self._timeout = timeout
        self._exit_now = exit_now
        self.signum: int | None = None
        self._watchdog: threading.Thread | None = None
        self._done = threading.Event()

    def install(self) -> None:
        for sig in _stop_signals():
            signal.signal(sig, self._on_stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._on_hup)

    def retarget(self, stop: Callable[[], None], timeout: float | None = None) -> None:
        """Send later stop requests to another pipeline (the first one, when the handlers
        were installed before there was one), with its ``shutdown_timeout``."""
        self._stop = stop
        if timeout is not None:
            self._timeout = timeout

    def finished(self) -> None:
        """The shutdown completed on its own: the watchdog stands down."""
        self._done.set()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            log.warning(
                "%s again: exiting now; what was not committed is read again at the next run",
                signal.Signals(signum).name,
            )
            self._leave(exit_code(self.signum))
            return
        self.signum = signum
        log.info(
            "%s: stopping; finishing and committing what the outputs acknowledged (at most"
            " %g s; %s again to exit at once)",
            self.name,
            self._timeout,
            "Ctrl-C" if signum == signal.SIGINT else self.name,
        )
        self._stop()
        self._watchdog = threading.Thread(target=self._watch, name="shutdown", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        if self._done.wait(self._timeout):
            return
        log.error(
            "still stopping after %g s (pipeline.shutdown_timeout): exiting now; what was not"
            " committed is read again at the next run",
            self._timeout,
        )
        assert self.signum is not None
        self._leave(exit_code(self.signum))

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        log.info(
            "SIGHUP: ignored; the configuration is read at start, restart the shipper to apply"
            " changes"
        )

    def _leave(self, code: int) -> None:
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):  # leaving anyway
                handler.flush()
        with contextlib.suppress(Exception):
            if sys.stderr.isatty():
                sys.stderr.write("\x1b[?25h")  # a progress bar hid the cursor
            sys.stderr.flush()
        self._exit_now(code)
