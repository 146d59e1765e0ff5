"""The Sigma rules are valid Sigma; the Elastic rules are generated from them and importable.

- Sigma: every file parses with pySigma, passes its validators and converts with the
  Elasticsearch backend (``shipper.detections.compile_detections``).
- In step: regenerating ``elastic_rules.ndjson`` from the Sigma rules gives the committed file.
- Import format: every Elastic rule has what Kibana's detection rule schema requires for its
  type (``POST /api/detection_engine/rules/_import``), and nothing it does not know.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from shipper.detections import detections_dir, elastic_rules, render

pytest.importorskip("sigma", reason="pip install pysigma pysigma-backend-elasticsearch")
pytest.importorskip(
    "sigma.backends.elasticsearch", reason="pip install pysigma-backend-elasticsearch"
)
# Imported at collection, as it imports the PyPI package ``packaging``: under pytest,
# tests/packaging/ (it has an __init__.py) becomes a top-level package of that name too and
# shadows it once collected. Failing here is loud, where an import inside a test would fail
# depending on which tests ran first.
from sigma.plugins import InstalledSigmaPlugins  # noqa: E402

from shipper.detections import compile_detections, generate_elastic_rules  # noqa: E402

# Validators left out, and why: number_as_string flags event.code: '2001', which is a
# keyword (a string) in ECS on purpose; the tag validators for ATT&CK and D3FEND download
# MITRE data (no network in tests; ATT&CK tags are checked against elastic.yml below); the
# remaining tag-family validators (car, cve, stp, tlp) concern tags we do not use.
SKIPPED_VALIDATORS = {
    "number_as_string",
    "attacktag",
    "d3_fendtag",
    "cartag",
    "cvetag",
    "stptag",
    "tlptag",
    "tlpv1_tag",
    "tlpv2_tag",
}


def test_sigma_rules_pass_pysigma_validators() -> None:
    from sigma.collection import SigmaCollection
    from sigma.validation import SigmaValidator

    validators = InstalledSigmaPlugins.autodiscover().validators
    assert "identifier_uniqueness" in validators  # the plugin set is the real one
    chosen = [v for name, v in validators.items() if name not in SKIPPED_VALIDATORS]
    paths = sorted((detections_dir() / "sigma").glob("*.yml"))
    collection = SigmaCollection.load_ruleset([str(p) for p in paths])
    issues = SigmaValidator(chosen).validate_rules(collection)
    assert not issues, [(type(i).__name__, [r.title for r in i.rules]) for i in issues]


def test_every_sigma_rule_converts_to_lucene_with_its_dataset() -> None:
    detections = compile_detections()
    assert len(detections) == 14
    for d in detections:
        dataset = {
            "azure_rms/usage": "azure_rms.usage",
            "rms_connector/events": "rms_connector.events",
            "rms_connector/perf": "rms_connector.perf",
        }
        assert d.query.startswith(f"event.dataset:{dataset[d.logsource]} AND "), d.query
        assert d.falsepositives, f"{d.title}: a false-positive note is required"
        assert d.level in ("low", "medium", "high", "critical"), d.title


def test_elastic_rules_are_generated_from_the_sigma_rules() -> None:
    committed = (detections_dir() / "elastic_rules.ndjson").read_text(encoding="utf-8")
    assert render(generate_elastic_rules()) == committed, (
        "elastic_rules.ndjson is out of step with the Sigma rules: run python -m shipper.detections"
    )


def test_a_sigma_change_shows_in_the_elastic_rule() -> None:
    """The generator really reads the Sigma rules (so the in-step check can fail)."""
    detections = compile_detections()
    bulk = next(d for d in detections if d.id == "550e9174-9eda-4d1e-bbda-9cf8d7e7ac58")
    bulk.count = 40
    bulk.timespan_spec = "15m"
    rule = next(r for r in generate_elastic_rules(detections) if r["rule_id"] == bulk.id)
    assert rule["threshold"]["cardinality"] == [{"field": "azure_rms.content_id", "value": 40}]
    assert rule["from"] == "now-16m"  # the timespan plus lookback_slack (1m)


def _secs(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[duration[-1]]


def test_query_and_threshold_rules_look_back_past_their_interval_by_the_slack() -> None:
    """A late-indexed event (its time covered by a run that finished before it arrived) is
    seen by the next run only if that run looks back further than one interval: every query
    and threshold rule does, by ``lookback_slack``; a threshold looks back its correlation's
    timespan plus the slack (so the policy-overdue rule, 5m on a 5m interval, gets 6m)."""
    import yaml

    settings = yaml.safe_load((detections_dir() / "elastic.yml").read_text(encoding="utf-8"))
    slack = _secs(settings["defaults"]["lookback_slack"])
    assert slack > 0
    spans = {d.id: d.timespan for d in compile_detections()}
    checked = set()
    for r in elastic_rules():
        if r["type"] == "esql":
            continue
        look_back = _secs(r["from"].removeprefix("now-"))
        assert look_back >= _secs(r["interval"]) + slack, r["name"]
        if r["type"] == "threshold":
            assert look_back == spans[r["rule_id"]] + slack, r["name"]
        checked.add(r["type"])
    assert checked == {"query", "threshold"}


# --- Kibana's import format -------------------------------------------------------------------

COMMON_REQUIRED = {"rule_id", "name", "description", "risk_score", "severity", "type"}
COMMON_OPTIONAL = {
    "author", "license", "enabled", "interval", "from", "to", "max_signals", "false_positives",
    "references", "tags", "threat", "note", "version", "setup", "meta",
}  # fmt: skip
BY_TYPE = {
    "query": ({"query", "language", "index"}, set()),
    "threshold": ({"query", "language", "index", "threshold"}, set()),
    "esql": ({"query", "language"}, set()),
}
DATE_MATH = re.compile(r"^now-\d+[smhd]$")
DURATION = re.compile(r"^\d+[smhd]$")


def _check_threat(entry: dict[str, Any]) -> None:
    assert entry["framework"] == "MITRE ATT&CK"
    tactic = entry["tactic"]
    assert re.fullmatch(r"TA\d{4}", tactic["id"]) and tactic["name"]
    assert tactic["reference"] == f"https://attack.mitre.org/tactics/{tactic['id']}/"
    for tech in entry.get("technique", []):
        assert re.fullmatch(r"T\d{4}", tech["id"]) and tech["name"], tech
        assert tech["reference"] == f"https://attack.mitre.org/techniques/{tech['id']}/"
        for sub in tech.get("subtechnique", []):
            assert re.fullmatch(rf"{tech['id']}\.\d{{3}}", sub["id"]) and sub["name"], sub


def test_rules_have_what_kibana_import_requires() -> None:
    rules = elastic_rules()
    from shipper.outputs.elasticsearch.templates import stream_types

    patterns = {f"{kind}-{d}-*" for d, kind in stream_types().items()}
    assert len({r["rule_id"] for r in rules}) == len(rules), "rule_id must be unique"
    assert len({r["name"] for r in rules}) == len(rules), "names should tell rules apart"
    for r in rules:
        required, optional = BY_TYPE[r["type"]]
        missing = (COMMON_REQUIRED | required) - set(r)
        unknown = set(r) - COMMON_REQUIRED - COMMON_OPTIONAL - required - optional
        assert not missing and not unknown, (r["name"], missing, unknown)
        assert re.fullmatch(r"[0-9a-f-]{36}", r["rule_id"])
        assert isinstance(r["risk_score"], int) and 0 <= r["risk_score"] <= 100
        assert r["severity"] in ("low", "medium", "high", "critical")
        assert isinstance(r["version"], int) and r["version"] >= 1
        assert DURATION.match(r["interval"]) and DATE_MATH.match(r["from"]) and r["to"] == "now"
        assert isinstance(r["max_signals"], int) and r["max_signals"] >= 1
        assert r["false_positives"] and all(isinstance(x, str) and x for x in r["false_positives"])
        assert all(isinstance(t, str) for t in r["tags"])
        for entry in r["threat"]:
            _check_threat(entry)
        if r["type"] in ("query", "threshold"):
            assert r["language"] in ("kuery", "lucene") and r["query"].strip()
            assert r["index"] and set(r["index"]) <= patterns, r["index"]
        if r["type"] == "threshold":
            th = r["threshold"]
            assert set(th) <= {"field", "value", "cardinality"}
            assert isinstance(th["field"], list) and 1 <= len(th["field"]) <= 3
            assert isinstance(th["value"], int) and th["value"] >= 1
            for c in th.get("cardinality", []):
                assert set(c) == {"field", "value"} and isinstance(c["value"], int)
                assert c["value"] >= 0
        if r["type"] == "esql":
            assert r["language"] == "esql"
            assert r["query"].startswith("FROM ") and "index" not in r
            assert re.search(r"FROM (\S+)", r["query"])[1] in patterns  # type: ignore[index]


def test_threat_entries_cover_every_attack_tag() -> None:
    """Each Sigma attack.* tag shows in the Elastic rule (names from elastic.yml)."""
    by_id = {r["rule_id"]: r for r in elastic_rules()}
    for d in compile_detections():
        tags = [t.removeprefix("attack.") for t in d.tags if t.startswith("attack.")]
        threat = by_id[d.id]["threat"]
        ids = {e["tactic"]["name"].lower().replace(" ", "_") for e in threat}
        for e in threat:
            for tech in e["technique"]:
                ids.add(tech["id"].lower())
                ids |= {s["id"].lower() for s in tech.get("subtechnique", [])}
        assert set(tags) <= ids, (d.title, tags, ids)


def test_threshold_fields_are_aggregatable_in_the_templates() -> None:
    from tests.outputs.elasticsearch.test_setup import AGGREGATABLE, explicit_fields

    fields = explicit_fields()
    # written by the normaliser's GeoIP enrichment; its mapping comes with it
    enrichment = {"source.geo.country_iso_code"}
    for r in elastic_rules():
        if r["type"] != "threshold":
            continue
        th = r["threshold"]
        for name in th["field"] + [c["field"] for c in th.get("cardinality", [])]:
            if name in enrichment and name not in fields:
                continue
            assert fields.get(name) in AGGREGATABLE, (r["name"], name, fields.get(name))


def test_correlations_convert_with_a_correlation_capable_backend() -> None:
    """The README's advice: the ES|QL backend turns every rule, correlations included, into
    a query; the absence rule shows why Elastic gets a hand-written one (a count below 1 per
    host and bucket can never be true: a silent host has no bucket)."""
    from sigma.backends.elasticsearch import ESQLBackend
    from sigma.collection import SigmaCollection
    from sigma.processing.pipeline import ProcessingPipeline

    pipeline = ProcessingPipeline.from_yaml((detections_dir() / "pipeline.yml").read_text())
    paths = sorted((detections_dir() / "sigma").glob("*.yml"))
    queries = ESQLBackend(pipeline).convert(SigmaCollection.load_ruleset([str(p) for p in paths]))
    assert len(queries) == len(elastic_rules())
    assert sum("| stats " in q for q in queries) == 8
    absence = next(q for q in queries if 'event.code=="1004"' in q)
    assert "where event_count < 1" in absence


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("title: x\nlogsource: {product: azure_rms, service: usage}\n", "broken.yml: "),
        ("title: [unclosed\n", "broken.yml: "),
        (
            "title: base\nid: 6e1c8f0e-0000-4000-8000-000000000001\nname: base\n"
            "logsource: {product: azure_rms, service: usage}\n"
            "detection: {sel: {event.action: GetAllDocs}, condition: sel}\n---\n"
            "title: pair\nid: 6e1c8f0e-0000-4000-8000-000000000002\n"
            "correlation: {type: temporal, rules: [base], group-by: [user.id], timespan: 5m}\n",
            "broken.yml: pair: temporal correlations not supported",
        ),
    ],
    ids=["no detection", "not YAML", "temporal correlation"],
)
def test_a_broken_sigma_rule_is_a_clear_error_naming_its_file(
    tmp_path: Any, text: str, message: str
) -> None:
    (tmp_path / "broken.yml").write_text(text)
    with pytest.raises(ValueError) as e:
        compile_detections(tmp_path)
    assert str(e.value).startswith(message), str(e.value)
