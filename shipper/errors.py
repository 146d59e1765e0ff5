"""One error hierarchy, grouped by what the pipeline does with it.

Transports and readers translate library exceptions into these at their edge, so the pipeline
never catches ``OSError`` or a client library's errors directly.
"""

from __future__ import annotations


class ShipperError(Exception):
    """Base of every error the shipper raises on purpose."""


class ConfigError(ShipperError):
    """The configuration cannot work; the message names the offending setting."""


class RecordRejected(ShipperError):
    """One record cannot be normalised; it is quarantined with this reason and the rest ships."""


class RetryLater(ShipperError):
    """An output could not deliver now (server busy, connection refused); try the batch again."""


class OutputFailed(ShipperError):
    """An output cannot deliver at all (bad credentials, TLS failure); stop without committing."""


class CheckpointError(ShipperError):
    """The checkpoint store cannot be used as it is (empty, damaged, disk full); the message
    names the file and the remedy. Nothing uncommitted is lost: it is read and sent again."""
