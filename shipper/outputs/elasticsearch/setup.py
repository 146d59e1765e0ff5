"""``shipper setup`` and ``shipper check --outputs`` for Elasticsearch / OpenSearch.

``install`` puts in place, idempotently (PUT of the same body is a no-op for the cluster), what
the documents and Kibana need, all kept as files under ``mappings/``:

1. component templates: ``shipper-ecs@mappings`` built from the ECS field list shipped in
   ``mappings/ecs`` (see ``ecs``), and ``mappings/elasticsearch/component_template_*.json``:
   custom-namespace mappings, settings, dynamic keyword for the unknown;
2. a lifecycle policy, data streams only: ILM ``shipper-logs`` on Elasticsearch (rollover, no
   delete phase); on OpenSearch an ISM policy with an ``ism_template`` for our data streams,
   created once and left alone afterwards (ISM refuses a blind overwrite), skipped where the
   ISM plugin is absent. Classic daily indices (``index:``) get no policy: the date in the name
   already rolls them over;
3. the user's ``@custom`` component templates (``logs@custom``, ``logs-<dataset>@custom``, as
   Elastic's integrations compose them; ``<name>@custom`` with ``index:``), created empty with
   ``create=true`` when missing and never overwritten, so a pipeline or mapping put there
   (GeoIP, say) survives every later ``setup``; then index templates named like what they
   match, one per dataset (``logs-<dataset>``, data stream) or per ``index:`` pattern,
   composing ours and then those, so theirs win. Templates that older versions installed under
   ``shipper-<pattern>`` names (``shipper-shipper-...`` with ``index: shipper-...``) are
   deleted once their successors are in. To add a dataset (a ``metrics-*`` one, say), add an
   ``index_templates_<name>.json`` (``type``, ``datasets``, ``composed_of``, ``priority``) and
   its ``component_template_<name>.json`` files to ``mappings/elasticsearch``; nothing here
   changes (see ``templates``);
4. saved objects (a data view per dataset, two dashboards, the everyday and forensic saved
   searches and the forensics dashboard), imported with ``overwrite=true`` under fixed ids,
   when ``kibana_url`` is set: the Kibana 8 set (``mappings/kibana/``) for ``type:
   elasticsearch``, the OpenSearch Dashboards set (``mappings/opensearch_dashboards/``) for
   ``type: opensearch`` (see ``kibana``). With ``index:`` the data views' titles are
   rewritten to the index pattern;
5. the detection rules (``mappings/detections/elastic_rules.ndjson``, generated from the Sigma
   rules) into Kibana's detection engine, ``POST /api/detection_engine/rules/_import`` with
   ``overwrite=true``: each rule is replaced by its ``rule_id``, so a second run changes
   nothing and a newer shipper updates its rules in place. With ``index:`` the rules' index
   patterns (and the ES|QL ``FROM``) are rewritten like the data views. OpenSearch Dashboards
   has no such engine; there the step is skipped (the Sigma rules convert for OpenSearch's
   Security Analytics instead).

``install(..., dry_run=True)`` contacts nothing and returns the same steps as "would ..."
lines naming each request, so ``shipper setup --dry-run`` can show what a run would change.

``status`` connects and reports product, version and which templates are missing; auth and TLS
problems, and the wrong engine for the ``type`` ("this is OpenSearch 2.17.0, not
Elasticsearch; use type: opensearch"), come back as a clear ``message`` with ``ok=False``
(never a stack trace).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipper.errors import OutputFailed, RetryLater, ShipperError
from shipper.outputs.elasticsearch import ecs, templates
from shipper.outputs.elasticsearch.config import ElasticsearchOutput
from shipper.outputs.elasticsearch.kibana import object_set, saved_objects
from shipper.outputs.elasticsearch.transport import (
    Reply,
    Transport,
    engine_mismatch,
    make_transport,
)

POLICY = "shipper-logs"
SAVED_OBJECTS = "Kibana saved objects"
RULES = "Kibana detection rules"


@dataclass
class Step:
    what: str
    result: str  # "installed", "unchanged", "skipped", "failed", "would install" (dry run)
    detail: str = ""


@dataclass
class SetupReport:
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.result != "failed" for s in self.steps)


@dataclass
class Status:
    ok: bool
    product: str = ""
    version: str = ""
    templates: dict[str, bool] = field(default_factory=dict)
    message: str = ""


# --- what to install ---------------------------------------------------------------------------


def _es_dir() -> Path:
    return templates.es_dir()


def _load(name: str) -> Any:
    return templates.load(name)


def datasets() -> list[str]:
    return templates.datasets()


def index_pattern(settings: ElasticsearchOutput, dataset: str) -> str:
    """The wildcard pattern matching the indices or data streams of one dataset."""
    if settings.index is None:
        return f"{templates.stream_types().get(dataset, 'logs')}-{dataset}-*"
    pattern = re.sub(r"%\{\+[^}]*\}", "*", settings.index)
    pattern = pattern.replace("{namespace}", settings.namespace).replace("{dataset}", dataset)
    return re.sub(r"\*+", "*", pattern)


def component_templates(settings: ElasticsearchOutput) -> dict[str, dict[str, Any]]:
    """Ours, by name: the generated ECS one and every ``component_template_*.json``."""
    out: dict[str, dict[str, Any]] = {ecs.COMPONENT: ecs.component(settings.type)}
    for path in sorted(_es_dir().glob("component_template_*.json")):
        name = path.stem.removeprefix("component_template_")
        body = json.loads(path.read_text(encoding="utf-8"))
        if name == "shipper@settings" and _uses_ilm(settings):
            index = body["template"]["settings"].setdefault("index", {})
            index["lifecycle"] = {"name": POLICY}
        out[name] = body
    return out


def index_templates(settings: ElasticsearchOutput) -> dict[str, dict[str, Any]]:
    """One per data stream pattern (``logs-<dataset>``), or per ``index:`` pattern."""
    out: dict[str, dict[str, Any]] = {}
    for group in templates.groups():
        for dataset in group["datasets"]:
            pattern = index_pattern(settings, dataset)
            name = templates.template_name(pattern)
            custom = [f"{name}@custom"]
            if settings.index is None:
                custom.insert(0, f"{group['type']}@custom")
            body = out.get(name)
            if body is None:
                body = out[name] = {
                    "index_patterns": [pattern],
                    "composed_of": [],
                    "priority": group["priority"],
                    "_meta": {"managed_by": "shipper"},
                }
                if settings.index is None:
                    body["data_stream"] = {}
            # ``index:`` without {dataset}: one template for several groups, all components
            mine = [c for c in body["composed_of"] if not c.endswith("@custom")]
            mine += [c for c in group["composed_of"] if c not in mine]
            body["composed_of"] = mine + custom
    return out


def custom_templates(settings: ElasticsearchOutput) -> list[str]:
    """The users' ``@custom`` component templates the index templates compose, in order."""
    names: dict[str, None] = {}
    for body in index_templates(settings).values():
        names.update((c, None) for c in body["composed_of"] if c.endswith("@custom"))
    return list(names)


def _uses_ilm(settings: ElasticsearchOutput) -> bool:
    return settings.ilm and settings.index is None and settings.type == "elasticsearch"


def kibana_objects(settings: ElasticsearchOutput) -> bytes:
    """The saved objects of the output's engine (``kibana.object_set``) as one NDJSON body."""
    return saved_objects(settings, index_pattern)


def detection_rules(settings: ElasticsearchOutput) -> bytes:
    """The detection rules as one NDJSON body, index patterns matching where documents go."""
    from shipper.detections import elastic_rules

    lines: list[bytes] = []
    for rule in elastic_rules():
        if settings.index is not None:
            rule = _retarget(rule, settings)
        lines.append(json.dumps(rule, ensure_ascii=False).encode())
    return b"\n".join(lines) + b"\n"


_DATA_STREAM = re.compile(r"(?:logs|metrics)-([a-z0-9_.]+)-\*")


def _retarget(rule: dict[str, Any], settings: ElasticsearchOutput) -> dict[str, Any]:
    def swap(m: re.Match[str]) -> str:
        return index_pattern(settings, m.group(1))

    rule = dict(rule)
    if "index" in rule:
        rule["index"] = [_DATA_STREAM.sub(swap, p) for p in rule["index"]]
    if rule.get("language") == "esql":
        rule["query"] = _DATA_STREAM.sub(swap, rule["query"])
    return rule


# --- doing it ------------------------------------------------------------------------------------


def _put(t: Transport, path: str, body: Any, params: dict[str, str] | None = None) -> Reply:
    reply = t.request("PUT", path, body, params)
    if reply.status in (401, 403):
        raise OutputFailed(f"PUT {path}: not allowed (HTTP {reply.status}): {_why(reply)}")
    return reply


def _why(reply: Reply) -> str:
    body = reply.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return f"{err.get('type', '')}: {err.get('reason', '')}".strip(": ")
        return str(err)
    return str(body)[:200]


def _step(report: SetupReport, what: str, reply: Reply) -> None:
    ok = 200 <= reply.status < 300
    report.steps.append(Step(what, "installed" if ok else "failed", "" if ok else _why(reply)))


def _lifecycle(t: Transport, settings: ElasticsearchOutput, report: SetupReport) -> None:
    if settings.index is not None or not settings.ilm:
        report.steps.append(Step("lifecycle policy", "skipped", "not used with index:"))
        return
    if settings.type == "elasticsearch":
        _step(
            report,
            f"ILM policy {POLICY}",
            _put(t, f"/_ilm/policy/{POLICY}", _load("ilm_policy_shipper-logs.json")),
        )
        return
    path = f"/_plugins/_ism/policies/{POLICY}"
    existing = t.request("GET", path)
    if existing.status == 200:
        report.steps.append(Step(f"ISM policy {POLICY}", "unchanged", "exists; left as is"))
        return
    body = copy.deepcopy(_load("ism_policy_shipper-logs.json"))
    body["policy"]["ism_template"] = [
        {"index_patterns": [index_pattern(settings, ds) for ds in datasets()], "priority": 100}
    ]
    reply = _put(t, path, body)
    if reply.status in (400, 404, 405) and "no handler" in str(reply.body):
        report.steps.append(Step(f"ISM policy {POLICY}", "skipped", "ISM plugin not available"))
        return
    _step(report, f"ISM policy {POLICY}", reply)


def _custom(t: Transport, settings: ElasticsearchOutput, name: str) -> Step:
    """Create the user's ``@custom`` component template empty when missing; never change it.

    ``create=true`` makes "only if absent" one atomic request: an existing template (the
    user's pipeline, mappings or settings) is refused by the cluster itself.
    """
    what = f"component template {name}"
    body: dict[str, Any] = {"template": {}}
    if settings.type == "elasticsearch":
        body["_meta"] = {"description": "yours: shipper setup creates it empty, never changes it"}
    reply = _put(t, f"/_component_template/{name}", body, {"create": "true"})
    if 200 <= reply.status < 300:
        return Step(what, "installed", "empty, for your own settings and mappings")
    if reply.status == 400 and "already exists" in _why(reply):
        return Step(what, "unchanged", "exists; yours, left as is")
    return Step(what, "failed", _why(reply))


def _retire_legacy(t: Transport, name: str, body: dict[str, Any], report: SetupReport) -> None:
    """Delete the same template under the name older versions gave it, once the new one is in.

    The new one has a higher priority, so it already wins, and the old one no longer backs a
    data stream (which would make the cluster refuse the delete). Only a template with the
    same patterns that composes our ECS component is taken for ours.
    """
    old = templates.legacy_template_name(body["index_patterns"][0])
    if old == name or not report.steps or report.steps[-1].result != "installed":
        return
    reply = t.request("GET", f"/_index_template/{old}")
    if reply.status != 200 or not isinstance(reply.body, dict):
        return
    found = reply.body.get("index_templates") or [{}]
    spec = found[0].get("index_template", {})
    if spec.get("index_patterns") != body["index_patterns"]:
        return
    if ecs.COMPONENT not in spec.get("composed_of", []):
        return
    gone = t.request("DELETE", f"/_index_template/{old}")
    ok = 200 <= gone.status < 300
    detail = f"replaced by {name}" if ok else _why(gone)
    report.steps.append(Step(f"index template {old}", "removed" if ok else "failed", detail))


def plan(settings: ElasticsearchOutput, *, kibana: bool = True) -> SetupReport:
    """What ``install`` would do, as steps, without contacting anything (``--dry-run``)."""
    report = SetupReport()
    would = "would install"
    for name in component_templates(settings):
        report.steps.append(
            Step(f"component template {name}", would, f"PUT /_component_template/{name}")
        )
    if settings.index is not None or not settings.ilm:
        report.steps.append(Step("lifecycle policy", "skipped", "not used with index:"))
    elif settings.type == "elasticsearch":
        report.steps.append(Step(f"ILM policy {POLICY}", would, f"PUT /_ilm/policy/{POLICY}"))
    else:
        path = f"/_plugins/_ism/policies/{POLICY}"
        report.steps.append(Step(f"ISM policy {POLICY}", would, f"PUT {path}, unless it exists"))
    for name in custom_templates(settings):
        path = f"/_component_template/{name}?create=true"
        report.steps.append(
            Step(f"component template {name}", would, f"PUT {path}, empty, unless it exists")
        )
    for name in index_templates(settings):
        report.steps.append(Step(f"index template {name}", would, f"PUT /_index_template/{name}"))
    if not kibana:
        return report
    if not settings.kibana_url:
        report.steps.append(Step(SAVED_OBJECTS, "skipped", "no kibana_url configured"))
        report.steps.append(Step(RULES, "skipped", "no kibana_url configured"))
        return report
    base = _kibana_base(settings)
    n = kibana_objects(settings).count(b"\n")
    report.steps.append(
        Step(
            SAVED_OBJECTS,
            would,
            f"{n} objects, {object_set(settings)} set: "
            f"POST {base}/api/saved_objects/_import?overwrite=true",
        )
    )
    if settings.type == "opensearch":
        report.steps.append(_no_rules_on_opensearch())
    else:
        n = detection_rules(settings).count(b"\n")
        report.steps.append(Step(RULES, would, f"{n} rules: POST {base}{RULES_IMPORT}"))
    return report


def install(
    settings: ElasticsearchOutput,
    *,
    transport: Transport | None = None,
    kibana: bool = True,
    dry_run: bool = False,
) -> SetupReport:
    """Install templates, lifecycle policy, Kibana objects and detection rules; raises
    OutputFailed on auth/TLS. With ``dry_run``, only say what would be done (``plan``)."""
    if dry_run:
        return plan(settings, kibana=kibana)
    t = transport or make_transport(settings)
    report = SetupReport()
    try:
        for name, body in component_templates(settings).items():
            if settings.type == "opensearch":
                body = {k: v for k, v in body.items() if k != "_meta"}
            _step(
                report, f"component template {name}", _put(t, f"/_component_template/{name}", body)
            )
        _lifecycle(t, settings, report)
        for name in custom_templates(settings):
            report.steps.append(_custom(t, settings, name))
        for name, body in index_templates(settings).items():
            if settings.type == "opensearch":
                body = {k: v for k, v in body.items() if k != "_meta"}
            _step(report, f"index template {name}", _put(t, f"/_index_template/{name}", body))
            _retire_legacy(t, name, body, report)
    except RetryLater as e:
        raise OutputFailed(str(e)) from None  # the message already names the output
    finally:
        if transport is None:
            t.close()
    if kibana and settings.kibana_url:
        report.steps.append(import_kibana(settings))
        report.steps.append(import_rules(settings))
    elif kibana:
        report.steps.append(Step(SAVED_OBJECTS, "skipped", "no kibana_url configured"))
        report.steps.append(Step(RULES, "skipped", "no kibana_url configured"))
    return report


RULES_IMPORT = "/api/detection_engine/rules/_import?overwrite=true"


def _kibana_base(settings: ElasticsearchOutput) -> str:
    assert settings.kibana_url
    base = settings.kibana_url.rstrip("/")
    if settings.kibana_space:
        base += f"/s/{settings.kibana_space}"
    return base


def _no_rules_on_opensearch() -> Step:
    return Step(
        RULES,
        "skipped",
        "OpenSearch has no Elastic detection engine; convert the Sigma rules in "
        "mappings/detections/sigma "
        "for its Security Analytics",
    )


def import_kibana(settings: ElasticsearchOutput) -> Step:
    """POST the saved objects to Kibana (or OpenSearch Dashboards) with overwrite.

    Each product gets its own set (``kibana.object_set``): OpenSearch Dashboards refuses
    Kibana 8 objects, and Kibana 8 would migrate the old ones into legacy panels.
    """
    url = _kibana_base(settings) + "/api/saved_objects/_import?overwrite=true"
    status, reply = _post_ndjson(settings, url, kibana_objects(settings))
    if isinstance(status, str):
        return Step(SAVED_OBJECTS, "failed", status)
    if status == 200 and reply.get("success", False):
        which = object_set(settings)
        return Step(
            SAVED_OBJECTS, "installed", f"{reply.get('successCount', 0)} objects, {which} set"
        )
    return Step(SAVED_OBJECTS, "failed", f"HTTP {status}: {str(reply)[:300]}")


def import_rules(settings: ElasticsearchOutput) -> Step:
    """POST the detection rules to Kibana's detection engine, replacing them by rule_id.

    The reply is 200 even when some rules were refused; those are in ``errors``, each with
    its ``rule_id`` and a message, and make the step fail.
    """
    if settings.type == "opensearch":
        return _no_rules_on_opensearch()
    body = detection_rules(settings)
    status, reply = _post_ndjson(settings, _kibana_base(settings) + RULES_IMPORT, body)
    if isinstance(status, str):
        return Step(RULES, "failed", status)
    errors = reply.get("errors") or []
    if status == 200 and reply.get("success", False) and not errors:
        return Step(RULES, "installed", f"{reply.get('success_count', 0)} rules")
    if status == 200 and errors:
        why = "; ".join(
            f"{e.get('rule_id', '?')}: {e.get('error', {}).get('message', e)}" for e in errors[:3]
        )
        total = body.count(b"\n")
        return Step(RULES, "failed", f"{len(errors)} of {total} refused: {why}")
    return Step(RULES, "failed", f"HTTP {status}: {str(reply)[:300]}")


def _post_ndjson(
    settings: ElasticsearchOutput, url: str, ndjson: bytes
) -> tuple[int | str, dict[str, Any]]:
    """POST one NDJSON file as Kibana's import APIs take it (multipart ``file``), over urllib3.

    Returns (HTTP status, parsed reply), or (message, {}) when Kibana could not be reached.
    """
    import urllib3

    xsrf = "osd-xsrf" if settings.type == "opensearch" else "kbn-xsrf"
    headers = {xsrf: "true"}
    key, password = settings.resolved_api_key(), settings.resolved_password()
    if key:
        headers["authorization"] = f"ApiKey {key}"
    elif settings.username and password is not None:
        headers.update(urllib3.make_headers(basic_auth=f"{settings.username}:{password}"))
    body, content_type = urllib3.encode_multipart_formdata(
        {"file": ("shipper.ndjson", ndjson, "application/ndjson")}
    )
    headers["content-type"] = content_type
    pool_kw: dict[str, Any] = {"timeout": settings.request_timeout, "retries": False}
    if settings.ca_file:
        pool_kw["ca_certs"] = str(settings.ca_file)
    if settings.ssl_assert_fingerprint:
        pool_kw["assert_fingerprint"] = settings.ssl_assert_fingerprint
        pool_kw["cert_reqs"] = "CERT_NONE"
    elif not settings.verify_certs:
        pool_kw["cert_reqs"] = "CERT_NONE"
    try:
        resp = urllib3.PoolManager(**pool_kw).request("POST", url, body=body, headers=headers)
    except urllib3.exceptions.HTTPError as e:
        return f"{settings.kibana_url}: {e}", {}
    try:
        reply = json.loads(resp.data or b"{}")
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        reply = {"raw": resp.data[:200].decode("utf-8", "replace")}
    return resp.status, reply


def status(settings: ElasticsearchOutput, *, transport: Transport | None = None) -> Status:
    """Connect, report product and version, and whether every template is installed."""
    t = transport or make_transport(settings)
    try:
        root = t.request("GET", "/")
        if root.status in (401, 403):
            what = "authentication failed" if root.status == 401 else "not allowed"
            return Status(False, message=f"{settings.display_name()}: {what} ({_why(root)})")
        if root.status != 200 or not isinstance(root.body, dict):
            return Status(False, message=f"GET / answered HTTP {root.status}: {_why(root)}")
        named = engine_mismatch(settings.type, root.body, settings.display_name())
        if named:
            return Status(False, message=named)
        version = root.body.get("version", {})
        product = version.get("distribution", "elasticsearch")
        found: dict[str, bool] = {}
        for name in [*component_templates(settings), *custom_templates(settings)]:
            found[name] = t.request("GET", f"/_component_template/{name}").status == 200
        for name in index_templates(settings):
            found[name] = t.request("GET", f"/_index_template/{name}").status == 200
        missing = [n for n, ok in found.items() if not ok]
        message = (
            "templates missing: " + ", ".join(missing) + " (run shipper setup)" if missing else ""
        )
        return Status(not missing, product, str(version.get("number", "")), found, message)
    except ShipperError as e:
        return Status(False, message=str(e))
    finally:
        if transport is None:
            t.close()
