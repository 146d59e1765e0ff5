"""The README's configuration examples are what users copy first: each ```yaml block must be a
configuration shipper accepts, with every key it shows in the place it shows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shipper.config import parse_config

_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[int, str]]:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


BLOCKS = _blocks()


def _empty_mmdb(path: Path) -> None:
    mmdb_writer = pytest.importorskip("mmdb_writer", reason="mmdb-writer (test extra) is absent")
    mmdb_writer.MMDBWriter(ip_version=6, database_type="GeoLite2-City").to_db_file(str(path))


def test_the_readme_has_configuration_examples() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("line, block", BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_each_readme_configuration_example_is_accepted(
    line: int, block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the files an example names must exist: made empty under a working folder (the Windows
    # paths, D:/..., are relative ones elsewhere)
    monkeypatch.chdir(tmp_path)
    for name in re.findall(r"(?:_database|_file): (\S+)", block):
        path = Path(name)
        if path.is_absolute():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".mmdb"):
            _empty_mmdb(path)
        else:
            path.touch()
    env = {"ES_API_KEY": "aWQ6a2V5", "FLUENTD_SHARED_KEY": "k"}
    cfg = parse_config(yaml.safe_load(block), env=env)
    data = yaml.safe_load(block)
    for key in ("inputs", "outputs"):
        shown = [item["type"] for item in data.get(key) or []]
        assert [item.type for item in getattr(cfg, key)][: len(shown)] == shown, line


# --- the Detections section ---------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def _section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def _saved_search_query(search_id: str) -> str:
    import json

    for line in (REPO / "mappings" / "kibana" / "forensics.ndjson").read_text().splitlines():
        obj = json.loads(line)
        if obj["id"] == search_id:
            meta = obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
            return json.loads(meta)["query"]["query"]
    raise AssertionError(f"no saved search {search_id} in forensics.ndjson")


def test_readme_forensic_query_strings_are_the_saved_searches() -> None:
    """The two query strings the README gives other SIEMs are the saved searches' queries
    plus the filter a user picks in the dashboard: they cannot drift apart."""
    section = _section("Detections and forensic searches")
    after = section[section.index("**Forensic searches.**") :]
    block = re.search(r"^```\n(.*?)^```", after, re.S | re.M)
    assert block, "no query block after **Forensic searches.**"
    document, user = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert document == (
        _saved_search_query("shipper-rms-forensics-document")
        + ' AND (azure_rms.content_id:"<content id>" OR file.name:"<file name>")'
    )
    assert user == (
        _saved_search_query("shipper-rms-forensics-user") + ' AND user.id:"<user address>"'
    )


def test_readme_names_every_sigma_logsource() -> None:
    settings = yaml.safe_load((REPO / "mappings" / "detections" / "elastic.yml").read_text())
    shipped = set(settings["logsources"])
    section = _section("Detections and forensic searches")
    m = re.search(r"(\w+)\s+logsources \((.*?)\);", section, re.S)
    assert m, "the Sigma bullet should list the logsources"
    named = {f"{p}/{s}" for p, s in re.findall(r"product:\s+(\w+),\s+service:\s+(\w+)", m.group(2))}
    assert named == shipped
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
    assert words[m.group(1)] == len(shipped)
