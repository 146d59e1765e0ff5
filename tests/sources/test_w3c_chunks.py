"""Cutting RMS usage files into chunks: record boundaries, encodings, headers, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipper.sources import FileRefused
from shipper.sources.w3c import W3C_RMS, _lines


def chunks(path: Path, start: int = 0, state: str = "", final: bool = True):
    with open(path, "rb") as f:
        return list(W3C_RMS.chunks(f, str(path), start, state, final, {}))


def record_lines(path: Path, chunk_list) -> list[tuple[str, int]]:
    """(text, byte offset) of every line the chunks hold, as decode sees them."""
    out = []
    for c in chunk_list:
        enc = json.loads(c.state_in)["enc"]
        offset = c.start
        for text, _raw, size in _lines(c, enc):
            out.append((text.rstrip("\r"), offset))
            offset += size
    return out


@pytest.mark.parametrize(
    "encoding,bom,newline",
    [
        ("utf-8", b"", "\n"),
        ("utf-8", b"\xef\xbb\xbf", "\r\n"),
        ("utf-16-le", b"\xff\xfe", "\r\n"),
        ("utf-16-be", b"\xfe\xff", "\n"),
    ],
)
def test_offsets_point_at_each_line_in_every_encoding(tmp_path, write_rms, encoding, bom, newline):
    path = tmp_path / "000000001"
    write_rms(path, range(5), encoding=encoding, newline=newline)
    data = path.read_bytes()
    path.write_bytes(bom + data)
    lines = record_lines(path, chunks(path))
    assert len(lines) == 8  # three header lines, five records
    raw = path.read_bytes()
    for text, offset in lines:
        assert raw[offset:].decode(encoding, errors="ignore").startswith(text)


def test_partial_last_line_waits_in_follow_mode_and_ships_at_eof_in_once_mode(tmp_path, write_rms):
    path = write_rms(tmp_path / "f.log", range(3))
    path.write_bytes(path.read_bytes() + b"2024-03-04\t10:00:00\tabc")  # no line break yet
    follow = chunks(path, final=False)
    once = chunks(path, final=True)
    assert follow[-1].end == path.stat().st_size - len(b"2024-03-04\t10:00:00\tabc")
    assert once[-1].end == path.stat().st_size


def test_resume_from_committed_position_carries_the_header_and_line_number(tmp_path, write_rms):
    path = write_rms(tmp_path / "f.log", range(3))
    first = chunks(path, final=False)
    end, state = first[-1].end, first[-1].state_out
    with open(path, "ab") as f:
        f.write(b"2024-03-04\t10:00:00\tlate\n")
    more = chunks(path, start=end, state=state, final=False)
    assert len(more) == 1 and more[0].start == end
    assert json.loads(more[0].state_in)["fields"][2] == "row-id"
    assert more[0].first_line == 7


def test_header_block_repeated_mid_file_updates_the_state(tmp_path):
    fields15 = "date time row-id request-type user-id result correlation-id content-id".split()
    text = (
        "#Software: RMS\n#Version: 1.1\n#Fields: " + "\t".join(fields15[:3]) + "\n"
        "2024-03-04\t10:00:00\tid1\n"
        "#Software: RMS\n#Version: 1.1\n#Fields: " + "\t".join(fields15) + "\n"
        "2024-03-04\t10:00:01\tid2\tCertify\t''\t'Success'\tc\t\n"
    )
    path = tmp_path / "000000007"
    path.write_text(text)
    out = chunks(path)
    assert json.loads(out[-1].state_out)["fields"] == fields15


def test_iis_log_is_refused_with_what_was_found(tmp_path):
    path = tmp_path / "u_ex240304.log"
    path.write_text(
        "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
        "#Fields: date time s-ip\n2024-03-04 10:00:00 10.0.0.1\n"
    )
    with pytest.raises(FileRefused) as e:
        chunks(path)
    assert "u_ex240304.log" in str(e.value)
    assert "Microsoft Internet Information Services 10.0" in str(e.value)


def test_wrong_version_is_refused(tmp_path):
    path = tmp_path / "f.log"
    path.write_text("#Software: RMS\n#Version: 2.0\n#Fields: date time\n2024-03-04\t10:00:00\n")
    with pytest.raises(FileRefused, match="Version: 2.0"):
        chunks(path)


def test_real_iis_logs_from_filebeat_are_refused(shared):
    folder = shared / "thirdparty" / "w3c" / "beats-filebeat-iis"
    logs = sorted(folder.rglob("*.log"))
    assert logs
    for log in logs:
        with pytest.raises(FileRefused, match="not an RMS usage log"):
            chunks(log)


def test_header_still_being_written_is_not_refused_in_follow_mode(tmp_path):
    path = tmp_path / "f.log"
    path.write_text("#Software: RMS\n")
    assert len(chunks(path, final=False)) == 1  # waits for the rest of the header


@pytest.mark.parametrize("encoding,bom", [("utf-8", b""), ("utf-16-le", b"\xff\xfe")])
def test_a_position_saved_by_the_previous_release_resumes_mid_file(
    tmp_path, write_rms, encoding, bom
):
    """Before the W3C reader moved onto the shared line loop its state said ``encoding``;
    a checkpoint written then must resume as it would have, not as UTF-8 from scratch."""
    path = tmp_path / "000000001"
    write_rms(path, range(5), encoding=encoding, newline="\r\n")
    path.write_bytes(bom + path.read_bytes())
    whole = record_lines(path, chunks(path))
    text, offset = whole[4]  # header (3 lines), then the first record: resume at the second
    fields = json.loads(chunks(path)[0].state_out)["fields"]
    old = json.dumps({"encoding": encoding, "software": "RMS", "version": "1.1",
                      "fields": fields, "line": 5})  # fmt: skip
    resumed = chunks(path, offset, old)
    assert record_lines(path, resumed) == whole[4:]
    decoded = W3C_RMS.decode(resumed[0])
    assert len(decoded.docs) == 4 and not decoded.quarantined
    assert resumed[0].first_line == 5
