"""What to do with each document of a ``_bulk`` request, decided from the reply alone.

A pure function of (HTTP status, parsed body), tested with captured replies kept as files, so
the rules below are checked without a server:

- 2xx item: delivered. 409 on ``create`` (``version_conflict_engine_exception``): the document
  is already there, from an earlier attempt; counted as a duplicate, which is success.
- 429 and 5xx (whole request or item), and ``cluster_block_exception`` (disk flood stage, a
  read-only block that an operator lifts): retry that document later.
- 401/403 (whole request or item, except cluster blocks): fatal; credentials or privileges are
  wrong and every later document would fail the same way.
- Item errors that say the *target* is unusable (index missing with auto-create off, closed,
  invalid name, data streams unsupported): fatal, since dead-lettering them would quietly
  dead-letter everything.
- 413: the request was too big; split it (a single document that is too big is dead-lettered).
- Any other 4xx item (mapping conflicts, malformed values): dead-letter that one document.
- Any other whole-request status (400 such as a refused compatibility header, 404 from a
  proxy path): fatal, with the server's reason in the message.

``output.py`` acts on the verdicts once per ``send``; the wait before documents marked retry
are sent again is the pipeline's (``shipper.pipeline.delivery``, the one retry policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Outcome(Enum):
    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    FATAL = "fatal"
    SPLIT = "split"


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: item error types that mean no document can reach this target
TARGET_ERRORS = frozenset(
    {
        "index_not_found_exception",
        "index_closed_exception",
        "invalid_index_name_exception",
        "unsupported_operation_exception",
    }
)
RETRY_ERRORS = frozenset({"cluster_block_exception", "es_rejected_execution_exception"})


@dataclass(slots=True)
class Verdict:
    """The fate of one request: one outcome per document, plus a reason for the log."""

    outcomes: list[Outcome]
    errors: list[dict[str, Any] | None] = field(default_factory=list)
    statuses: list[int | None] = field(default_factory=list)
    reason: str = ""

    @property
    def fatal(self) -> bool:
        return Outcome.FATAL in self.outcomes


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            kind, why = err.get("type", ""), err.get("reason", "")
            return f"{kind}: {why}" if kind and why else str(kind or why or err)
        return str(err)
    return str(body)[:300]


def classify_item(status: int | None, error: dict[str, Any] | None) -> Outcome:
    if status is None:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    kind = (error or {}).get("type", "")
    if status == 409 and kind in ("version_conflict_engine_exception", ""):
        return Outcome.DUPLICATE
    if kind in RETRY_ERRORS or status in RETRY_STATUSES or status >= 500:
        return Outcome.RETRY
    if status in (401, 403) or kind in TARGET_ERRORS or kind == "security_exception":
        return Outcome.FATAL
    if status == 413:
        return Outcome.SPLIT
    return Outcome.DEAD_LETTER


def classify(status: int, body: Any, count: int) -> Verdict:
    """Decide the fate of each of the ``count`` documents sent in one ``_bulk`` request."""
    if status in RETRY_STATUSES or status >= 500:
        return Verdict([Outcome.RETRY] * count, reason=f"HTTP {status}: {_reason(body)}")
    if status in (401, 403):
        what = "authentication failed" if status == 401 else "not allowed"
        return Verdict([Outcome.FATAL] * count, reason=f"{what} (HTTP {status}): {_reason(body)}")
    if status == 413:
        return Verdict([Outcome.SPLIT] * count, reason="request too large (HTTP 413)")
    if not 200 <= status < 300:
        return Verdict([Outcome.FATAL] * count, reason=f"HTTP {status}: {_reason(body)}")
    if not isinstance(body, dict):
        return Verdict([Outcome.FATAL] * count, reason=f"not a bulk reply: {_reason(body)}")
    if body.get("errors") is False and "items" not in body:
        return Verdict([Outcome.DELIVERED] * count)
    items = body.get("items")
    if not isinstance(items, list) or len(items) != count:
        got = len(items) if isinstance(items, list) else "no"
        return Verdict(
            [Outcome.FATAL] * count,
            reason=f"bulk reply has {got} items for {count} documents (a proxy in the way?)",
        )
    if body.get("errors") is False:
        return Verdict([Outcome.DELIVERED] * count)
    outcomes: list[Outcome] = []
    errors: list[dict[str, Any] | None] = []
    statuses: list[int | None] = []
    reason = ""
    for item in items:
        result = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
        st = result.get("status")
        err = result.get("error")
        if isinstance(err, str):
            err = {"type": "", "reason": err}
        outcome = classify_item(st, err)
        if outcome is Outcome.RETRY and not reason:
            reason = f"HTTP {st}: {_reason({'error': err})}"
        if outcome is Outcome.FATAL:
            reason = f"HTTP {st}: {_reason({'error': err})}"
        outcomes.append(outcome)
        errors.append(err)
        statuses.append(st)
    return Verdict(outcomes, errors, statuses, reason)
