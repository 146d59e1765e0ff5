""".evtx files, including damaged ones: every readable record ships, the rest is counted."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shipper.sources.evtx_file import EVTX

EVTX_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "thirdparty" / "evtx"

# ok / quarantined, from the peer's tests (SOURCES.md) where it gives them
EXPECTED = {
    "Application_no_crc32.evtx": (17, 0),
    "post-Security.evtx": (126, 0),
    "Microsoft-Windows-HelloForBusiness%4Operational.evtx": (6, 0),
    "Microsoft-Windows-LanguagePackSetup%4Operational.evtx": (17, 0),
    "sample_with_a_bad_chunk_magic.evtx": (270, 2),
    "sample-with-zero-data-size-event.evtx": (335, 1),
}


def ship(path: Path, start: int = 0, final: bool = True):
    docs, quarantined, chunks = [], [], []
    with open(path, "rb") as f:
        for chunk in EVTX.chunks(f, str(path), start, "", final, {}):
            chunks.append(chunk)
            out = EVTX.decode(chunk)
            docs += [orjson.loads(d) for d in out.docs]
            quarantined += out.quarantined
    return docs, quarantined, chunks


def samples() -> list[Path]:
    if not EVTX_DIR.is_dir():
        return []
    return sorted(EVTX_DIR.glob("*.evtx"))


@pytest.mark.skipif(not EVTX_DIR.is_dir(), reason="../shared/thirdparty not available")
@pytest.mark.parametrize("path", samples(), ids=lambda p: p.name)
def test_every_sample_ships_without_a_crash(path: Path) -> None:
    assert EVTX.sniff(path.read_bytes()[:8], str(path))
    docs, quarantined, _ = ship(path)
    assert docs
    if path.name in EXPECTED:
        assert (len(docs), len(quarantined)) == EXPECTED[path.name]
    for d in docs:
        assert d["winlog"]["record_id"] >= 0 and d["@timestamp"].endswith("Z")
        assert len(d["event"]["id"]) == 32


@pytest.mark.skipif(not EVTX_DIR.is_dir(), reason="../shared/thirdparty not available")
def test_quarantine_says_which_chunk_was_bad() -> None:
    _, quarantined, _ = ship(EVTX_DIR / "sample_with_a_bad_chunk_magic.evtx")
    reasons = [q.reason for q in quarantined]
    assert any("chunk number 6" in r for r in reasons), reasons
    assert all("ElfChnk" in r for r in reasons)


@pytest.mark.skipif(not EVTX_DIR.is_dir(), reason="../shared/thirdparty not available")
def test_zero_size_record_is_reported_with_the_parser_reason() -> None:
    _, quarantined, _ = ship(EVTX_DIR / "sample-with-zero-data-size-event.evtx")
    assert "Invalid EVTX record data size" in quarantined[0].reason


@pytest.mark.skipif(not EVTX_DIR.is_dir(), reason="../shared/thirdparty not available")
def test_resuming_at_a_chunk_end_neither_skips_nor_repeats() -> None:
    path = EVTX_DIR / "system.evtx"
    whole, _, chunks = ship(path)
    assert len(chunks) > 1
    resumed, _, _ = ship(path, start=chunks[0].end)
    first, _, _ = ship(path)
    ids = [d["winlog"]["record_id"] for d in whole]
    n_first = len(ids) - len(resumed)
    assert [d["winlog"]["record_id"] for d in resumed] == ids[n_first:]
    assert len(first) == len(whole)


@pytest.mark.skipif(not EVTX_DIR.is_dir(), reason="../shared/thirdparty not available")
def test_full_precision_timestamps_and_control_characters() -> None:
    docs, quarantined, _ = ship(EVTX_DIR / "Application_no_crc32.evtx")
    assert docs[0]["@timestamp"] == "2021-03-31T23:51:45.0187674Z"
    dns, q, _ = ship(EVTX_DIR / "dns_log_malformed.evtx")
    assert len(dns) == 5 and not q  # raw control characters in data do not lose the record


@pytest.mark.skipif(not EVTX_DIR.is_dir(), reason="../shared/thirdparty not available")
@pytest.mark.parametrize("path", samples(), ids=lambda p: p.name)
def test_json_reading_gives_what_the_xml_gives(path: Path) -> None:
    """Records are read from the parser's JSON; each must equal its XML reading, or be
    handed to the XML (None)."""
    import io

    from evtx import PyEvtxParser

    from shipper.sources.eventxml import parse_event_xml
    from shipper.sources.evtx_file import record_from_json

    data = path.read_bytes()
    xml = PyEvtxParser(io.BytesIO(data), number_of_threads=1, indent=False).records()
    js = PyEvtxParser(io.BytesIO(data), number_of_threads=1, indent=False).records_json()
    compared = 0
    while True:
        try:
            x = next(xml)
        except StopIteration:
            assert next(js, None) is None
            break
        except (RuntimeError, OSError, ValueError):
            with pytest.raises((RuntimeError, OSError, ValueError)):
                next(js)
            continue
        j = next(js)
        assert j["event_record_id"] == x["event_record_id"]
        try:
            want = parse_event_xml(x["data"])
        except Exception:  # noqa: BLE001 - the XML path quarantines it; JSON must not decide
            try:
                assert record_from_json(j["data"]) is None
            except Exception:  # noqa: BLE001 - raising sends it to the XML path too
                pass
            continue
        got = record_from_json(j["data"])
        if got is not None:
            assert got == want, x["data"]
            compared += 1
    assert compared > 0


@pytest.mark.skipif(not EVTX_DIR.is_dir(), reason="../shared/thirdparty not available")
def test_keep_original_ships_the_xml_and_the_same_events() -> None:
    path = EVTX_DIR / "system.evtx"
    plain, _, _ = ship(path)
    with open(path, "rb") as f:
        kept = [
            orjson.loads(d)
            for c in EVTX.chunks(f, str(path), 0, "", True, {"keep_original": True})
            for d in EVTX.decode(c).docs
        ]
    assert len(kept) == len(plain)
    for a, b in zip(plain, kept, strict=True):
        assert b["event"].pop("original").startswith("<?xml")
        assert a == b
