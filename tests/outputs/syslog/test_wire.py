"""Messages encoded and framed by the decoders (``encode.WireEncoder``), as the pipeline runs
TCP and TLS: duplicates are dropped from the framed runs too, and an encoder that fails costs
its chunk, refused with the file and bytes named, never the run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.decoding import Work, pack_encoders
from shipper.outputs.base import Wire
from shipper.outputs.syslog import build
from shipper.outputs.syslog.encode import frame_lf, frame_octets
from shipper.outputs.syslog.settings import Settings
from shipper.sources import FORMATS, Chunk, Decoded
from shipper.state import Store
from shipper.state.lookup import SnapshotLookup

from .conftest import batch_of, windows_event
from .helpers import as_decoded
from .receivers import REPO


class Broken:
    """A wire encoder with a bug."""

    def encode(self, events: Decoded) -> Wire:
        raise ValueError("no such field")


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"framing": "lf"},
        {"utf8_bom": True, "msgid": "action", "facility": "auth", "app_name": "rms"},
        {"framing": "lf", "utf8_bom": True, "hostname": "relay-1"},
        {"transport": "relp"},
        {"transport": "relp", "format": "cef"},
        {"format": "leef"},
    ],
)
def test_framed_by_the_decoders_as_the_output_frames_them(
    settings: dict[str, Any],
    rms_events: list[dict[str, Any]],
    hostile_events: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    """The decoders' bytes are exactly those the output writes when it encodes itself
    (RELP: the messages its frames carry)."""
    events = rms_events[:40] + [windows_event(n) for n in range(3)] + hostile_events
    events.append({**windows_event(9), "log": {"level": ["not", "a", "string"]}})
    out = build(Settings(hosts=["127.0.0.1:1"], **settings), tmp_path)
    assert out.wire_encoder is not None
    b = batch_of(events)
    heads, bodies = out.encoder.encode(b)
    if settings.get("transport") == "relp":  # bare messages: the connection frames them
        bufs, offsets = frame_bare(heads, bodies)
    else:
        frame = frame_lf if settings.get("framing") == "lf" else frame_octets
        bufs, offsets = frame(heads, bodies)
    wire = out.wire_encoder.encode(as_decoded(b))
    assert wire.read() == b"".join(bufs)
    assert list(wire.ends) == offsets


def frame_bare(heads: list[bytes], bodies: list[bytes]) -> tuple[list[bytes], list[int]]:
    bufs, offsets, total = [], [], 0
    for h, b in zip(heads, bodies, strict=True):
        bufs += (h, b)
        total += len(h) + len(b)
        offsets.append(total)
    return bufs, offsets


def test_a_chunk_whose_encoding_fails_is_refused_naming_file_and_bytes(tmp_path: Path) -> None:
    Store(tmp_path).commit([], {}, {})
    lookup = SnapshotLookup(Store(tmp_path, readonly=True))
    chunk = Chunk(
        "w3c_rms",
        "/logs/rms.log",
        100,
        900,
        "",
        "",
        options={"wire": pack_encoders({"syslog": Broken()})},
    )
    decoded = Decoded(
        docs=[b'{"a":1}', b'{"a":2}'],
        ids=["x", "y"],
        datasets=["d", "d"],
        timestamps=["2024-03-04T09:00:00.000Z"] * 2,
    )
    work = Work(chunk, decoded, lookup, 1)
    assert work.refused is not None
    assert "/logs/rms.log" in work.refused and "bytes 100-900" in work.refused
    assert "syslog" in work.refused and "no such field" in work.refused
    assert work.count == 0 and not work.wires


@pytest.mark.integration
def test_duplicates_are_dropped_from_framed_messages_too(rsyslog: Any, tmp_path: Path) -> None:
    r = rsyslog("imptcp", parse="none")
    logs = tmp_path / "logs"
    logs.mkdir()
    src = REPO / "examples/rms/rmslog-2024-03-04.log"
    shutil.copy(src, logs / "a.log")
    shutil.copy(src, logs / "b.log")  # the same records again: each must arrive once
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        f"inputs: [{{type: rms_usage, paths: ['{logs}/*']}}]\n"
        f"outputs: [{{type: syslog, hosts: ['127.0.0.1:{r.port}'], transport: tcp,"
        " retry_rounds: 0, backoff_initial: 0.05, timeout: 2}]\n"
    )
    run = subprocess.run(
        [sys.executable, "-m", "shipper.cli", "run", "--once", "--no-progress", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr
    assert " 0 duplicates skipped" not in run.stderr, run.stderr
    shipped = int(run.stderr.split("shipped ")[1].split(" events")[0].replace(",", ""))
    assert shipped > 20
    got = [orjson.loads(line["msg"])["event"]["id"] for line in r.wait_for(shipped)]
    assert len(r.wait_for(shipped + 1, timeout=1)) == shipped
    assert max(Counter(got).values()) == 1


@pytest.mark.parametrize(
    "settings",
    [{}, {"framing": "lf", "msgid": "action", "hostname": "relay-1"}, {"transport": "relp"}],
)
def test_header_fields_from_the_normaliser_make_the_messages_the_json_makes(
    settings: dict[str, Any], tmp_path: Path
) -> None:
    """The RMS normaliser hands the header fields over (``Decoded.header_fields``) so that the
    encoder need not read them from each document: the messages are the same bytes."""
    w3c = FORMATS["w3c_rms"]
    out = build(Settings(hosts=["127.0.0.1:1"], **settings), tmp_path)
    assert out.wire_encoder is not None
    encoded, outcomes = 0, set()
    for src in sorted((REPO / "examples/rms").iterdir()):
        with src.open("rb") as f:
            for chunk in w3c.chunks(f, str(src), 0, "", True, {}):
                given = w3c.decode(chunk)
                if not given.docs:
                    continue
                assert len(given.header_fields) == len(given.docs)
                outcomes |= {h[0] for h in given.header_fields}
                read = Decoded(given.ids, given.datasets, given.docs, given.timestamps)
                wire = out.wire_encoder.encode(given)
                assert wire.read() == out.wire_encoder.encode(read).read()
                encoded += len(wire)
    assert encoded > 300 and outcomes >= {"success", "failure"}  # PRI varies
