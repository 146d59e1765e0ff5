"""The detections in ``mappings/detections/``: Sigma rules as the source, Elastic rules from them.

The Sigma rules (``mappings/detections/sigma/*.yml``) are what every SIEM team can read and
convert; the Elastic Security rules (``elastic_rules.ndjson``, what ``shipper setup`` imports
into Kibana's detection engine) are generated from them by ``python -m shipper.detections``,
with what Sigma has no words for (risk scores, index patterns, ATT&CK names, the ES|QL
templates of the rules a threshold cannot express) taken from ``elastic.yml``. A test
regenerates the file and fails when the committed one differs, so the two forms cannot drift
apart.

Conversion uses pySigma and its Elasticsearch backends (the Lucene query of each rule and its
ES|QL condition, with the logsource turned into an ``event.dataset`` condition by
``pipeline.yml``). Those are test and authoring dependencies, imported only by
:func:`compile_detections`; loading the rules for ``shipper setup`` (:func:`elastic_rules`)
needs only the standard library and PyYAML.

Written by hand here, and why: the backend's own ``siem_rule_ndjson`` output makes only
``query`` rules, with its own name prefix, licence and risk scores, and its Lucene backend does
not convert correlations. So the rule documents are built here, and a Sigma correlation maps
onto an Elastic threshold rule as ``event_count >= N`` grouped by fields = a threshold of N on
those fields; ``value_count >= N`` of a field = a threshold of 1 with a cardinality condition
of N on it; the look-back is the correlation's timespan plus ``lookback_slack`` (as a query
rule's is one interval plus it), so that an event indexed late is still counted.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipper.mappings import mappings_dir

__all__ = [
    "Detection",
    "compile_detections",
    "elastic_rules",
    "generate_elastic_rules",
    "rules_file",
]


def detections_dir() -> Path:
    return mappings_dir() / "detections"


def rules_file() -> Path:
    return detections_dir() / "elastic_rules.ndjson"


def elastic_rules() -> list[dict[str, Any]]:
    """The Elastic detection rules as shipped (one dict per NDJSON line)."""
    text = rules_file().read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@dataclass
class Detection:
    """One alerting rule, as the tests and the Elastic generator both need it.

    ``kind`` is ``query`` (every matching event alerts), ``event_count`` or ``value_count``
    (a Sigma correlation: ``count`` events, or ``count`` distinct ``value_field`` values,
    per ``group_by`` within ``timespan`` seconds) or ``absence`` (fewer than ``count`` events
    per ``group_by`` within ``timespan``).
    """

    id: str
    title: str
    description: str
    level: str
    logsource: str  # "product/service"
    kind: str
    query: str  # Lucene, the (base) rule's selection including the dataset condition
    esql_where: str  # the same selection as an ES|QL condition
    tags: list[str]
    falsepositives: list[str]
    references: list[str]
    source: str  # file name under sigma/
    group_by: list[str] = field(default_factory=list)
    timespan: int = 0
    timespan_spec: str = ""
    count: int = 0
    value_field: str | None = None


def _load_settings() -> dict[str, Any]:
    with open(detections_dir() / "elastic.yml", encoding="utf-8") as f:
        return yaml.safe_load(f)


def compile_detections(sigma_dir: Path | None = None) -> list[Detection]:
    """Parse, validate and convert every Sigma rule (``sigma/*.yml``, or those in
    ``sigma_dir``); raises ValueError naming the file on the first invalid one."""
    from sigma.backends.elasticsearch import ESQLBackend, LuceneBackend
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationConditionOperator as Op
    from sigma.correlations import SigmaCorrelationRule
    from sigma.processing.pipeline import ProcessingPipeline
    from sigma.rule import SigmaRule

    pipeline = ProcessingPipeline.from_yaml(
        (detections_dir() / "pipeline.yml").read_text(encoding="utf-8")
    )

    def convert(rule: SigmaRule, backend: Any) -> str:
        # Converted from a fresh copy: inside its collection a correlation's base rule is
        # marked as not to be output, and the backend returns nothing for it.
        fresh = SigmaRule.from_dict(rule.to_dict())
        queries = backend(pipeline).convert(SigmaCollection([fresh]))
        if len(queries) != 1:
            raise ValueError(f"{rule.title}: expected one query, got {queries!r}")
        return str(queries[0])

    def esql_where(rule: SigmaRule) -> str:
        query = convert(rule, ESQLBackend)
        m = re.fullmatch(r"from \S+ metadata [^|]*\| where (.+)", query, re.DOTALL)
        if not m:
            raise ValueError(f"{rule.title}: unexpected ES|QL conversion {query!r}")
        return m.group(1)

    def selections(rule: SigmaRule) -> dict[str, str]:
        return {"query": convert(rule, LuceneBackend), "esql_where": esql_where(rule)}

    out: list[Detection] = []
    for path in sorted((sigma_dir or detections_dir() / "sigma").glob("*.yml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
            collection = SigmaCollection.from_dicts(docs, collect_errors=True)
        except (yaml.YAMLError, ValueError) as e:
            raise ValueError(f"{path.name}: {e}") from None
        errors = [e for r in collection for e in r.errors]
        if errors:
            raise ValueError(f"{path.name}: {errors[0]}")
        bases = {r.name: r for r in collection if isinstance(r, SigmaRule) and r.name is not None}
        used = {
            ref.reference
            for r in collection
            if isinstance(r, SigmaCorrelationRule)
            for ref in r.rules
        }
        for rule in collection:
            common = {
                "id": str(rule.id),
                "title": rule.title,
                "description": " ".join((rule.description or "").split()),
                "level": rule.level.name.lower() if rule.level else "medium",
                "tags": [f"{t.namespace}.{t.name}" for t in rule.tags],
                "falsepositives": list(rule.falsepositives or []),
                "references": list(rule.references or []),
                "source": path.name,
            }
            if isinstance(rule, SigmaCorrelationRule):
                if len(rule.rules) != 1:
                    raise ValueError(f"{path.name}: {rule.title}: one base rule expected")
                name = rule.rules[0].reference
                if name not in bases:
                    raise ValueError(
                        f"{path.name}: {rule.title}: base rule {name!r} not in this file"
                    )
                base = bases[name]
                cond = rule.condition
                kind = rule.type.name.lower()
                if kind not in ("event_count", "value_count"):
                    raise ValueError(
                        f"{path.name}: {rule.title}: {kind} correlations not supported"
                    )
                if cond.op in (Op.LT, Op.LTE):
                    kind = "absence"
                    count = cond.count if cond.op == Op.LT else cond.count + 1
                elif cond.op == Op.GTE:
                    count = cond.count
                elif cond.op == Op.GT:
                    count = cond.count + 1
                else:
                    raise ValueError(f"{path.name}: {rule.title}: unsupported {cond.op}")
                ls = base.logsource
                out.append(
                    Detection(
                        **common,
                        logsource=f"{ls.product}/{ls.service}",
                        kind=kind,
                        **selections(base),
                        group_by=list(rule.group_by or []),
                        timespan=rule.timespan.seconds,
                        timespan_spec=rule.timespan.spec,
                        count=count,
                        value_field=cond.fieldref,
                    )
                )
            elif rule.name not in used:
                ls = rule.logsource
                out.append(
                    Detection(
                        **common,
                        logsource=f"{ls.product}/{ls.service}",
                        kind="query",
                        **selections(rule),
                    )
                )
    ids = [d.id for d in out]
    if len(ids) != len(set(ids)):
        raise ValueError("two Sigma rules share an id")
    return out


def _threat(tags: list[str], mitre: dict[str, Any]) -> list[dict[str, Any]]:
    """Sigma ``attack.<tactic>`` / ``attack.tNNNN[.NNN]`` tags as Elastic ``threat`` entries."""
    tactics = [t.removeprefix("attack.") for t in tags if t.startswith("attack.")]
    techniques = [t.upper() for t in tactics if t[:1] == "t" and t[1:2].isdigit()]
    tactics = [t for t in tactics if t.upper() not in techniques]
    out = []
    for name in tactics:
        tactic = mitre["tactics"][name]
        entry: dict[str, Any] = {
            "framework": "MITRE ATT&CK",
            "tactic": {
                "id": tactic["id"],
                "name": tactic["name"],
                "reference": f"https://attack.mitre.org/tactics/{tactic['id']}/",
            },
            "technique": [],
        }
        for tid in techniques:
            parent = tid.split(".")[0]
            tech: dict[str, Any] = {
                "id": parent,
                "name": mitre["techniques"][parent],
                "reference": f"https://attack.mitre.org/techniques/{parent}/",
            }
            if "." in tid:
                path = tid.replace(".", "/")
                tech["subtechnique"] = [
                    {
                        "id": tid,
                        "name": mitre["techniques"][tid],
                        "reference": f"https://attack.mitre.org/techniques/{path}/",
                    }
                ]
            entry["technique"].append(tech)
        out.append(entry)
    return out


def _note(d: Detection) -> str:
    lines = [f"## {d.title}", "", d.description, ""]
    if d.kind in ("event_count", "value_count"):
        what = (
            f"{d.count} or more events"
            if d.kind == "event_count"
            else f"{d.count} or more distinct `{d.value_field}` values"
        )
        lines += [
            f"Fires for each `{'`, `'.join(d.group_by)}` with {what} within {d.timespan_spec}.",
            "",
        ]
    lines += [
        f"Source: Sigma rule `mappings/detections/sigma/{d.source}` (shipper); tuning knobs "
        "are in shipper's README, section Detections.",
    ]
    return "\n".join(lines)


def generate_elastic_rules(detections: list[Detection] | None = None) -> list[dict[str, Any]]:
    """The Elastic Security rules (Kibana import format) for every Sigma detection."""
    settings = _load_settings()
    defaults, overrides = settings["defaults"], settings.get("rules") or {}
    rules = []
    for d in detections if detections is not None else compile_detections():
        over = dict(overrides.get(d.id) or {})
        level = settings["levels"][d.level]
        source = settings["logsources"][d.logsource]
        interval = defaults["interval"]
        rule: dict[str, Any] = {
            "rule_id": d.id,
            "name": f"RMS: {d.title}" if not d.title.startswith("RMS") else d.title,
            "description": d.description,
            "author": list(defaults["author"]),
            "license": defaults["license"],
            "enabled": defaults["enabled"],
            "interval": interval,
            "to": "now",
            "max_signals": defaults["max_signals"],
            "severity": level["severity"],
            "risk_score": level["risk_score"],
            "false_positives": d.falsepositives,
            "references": d.references,
            "tags": [*defaults["tags"], source["tag"]],
            "threat": _threat(d.tags, settings["mitre"]),
            "note": _note(d),
            "version": int(over.pop("version", 1)),
        }
        if d.kind == "query":
            slack = defaults["lookback_slack"]
            rule["from"] = f"now-{_add(interval, slack)}"
            rule.update(type="query", language="lucene", index=source["index"], query=d.query)
        elif d.kind in ("event_count", "value_count") and not over.get("type"):
            threshold: dict[str, Any] = {"field": d.group_by}
            if d.kind == "event_count":
                threshold["value"] = d.count
            else:
                threshold["value"] = 1
                threshold["cardinality"] = [{"field": d.value_field, "value": d.count}]
            # the correlation's timespan plus the slack a query rule gets: without it a run
            # looks back exactly one interval (5m on 5m for the policy-overdue rule), and a
            # sample indexed after the run that covered its time is never counted. Sigma
            # timespans are date math.
            rule["from"] = f"now-{_add(d.timespan_spec, defaults['lookback_slack'])}"
            rule.update(
                type="threshold",
                language="lucene",
                index=source["index"],
                query=d.query,
                threshold=threshold,
            )
        else:
            if over.get("type") != "esql":
                raise ValueError(f"{d.source}: {d.title}: needs an esql entry in elastic.yml")
            del over["type"]
            template = over.pop("query")
            group = ", ".join(d.group_by)
            if not group and "{group}" in template:
                raise ValueError(
                    f"{d.source}: {d.title}: the ES|QL template uses {{group}} and the Sigma "
                    "rule has no group-by: write {by} / {group_and} in elastic.yml"
                )
            query = template.format(
                index=",".join(source["index"]),
                where=d.esql_where,
                group=group,
                by=f" BY {group}" if group else "",
                group_and=f"{group}, " if group else "",
                count=d.count,
                timespan=_esql_span(d.timespan),
                **{k: over.pop(k) for k in list(over) if k != "from"},
            )
            rule.update(type="esql", language="esql", query=query, **{"from": over.pop("from")})
        if over:
            raise ValueError(f"elastic.yml: {d.id}: unknown keys {sorted(over)}")
        rules.append(rule)
    return rules


def _esql_span(seconds: int) -> str:
    """A timespan as an ES|QL time-span literal (``3600`` -> ``1 hour``)."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" + ("s" if n != 1 else "")
    return f"{seconds} seconds"


def _add(a: str, b: str) -> str:
    """Sum of two date-math durations (``5m`` + ``1m`` -> ``6m``), in the smaller unit."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    secs = int(a[:-1]) * units[a[-1]] + int(b[:-1]) * units[b[-1]]
    for unit in ("d", "h", "m", "s"):
        if secs % units[unit] == 0:
            return f"{secs // units[unit]}{unit}"
    raise AssertionError(secs)  # "s" always divides


def render(rules: list[dict[str, Any]]) -> str:
    """NDJSON, one rule a line, keys in a stable order, so regenerating changes nothing."""
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rules)


def main(argv: list[str] | None = None) -> int:
    """``python -m shipper.detections [--check]``: regenerate (or check) elastic_rules.ndjson."""
    args = sys.argv[1:] if argv is None else argv
    text = render(generate_elastic_rules())
    path = rules_file()
    if "--check" in args:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m shipper.detections", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {len(text.splitlines())} rules to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
