"""What the receivers wrote, compared with what was sent: the expectations, written out.

The expectations are derived from RFC 5424 and from the documented tables in
``mappings/syslog/syslog.yaml``, independently of the encoder's code.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import orjson
import yaml

from shipper.outputs.base import EventBatch
from shipper.outputs.syslog import build
from shipper.outputs.syslog.settings import Settings
from shipper.sources import Decoded

from .conftest import batch_of
from .receivers import REPO

TABLES = yaml.safe_load((REPO / "mappings/syslog/syslog.yaml").read_text())


def ship(events: list[dict[str, Any]], data_dir: Path, **settings: Any) -> Any:
    """Build the output as the pipeline does, send one batch, close; the Ack. Where the
    output encodes in the decoders (TCP, TLS), the batch comes as the pipeline hands it:
    messages framed by its wire encoder, a pickled copy as a decoder process has it, over
    chunks of a few events."""
    out = build(Settings(**settings), data_dir)
    out.restore(None)
    try:
        return out.send(as_pipeline_sends(out, events))
    finally:
        out.close()


def as_pipeline_sends(out: Any, events: list[dict[str, Any]], chunk: int = 7) -> EventBatch:
    """The batch of ``events`` as the pipeline builds it for ``out``."""
    if getattr(out, "wire_encoder", None) is None:
        return batch_of(events)
    encoder = pickle.loads(pickle.dumps(out.wire_encoder))
    batch = EventBatch()
    for k in range(0, len(events), chunk):
        part = batch_of(events[k : k + chunk])
        wire = encoder.encode(as_decoded(part))
        batch.add_wire(out.name, wire)
        batch.add_count(len(part))
    return batch


def as_decoded(batch: EventBatch) -> Decoded:
    """A batch's events as a decoder has them (without header fields: read from the JSON)."""
    return Decoded(batch.ids, batch.datasets, batch.docs, batch.timestamps)


def get(event: dict[str, Any], path: str) -> Any:
    node: Any = event
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def severity(event: dict[str, Any]) -> int:
    sev = TABLES["severity_default"]
    level = get(event, "log.level")
    if isinstance(level, str):
        sev = TABLES["severity_by_level"].get(level.lower(), sev)
    if get(event, "event.outcome") == "failure":
        sev = min(sev, TABLES["severity_failure"])
    return sev


def header_text(value: str, limit: int) -> str:
    """HOSTNAME and MSGID: a safe subset of printable US-ASCII (README), bounded."""
    return re.sub(r"[^A-Za-z0-9._:@/+-]", "_", value[:limit]) or "-"


def host_text(value: str) -> str:
    """HOSTNAME: a DNS name's characters (README)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", value[:255]) or "-"


def sd_text(value: str) -> str:
    """An SD-PARAM value as a receiver unescapes it: control characters were replaced."""
    return re.sub(r"[\x00-\x1f\x7f]", "\ufffd", value)


def timestamp(ts: str) -> str:
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-].*)$", ts)
    assert m
    return f"{m[1]}.{m[2][:6]}{m[3]}" if m[2] else f"{m[1]}{m[3]}"


def by_id(lines: list[dict[str, Any]], key: Any) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        out.setdefault(key(line), []).append(line)
    return out


def check_rsyslog_json(
    lines: list[dict[str, Any]], events: list[dict[str, Any]], host: str
) -> None:
    """Every event exactly once, its JSON body parsed back to the same event by mmjsonparse,
    and its header fields right."""
    got = by_id(lines, lambda line: orjson.loads(line["msg"])["event"]["id"])
    want = {e["event"]["id"]: e for e in events}
    assert set(got) == set(want), f"missing {set(want) - set(got)}, extra {set(got) - set(want)}"
    assert len(lines) == len(events), "duplicates"
    for event_id, event in want.items():
        line = got[event_id][0]
        assert orjson.loads(line["msg"]) == event  # the body, exactly
        assert line["$!"] == cut_at_nul(event)  # mmjsonparse's fields
        assert line["timereported"] == timestamp(event["@timestamp"])
        name = get(event, "host.name")
        assert line["hostname"] == (host_text(name) if name else host)
        assert line["app-name"] == "shipper"
        assert line["msgid"] == header_text(event["event"]["dataset"], 32)
        assert int(line["pri"]) == 16 * 8 + severity(event)
        sd = parse_sd(line["structured-data"])
        assert sd == {"meta": {"event_id": sd_text(event_id), "dataset": event["event"]["dataset"]}}


def cut_at_nul(node: Any) -> Any:
    """rsyslog's JSON library (libfastjson) ends a string at an escaped NUL (\\u0000)."""
    if isinstance(node, str):
        return node.split("\x00")[0]
    if isinstance(node, dict):
        return {k: cut_at_nul(v) for k, v in node.items()}
    if isinstance(node, list):
        return [cut_at_nul(v) for v in node]
    return node


def parse_sd(sd: str) -> dict[str, dict[str, str]]:
    """RFC 5424 STRUCTURED-DATA -> {sd_id: {name: value}}, unescaping \\" \\\\ \\]; strict."""
    out: dict[str, dict[str, str]] = {}
    i = 0
    while i < len(sd):
        assert sd[i] == "[", sd
        m = re.compile(r"[^ \]=\"]+").match(sd, i + 1)
        assert m, sd
        params: dict[str, str] = {}
        out[m.group()] = params
        i = m.end()
        while sd[i] == " ":
            m = re.compile(r' ([^ \]="]+)="').match(sd, i)
            assert m, sd[i : i + 50]
            i = m.end()
            value = []
            while sd[i] != '"':
                if sd[i] == "\\" and sd[i + 1] in '"\\]':
                    i += 1
                value.append(sd[i])
                i += 1
            params[m.group(1)] = "".join(value)
            i += 1
        assert sd[i] == "]", sd
        i += 1
    return out


def flat(event: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in event.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_syslog_ng_json(
    lines: list[dict[str, Any]], events: list[dict[str, Any]], host: str
) -> None:
    """The same through syslog-ng: json-parser's fields (flattened, as text) match the event."""
    got = by_id(lines, lambda line: orjson.loads(line["MSG"])["event"]["id"])
    want = {e["event"]["id"]: e for e in events}
    assert set(got) == set(want), f"missing {set(want) - set(got)}, extra {set(got) - set(want)}"
    assert len(lines) == len(events), "duplicates"
    for event_id, event in want.items():
        line = got[event_id][0]
        assert orjson.loads(line["MSG"]) == event  # the body, exactly
        parsed = flat(line["json"])
        for key, value in flat(cut_at_nul(event)).items():
            if isinstance(value, list):
                continue  # syslog-ng 3.38 keeps JSON arrays as its own list type
            text = (
                value
                if isinstance(value, str)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            assert parsed.get(key) == text, key
        name = get(event, "host.name")
        assert line["HOST"] == (host_text(name) if name else host)
        assert line["MSGID"] == header_text(event["event"]["dataset"], 32)
        assert line["PROGRAM"] == "shipper"
        assert line["_SDATA"]["meta"]["event_id"] == sd_text(event_id)
