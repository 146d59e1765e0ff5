"""Realistic events for end-to-end tests: RMS usage lines through the real normaliser when it
exists (``examples/rms/rmslog-*.log``), plus hand-built Windows / connector events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shipper.outputs.base import EventBatch

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "rms"


def _hand_rms() -> list[dict[str, Any]]:
    users = ["alice.lee@contoso.com", "jonas.ward@contoso.com", "mateo.parker@outlook.com"]
    ips = ["10.1.2.3", "10.200.0.9", "51.60.139.130", "2a02:8108:2a1c:e348::6390:1371"]
    out = []
    for i in range(40):
        user = users[i % 3]
        failed = i % 10 == 0
        out.append(
            {
                "@timestamp": f"2024-03-0{4 + i % 2}T{i % 24:02d}:08:28.000Z",
                "event": {
                    "kind": "event",
                    "module": "azure_rms",
                    "dataset": "azure_rms.usage",
                    "action": "AcquireLicense" if i % 2 else "GetConfiguration",
                    "id": f"row-{i:04d}",
                    "outcome": "failure" if failed else "success",
                    "category": ["file"],
                    "type": ["access"],
                },
                **({"error": {"message": "AccessDenied"}} if failed else {}),
                "user": {"id": user, "email": user, "name": user.split("@")[0]},
                "source": {"ip": ips[i % 4]},
                "related": {"user": [user], "ip": [ips[i % 4]]},
                "user_agent": {"name": "WINWORD.EXE", "version": "16.0", "os": {"name": "Windows"}},
                "file": {"name": "Salary Review_v2.docx", "extension": "docx"},
                "ecs": {"version": "9.4.0"},
                "log": {"file": {"path": "rmslog-2024-03-04.log"}},
                "azure_rms": {
                    "row_id": f"row-{i:04d}",
                    "admin_action": i % 7 == 0,
                    "content_id": "6e5dfd1e-54d7-4c7b-b3a4-5cd4f34805e0",
                    "date_published": "2022-09-25T11:01:01",
                    "client": {"sdk_name": "MSIPC", "sdk_version": "1.0.4008.0"},
                    "principal": {"type": "user"},
                },
            }
        )
    return out


def rms_events() -> tuple[list[dict[str, Any]], str]:
    """(events, where they came from)."""
    try:
        from shipper.normalise.rms import RmsNormaliser
    except ImportError:
        return _hand_rms(), "hand-built"
    normaliser = RmsNormaliser()
    events: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.glob("rmslog-*.log")):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            continue
        bound = None
        offset = 0
        for line in text.splitlines(keepends=True):
            if line.startswith("#Fields:"):
                bound = normaliser.bind(line[len("#Fields:") :].strip().split("\t"))
            elif bound is not None and line.strip() and not line.startswith("#"):
                try:
                    events.append(bound(line.rstrip("\r\n").split("\t"), path.name, offset, line))
                except Exception:  # rejected records are the normaliser's tests' business
                    pass
            offset += len(line.encode())
    # the examples overlap on purpose (re-downloads); the pipeline's dedupe drops repeats
    unique = list({e["event"]["id"]: e for e in reversed(events)}.values())[::-1]
    return (unique, "RmsNormaliser") if len(unique) >= 10 else (_hand_rms(), "hand-built")


def windows_events() -> list[dict[str, Any]]:
    out = []
    for i in range(6):
        code = ["1000", "2001", "3001"][i % 3]
        out.append(
            {
                "@timestamp": f"2024-03-04T1{i}:00:00.000Z",
                "event": {
                    "kind": "event",
                    "module": "rms_connector",
                    "dataset": "rms_connector.events",
                    "code": code,
                    "provider": "Microsoft RMS connector",
                    "id": f"win-{i}",
                },
                "log": {"level": "error" if code != "1000" else "information"},
                "host": {"name": "RMSCONN01.contoso.com"},
                "message": "Unauthorized access attempt to Microsoft RMS connector.",
                "winlog": {
                    "event_id": code,
                    "provider_name": "Microsoft RMS connector",
                    "channel": "Application",
                    "record_id": str(1000 + i),
                    "computer_name": "RMSCONN01.contoso.com",
                    "event_data": {"param1": "CONTOSO\\svc-exch", "Count": 3},
                    "process": {"pid": 4120},
                    "keywords": ["Classic"],
                },
                "rms_connector": {"known": True, "title": "Unauthorized access attempt"},
                "ecs": {"version": "9.4.0"},
            }
        )
    return out


def to_batch(events: list[dict[str, Any]]) -> EventBatch:
    b = EventBatch()
    for e in events:
        b.ids.append(e["event"]["id"])
        b.datasets.append(e["event"]["dataset"])
        b.docs.append(orjson.dumps(e))
        b.timestamps.append(e["@timestamp"])
    return b
