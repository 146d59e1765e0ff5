"""An in-memory transport that records requests and plays back scripted replies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from shipper.errors import RetryLater
from shipper.outputs.base import EventBatch
from shipper.outputs.elasticsearch.transport import Reply

#: given the ids in a request, return a reply or raise
Script = Callable[[list[str]], Reply]


def ids_of(body: bytes) -> list[str]:
    return [orjson.loads(line)["create"]["_id"] for line in body.splitlines()[::2]]


def items(*statuses: int, error: str = "") -> dict[str, Any]:
    out = []
    for st in statuses:
        item: dict[str, Any] = {"status": st}
        if st >= 300:
            kind = error or {
                409: "version_conflict_engine_exception",
                400: "mapper_parsing_exception",
            }.get(st, "es_rejected_execution_exception")
            item["error"] = {"type": kind, "reason": f"scripted {st}"}
        out.append({"create": item})
    return {"errors": any(s >= 300 for s in statuses), "items": out}


class FakeTransport:
    def __init__(self, *script: Script) -> None:
        self.script = list(script)
        self.requests: list[list[str]] = []
        self.closed = False

    def request(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> Reply:
        assert (method, path) == ("POST", "/_bulk")
        ids = ids_of(body)
        self.requests.append(ids)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return step(ids)

    def close(self) -> None:
        self.closed = True


def ok(ids: list[str]) -> Reply:
    return Reply(200, items(*[201] * len(ids)))


def down(ids: list[str]) -> Reply:
    raise RetryLater("cannot connect: connection refused")


def make_batch(n: int) -> EventBatch:
    b = EventBatch()
    for i in range(n):
        b.ids.append(f"e{i}")
        b.datasets.append("azure_rms.usage")
        b.docs.append(orjson.dumps({"@timestamp": "2024-05-01T00:00:00Z", "n": i}))
        b.timestamps.append("2024-05-01T00:00:00Z")
    return b
