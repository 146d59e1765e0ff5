"""Settings that no longer do anything: accepted, with a warning naming what replaced them.

A configuration that worked must keep starting after an upgrade: a shipper under systemd that
refused its old file would stop shipping until someone read the journal. So a retired key is
dropped before validation and the start-up log says, once, what to remove and what does its
job now. (A key that would now mean something else would have to be an error instead.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["RETRY_ROUNDS", "drop_retired"]

log = logging.getLogger("shipper")

#: the one explanation for the outputs' old retry loop
RETRY_ROUNDS = (
    "the pipeline's delivery loop is the one retry policy: it resends the batch after"
    " backoff_initial..backoff_max until the output is back (or for"
    " pipeline.once_retry_seconds with --once), and a stop request ends the wait at once"
)

_said: set[tuple[str, str]] = set()


def drop_retired(data: Any, what: str, retired: Mapping[str, str]) -> Any:
    """``data`` without the ``retired`` keys (key -> what replaced it), each warned about once
    per process for ``what`` (e.g. ``"elasticsearch output"``)."""
    if not isinstance(data, dict) or not any(key in data for key in retired):
        return data
    data = dict(data)
    for key, instead in retired.items():
        if key not in data:
            continue
        del data[key]
        if (what, key) not in _said:
            _said.add((what, key))
            log.warning("%s: %s is retired and ignored (%s); remove it", what, key, instead)
    return data
