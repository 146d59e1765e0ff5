"""What a user of the RMS normaliser notices: timestamps, ids, users, clients, and ECS validity.

Records are built from a dict of W3C field -> value over the 17-field layout, so each table row
says only what differs from an ordinary successful AcquireLicense. Whole files live under
``tests/fixtures/rms/`` (one golden event) and ``examples/rms/`` (a download folder); both are
normalised and run through the shared ECS checker when ``../shared`` is present.
"""

from __future__ import annotations

import codecs
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import yaml

from shipper.errors import RecordRejected
from shipper.normalise.rms import (
    DATASET,
    ECS_VERSION,
    KNOWN_FIELDS,
    PACKED_SHARE,
    RmsNormaliser,
)
from shipper.outputs.syslog.encode import header_fields

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "rms"
EXAMPLES = REPO / "examples" / "rms"
SHARED = REPO / ".." / "shared"
ECS_FLAT = SHARED / "ecs" / "ecs_flat.yml"
ECS_CHECK = SHARED / "tools" / "ecs_check.py"

FIELDS_17 = list(KNOWN_FIELDS)
FIELDS_15 = FIELDS_17[:15]
CONNECTOR_CINFO = (
    "'MSIPC;version=1.0.623.47;AppName=Microsoft.RightsManagementServices.Connector;"
    "AppVersion=2.1.0;AppArch=x64;OSName=Windows;OSVersion=10.0.17763;OSArch=amd64'"
)
O365 = "microsoftrmsonline@f76fdd0a-e180-42d7-8408-ca2dded91461.rms.eu.aadrm.com"

BASE = {
    "date": "2024-03-04",
    "time": "09:14:07",
    "row-id": "4b1d72eb-eafe-4587-9fe1-cad63d9d2d7c",
    "request-type": "AcquireLicense",
    "user-id": "'rupert.jackson@contoso.com'",
    "result": "'Success'",
    "correlation-id": "baead603-065b-4269-ad0e-399d730b693c",
    "content-id": "{271b6308-150d-49d2-8d1b-777891f8c298}",
    "owner-email": "award@contoso.com",
    "issuer": "award@contoso.com",
    "template-id": "",
    "file-name": "Pricing_v8.docx",
    "date-published": "2022-12-17T11:12:26",
    "c-info": (
        "'MSIPC;version=1.0.4008.0;AppName=EXCEL.EXE;AppVersion=16.0.17328.20162;AppArch=x64;"
        "OSName=Windows;OSVersion=10.0.22631;OSArch=amd64'"
    ),
    "c-ip": "131.107.1.20",
    "admin-action": "",
    "acting-as-user": "",
}


def normalise(fields: list[str] = FIELDS_17, keep_original: bool = False, **changes: str) -> Any:
    record = {**BASE, **{k.replace("_", "-"): v for k, v in changes.items()}}
    values = [record.get(name, "") for name in fields]
    bound = RmsNormaliser(keep_original=keep_original).bind(fields)
    return bound(values, "/logs/000000001", 1234, "\t".join(values))


def get(event: dict[str, Any], dotted: str) -> Any:
    """Value at a dotted path, or a marker when absent (so tables can assert absence)."""
    node: Any = event
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return ABSENT
        node = node[part]
    return list(node) if isinstance(node, tuple) else node


ABSENT = "<absent>"

CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "ordinary AcquireLicense",
        {},
        {
            "@timestamp": "2024-03-04T09:14:07.000Z",
            "event.kind": "event",
            "event.module": "azure_rms",
            "event.dataset": DATASET,
            "event.action": "AcquireLicense",
            "event.id": BASE["row-id"],
            "event.outcome": "success",
            "event.category": ["file"],
            "event.type": ["access"],
            "ecs.version": ECS_VERSION,
            "log.file.path": "/logs/000000001",
            "azure_rms.log_offset": 1234,
            "error": ABSENT,
            "event.original": ABSENT,
            "user.id": "rupert.jackson@contoso.com",
            "user.email": "rupert.jackson@contoso.com",
            "user.name": "rupert.jackson",
            "user.domain": "contoso.com",
            "azure_rms.principal.type": "user",
            "source.ip": "131.107.1.20",
            "related.ip": ["131.107.1.20"],
            "related.user": ["rupert.jackson@contoso.com", "rupert.jackson", "award@contoso.com"],
            "file.name": "Pricing_v8.docx",
            "file.extension": "docx",
            "azure_rms.content_id": "271b6308-150d-49d2-8d1b-777891f8c298",
            "azure_rms.template_id": ABSENT,
            "azure_rms.owner_email": "award@contoso.com",
            "azure_rms.issuer": "award@contoso.com",
            "azure_rms.row_id": BASE["row-id"],
            "azure_rms.correlation_id": BASE["correlation-id"],
            "azure_rms.date_published": "2022-12-17T11:12:26",
        },
    ),
    (
        "fractions of a second are kept, at least three digits",
        {"time": "21:59:28.1234"},
        {"@timestamp": "2024-03-04T21:59:28.1234Z"},
    ),
    (
        "one fraction digit is padded",
        {"time": "21:59:28.1"},
        {"@timestamp": "2024-03-04T21:59:28.100Z"},
    ),
    (
        "empty row-id: event.id falls back to the correlation-id",
        {"row-id": ""},
        {"event.id": BASE["correlation-id"], "azure_rms.row_id": ABSENT},
    ),
    (
        "failure: outcome and error text",
        {"result": "'AccessDenied'"},
        {"event.outcome": "failure", "error.message": "AccessDenied", "error.code": "AccessDenied"},
    ),
    (
        "RMS connector is a service principal",
        {"user-id": "'Aadrm_S-1-7-0'", "request-type": "ServerCertify", "c-info": CONNECTOR_CINFO},
        {
            "user.id": "Aadrm_S-1-7-0",
            "user.name": "Aadrm_S-1-7-0",
            "user.email": ABSENT,
            "azure_rms.principal.type": "connector",
            "event.category": ["authentication"],
            "event.type": ["start"],
            "user_agent.name": "Microsoft.RightsManagementServices.Connector",
        },
    ),
    (
        "Office 365 service principal keeps tenant and region",
        {"user-id": f"'{O365}'", "issuer": O365},
        {
            "user.id": O365,
            "user.name": "microsoftrmsonline",
            "user.email": ABSENT,
            "azure_rms.principal.type": "office365_service",
            "azure_rms.principal.tenant_id": "f76fdd0a-e180-42d7-8408-ca2dded91461",
            "azure_rms.principal.region": "eu",
            "azure_rms.issuer": O365,
        },
    ),
    (
        "anonymous caller gives no user fields",
        {"user-id": "''", "request-type": "FindServiceLocationsForUser", "owner-email": ""},
        {"user": ABSENT, "azure_rms.principal": ABSENT, "related.user": ["award@contoso.com"]},
    ),
    (
        "invalid c-ip is kept raw, not as source.ip",
        {"c-ip": "10.0.0.300"},
        {"source": ABSENT, "related.ip": ABSENT, "azure_rms.c_ip": "10.0.0.300"},
    ),
    (
        "IPv6 c-ip",
        {"c-ip": "2a02:8108:fd4b:70ba::64bf:8cb"},
        {"source.ip": "2a02:8108:fd4b:70ba::64bf:8cb"},
    ),
    ("empty c-ip gives no field", {"c-ip": ""}, {"source": ABSENT, "azure_rms.c_ip": ABSENT}),
    (
        "c-info is parsed into user_agent and azure_rms.client",
        {
            "c-info": (
                "'MSIPC;version=1.0.623.47;AppName=WINWORD.EXE;AppVersion=15.0.4753.1000;"
                "AppArch=x86;OSName=Windows;OSVersion=6.1.7601;OSArch=amd64'"
            )
        },
        {
            "user_agent.original": (
                "MSIPC;version=1.0.623.47;AppName=WINWORD.EXE;AppVersion=15.0.4753.1000;"
                "AppArch=x86;OSName=Windows;OSVersion=6.1.7601;OSArch=amd64"
            ),
            "user_agent.name": "WINWORD.EXE",
            "user_agent.version": "15.0.4753.1000",
            "user_agent.os.name": "Windows",
            "user_agent.os.version": "6.1.7601",
            "user_agent.os.full": "Windows 6.1.7601",
            "user_agent.os.type": "windows",
            "azure_rms.client.sdk_name": "MSIPC",
            "azure_rms.client.sdk_version": "1.0.623.47",
            "azure_rms.client.app_arch": "x86",
            "azure_rms.client.os_arch": "amd64",
        },
    ),
    ("empty c-info gives no user_agent", {"c-info": ""}, {"user_agent": ABSENT}),
    (
        "GUIDs are lower-cased without braces",
        {
            "content-id": "{9F1C2B7E-5A3D-4E8F-B1C6-7D2E9A4F3B05}",
            "template-id": "{A1B2C3D4-E5F6-4789-ABCD-EF0123456789}",
        },
        {
            "azure_rms.content_id": "9f1c2b7e-5a3d-4e8f-b1c6-7d2e9a4f3b05",
            "azure_rms.template_id": "a1b2c3d4-e5f6-4789-abcd-ef0123456789",
        },
    ),
    (
        "admin action on behalf of another user",
        {
            "request-type": "GetAllDocs",
            "admin-action": "true",
            "acting-as-user": "dave.brown@fabrikam.com",
            "owner-email": "",
            "issuer": "",
        },
        {
            "azure_rms.admin_action": True,
            "user.target.email": "dave.brown@fabrikam.com",
            "user.target.name": "dave.brown",
            "user.target.domain": "fabrikam.com",
            "event.category": ["web"],
            "related.user": [
                "rupert.jackson@contoso.com",
                "rupert.jackson",
                "dave.brown@fabrikam.com",
                "dave.brown",
            ],
        },
    ),
    ("admin-action false", {"admin-action": "false"}, {"azure_rms.admin_action": False}),
    ("empty admin-action is omitted", {"admin-action": ""}, {"azure_rms.admin_action": ABSENT}),
    (
        "unknown request type still ships with the default category",
        {"request-type": "FutureRequestV9"},
        {"event.action": "FutureRequestV9", "event.category": ["api"], "event.type": ["info"]},
    ),
    (
        "request types match case-insensitively; event.action keeps the spelling",
        {"request-type": "acquirelicense"},
        {"event.action": "acquirelicense", "event.category": ["file"]},
    ),
    (
        "revoking a document is a change",
        {"request-type": "RevokeAccess"},
        {"event.category": ["file", "iam"], "event.type": ["change"]},
    ),
    (
        "file name without extension, and a date-only date-published",
        {"file-name": "README", "date-published": "2024-01-31"},
        {
            "file.name": "README",
            "file.extension": ABSENT,
            "azure_rms.date_published": "2024-01-31",
        },
    ),
    (
        "dash and quoted-empty values give no field",
        {"owner-email": "-", "issuer": "''", "file-name": "-", "content-id": "''"},
        {
            "azure_rms.owner_email": ABSENT,
            "azure_rms.issuer": ABSENT,
            "file": ABSENT,
            "azure_rms.content_id": ABSENT,
        },
    ),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_record(changes: dict[str, str], expected: dict[str, Any]) -> None:
    event = normalise(**{k.replace("-", "_"): v for k, v in changes.items()})
    assert {k: get(event, k) for k in expected} == expected


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"time": "25:99:00"}, "unparseable time '25:99:00'"),
        ({"time": "9h14"}, "unparseable time"),
        ({"date": "2024-02-30"}, "unparseable date '2024-02-30'"),
        ({"date": "04/03/2024"}, "unparseable date"),
        ({"row-id": "", "correlation-id": ""}, "no row-id and no correlation-id"),
    ],
)
def test_rejected(changes: dict[str, str], reason: str) -> None:
    with pytest.raises(RecordRejected, match=reason.replace("(", r"\(")):
        normalise(**{k.replace("-", "_"): v for k, v in changes.items()})


def test_header_without_time_rejects_every_record() -> None:
    bound = RmsNormaliser().bind(["date", "row-id", "request-type"])
    with pytest.raises(RecordRejected, match="no date or no time"):
        bound(["2024-03-04", "x", "Certify"], "p", 0, "")


def test_keep_original() -> None:
    event = normalise(keep_original=True)
    assert event["event"]["original"] == "\t".join(BASE[f] for f in FIELDS_17)


def test_cached_parts_are_not_shared_between_events() -> None:
    bound = RmsNormaliser().bind(FIELDS_17)
    values = [BASE[f] for f in FIELDS_17]
    first = bound(values, "p", 0, "")
    first["user"]["name"] = "changed"
    first["user_agent"]["os"]["name"] = "changed"
    first["event"]["id"] = "changed"
    first["azure_rms"]["client"]["sdk_name"] = "changed"
    first["file"]["name"] = "changed"
    second = bound(values, "p", 0, "")
    assert second["user"]["name"] == "rupert.jackson"
    assert second["user_agent"]["os"]["name"] == "Windows"
    assert second["event"]["id"] == BASE["row-id"]
    assert second["azure_rms"]["client"]["sdk_name"] == "MSIPC"
    assert second["file"]["name"] == "Pricing_v8.docx"


def test_unknown_fields_are_kept_without_overwriting_own_fields() -> None:
    fields = [*FIELDS_17, "x-region", "client"]
    values = [BASE[f] for f in FIELDS_17] + ["westeurope", "raw client"]
    event = RmsNormaliser().bind(fields)(values, "p", 0, "")
    assert event["azure_rms"]["x_region"] == "westeurope"
    assert event["azure_rms"]["field_client"] == "raw client"
    assert event["azure_rms"]["client"]["sdk_name"] == "MSIPC"


def test_15_field_layout() -> None:
    event = normalise(fields=FIELDS_15, admin_action="true", acting_as_user="x@contoso.com")
    assert "admin_action" not in event["azure_rms"]
    assert "user" in event and "target" not in event["user"]
    assert event["source"]["ip"] == BASE["c-ip"]


# --- files: fixtures and the examples folder ---------------------------------------------------


def read_w3c(path: Path) -> Iterator[tuple[list[str], list[str], int, str]]:
    """(fields, values, byte offset, line) for each record line under a ``#Fields`` header.

    A stand-in for the W3C source, so these tests depend on nothing but the normaliser.
    """
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF16_LE):
        text, unit, skip = data[2:].decode("utf-16-le"), 2, 2
    elif data.startswith(codecs.BOM_UTF8):
        text, unit, skip = data[3:].decode("utf-8"), 1, 3
    else:
        text, unit, skip = data.decode("utf-8"), 1, 0
    offset = skip
    fields: list[str] = []
    for line in text.splitlines(keepends=True):
        size = len(line.encode("utf-8")) if unit == 1 else len(line) * 2
        bare = line.rstrip("\r\n")
        if bare.startswith("#Fields:"):
            fields = bare[len("#Fields:") :].strip().split("\t")
        elif bare and not bare.startswith("#"):
            yield fields, bare.split("\t"), offset, bare
        offset += size


def normalise_file(path: Path, normaliser: RmsNormaliser) -> tuple[list[Any], list[str]]:
    events, rejected = [], []
    for fields, values, offset, line in read_w3c(path):
        if len(values) != len(fields):
            rejected.append(f"expected {len(fields)} fields, found {len(values)}")
            continue
        try:
            events.append(normaliser.bind(fields)(values, str(path), offset, line))
        except RecordRejected as e:
            rejected.append(str(e))
    return events, rejected


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_file())


def test_golden_fixture() -> None:
    events, rejected = normalise_file(FIXTURES / "acquire_license.log", RmsNormaliser())
    assert not rejected
    expected = orjson.loads((FIXTURES / "acquire_license.expected.json").read_bytes())
    got = orjson.loads(orjson.dumps(events[0]))
    got["log"]["file"]["path"] = expected["log"]["file"]["path"]
    assert got == expected


def test_other_field_order_binds_by_name() -> None:
    (event,), rejected = normalise_file(FIXTURES / "reordered_fields.log", RmsNormaliser())
    assert not rejected
    assert event["@timestamp"] == "2024-03-05T10:11:12.500Z"
    assert event["event"]["action"] == "GetAllDocs"
    assert event["event"]["id"] == "9a8b7c6d-5e4f-4321-8fed-cba987654321"
    assert event["user"]["email"] == "admin.carol@contoso.com"
    assert event["user"]["target"]["email"] == "dave.brown@contoso.com"
    assert event["azure_rms"]["admin_action"] is True
    assert event["azure_rms"]["c_ip"] == "not-an-ip"
    assert event["azure_rms"]["x_tenant_hint"] == "contoso-eu"
    assert "template_id" not in event["azure_rms"]


def test_legacy_fixture() -> None:
    (event,), rejected = normalise_file(FIXTURES / "legacy_15_fields.log", RmsNormaliser())
    assert not rejected
    assert event["event"]["category"] == ("authentication",)
    assert event["user_agent"]["os"]["type"] == "ios"
    assert event["source"]["ip"] == "2a02:8108:1a2b:3c4d::beef:1"


def test_examples_folder() -> None:
    normaliser = RmsNormaliser(keep_original=True)
    ids: list[str] = []
    rejected: list[str] = []
    total = 0
    for path in example_files():
        events, bad = normalise_file(path, normaliser)
        total += len(events) + len(bad)
        rejected += bad
        ids += [e["event"]["id"] for e in events]
    assert total >= 300
    assert sorted(rejected) == [
        "expected 15 fields, found 9",
        "expected 17 fields, found 18",
        "unparseable time '25:99:00'",
    ]
    # the re-download repeats 20 records of another file, with the same ids
    assert len(ids) - len(set(ids)) == 20


def test_request_type_pairings_are_ones_ecs_expects() -> None:
    table = yaml.safe_load((REPO / "mappings" / "rms" / "request_types.yaml").read_text())
    documented = {
        "AcquireLicense AcquireOfflineAuthorizationLicense AcquirePreLicense AcquireTemplates "
        "AcquireTemplateInformation AddTemplate AllDocsCsv BECreateEndUserLicenseV1 "
        "BEGetAllTemplatesV1 Certify FECreateEndUserLicenseV1 FECreatePublishingLicenseV1 "
        "FindServiceLocationsForUser GetAllDocs GetAllTemplateIds GetCertificationInformation "
        "GetClientLicensorCert GetConfiguration GetConnectorAuthorizations GetRecipients GetSingle "
        "GetTenantFunctionalState GetTemplateById ExportTemplateById KeyVaultDecryptRequest "
        "KeyVaultGetKeyInfoRequest KeyVaultSignDigest KMSPDecrypt KMSPSignDigest LoadEventsForMap "
        "LoadEventsForSummary LoadEventsForTimeline ImportTemplate RevokeAccess SearchUsers "
        "ServerCertify SetUsageLogFeatureState SetUsageLogStorageAccount SignDigest "
        "UpdateNotificationSettings UpdateTemplate"
    }.pop().split()
    assert set(documented) <= set(table["request_types"])
    if not ECS_FLAT.is_file():
        pytest.skip("../shared/ecs/ecs_flat.yml is not available")
    ecs = yaml.safe_load(ECS_FLAT.read_text(encoding="utf-8"))
    expected = {
        a["name"]: set(a.get("expected_event_types") or [])
        for a in ecs["event.category"]["allowed_values"]
    }
    for name, spec in [*table["request_types"].items(), ("default", table["default"])]:
        assert spec.get("description") or name == "default", name
        allowed = set().union(*(expected[c] for c in spec["category"]))
        assert set(spec["type"]) <= allowed, name


def test_events_pass_the_ecs_checker(tmp_path: Path) -> None:
    if not (ECS_FLAT.is_file() and ECS_CHECK.is_file()):
        pytest.skip("../shared (ECS field list and checker) is not available")
    normaliser = RmsNormaliser(keep_original=True)
    events: list[Any] = []
    for path in [*example_files(), *sorted(FIXTURES.glob("*.log"))]:
        events += normalise_file(path, normaliser)[0]
    events += [normalise(**{k.replace("-", "_"): v for k, v in c[1].items()}) for c in CASES]
    out = tmp_path / "events.ndjson"
    out.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    result = subprocess.run(
        [
            sys.executable,
            str(ECS_CHECK),
            "--ecs",
            str(ECS_FLAT),
            "--custom-prefix",
            "azure_rms.",
            "--check-category-type",
            "--expect-ecs-version",
            ECS_VERSION,
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- bind_json: the same events as JSON --------------------------------------------------------

GEN_RMS = SHARED / "bench" / "gen_rms.py"


def check_json_equals_dict(
    normaliser: RmsNormaliser,
    fields: list[str],
    values: list[str],
    path: str,
    offset: int,
    line: str,
) -> None:
    """bind_json gives bind's event (as JSON), its id, timestamp and header fields (as the
    syslog output would read them from the JSON), or rejects it the same way; asked for
    msgpack too (Fluentd's records), the same event as msgpack: member for member, in the same
    order, so that it gives back the very JSON."""
    try:
        event = normaliser.bind(fields)(values, path, offset, line)
    except RecordRejected as e:
        with pytest.raises(RecordRejected) as caught:
            normaliser.bind_json(fields)(values, path, offset, line)
        assert str(caught.value) == str(e)
        return
    event_id, timestamp, data, header = normaliser.bind_json(fields)(values, path, offset, line)
    assert isinstance(data, bytes)
    assert orjson.loads(data) == orjson.loads(orjson.dumps(event))
    assert (event_id, timestamp) == (event["event"]["id"], event["@timestamp"])
    assert header == header_fields(data)
    normaliser.msgpack = True  # read when binding
    try:
        *same, record = normaliser.bind_json(fields)(values, path, offset, line)
    finally:
        normaliser.msgpack = False
    assert same == [event_id, timestamp, data, header]
    assert orjson.dumps(msgspec.msgpack.decode(record)) == data


def check_file(path: Path, normaliser: RmsNormaliser) -> int:
    count = 0
    for fields, values, offset, line in read_w3c(path):
        if len(values) == len(fields):
            check_json_equals_dict(normaliser, fields, values, str(path), offset, line)
            count += 1
    return count


@pytest.mark.parametrize("keep_original", [False, True])
def test_bind_json_equals_bind_on_files(keep_original: bool) -> None:
    normaliser = RmsNormaliser(keep_original=keep_original)
    files = [*example_files(), *sorted(FIXTURES.glob("*.log"))]
    assert sum(check_file(path, normaliser) for path in files) >= 300


def test_bind_json_equals_bind_on_generated_corpus(tmp_path: Path) -> None:
    if not GEN_RMS.is_file():
        pytest.skip("../shared/bench/gen_rms.py is not available")
    command = [sys.executable, str(GEN_RMS), str(tmp_path), "--files", "2"]
    command += ["--lines-per-file", "10000", "--seed", "3", "--legacy-fraction", "0.5"]
    subprocess.run(command, check=True, capture_output=True)
    normaliser = RmsNormaliser()
    assert sum(check_file(path, normaliser) for path in sorted(tmp_path.iterdir())) == 20_000


JSON_EDGE_CASES: list[tuple[str, dict[str, str]]] = [
    ("ordinary", {}),
    (
        "quotes, backslashes and control characters everywhere",
        {
            "row-id": 'r"1\\x\x01',
            "correlation-id": "c\x1f\x7f",
            "user-id": "'o\"brien\\x@contoso.com'",
            "owner-email": 'q"\\@contoso.com',
            "issuer": "\x00@x",
            "file-name": 'C:\\Users\\"me"\\a\x08b.docx',
            "c-info": "'MSIPC;version=\"1\";AppName=A\\B;OSName=Win\x0bdows'",
            "c-ip": '1.2.3.4"',
            "acting-as-user": 'a"b@c\\d',
            "admin-action": 'Tr"ue',
            "date-published": '2022"12',
            "content-id": '{"x\\}',
            "template-id": "\r\n",
        },
    ),
    (
        "non-ASCII and emoji",
        {
            "row-id": "ид-1",
            "correlation-id": "😀",
            "user-id": "'zoë.müller@exämple.de'",
            "file-name": "Résumé 📄 报告.docx",
            "owner-email": "δ@ε.gr",
            "acting-as-user": "🙂@x.io",
            "c-info": "'MSIPC;AppName=Wörd™;OSName=Windows'",
        },
    ),
    ("empty fields", {name: "" for name in FIELDS_17 if name not in ("date", "time", "row-id")}),
    ("only a correlation-id", {"row-id": "-", "correlation-id": "corr-1"}),
    ("a row-id without correlation-id", {"correlation-id": "''"}),
    ("invalid IP", {"c-ip": "999.1.1.1"}),
    ("IPv6", {"c-ip": "2a02:8108:fd4b:70ba::64bf:8cb"}),
    ("failure", {"result": "'AccessDenied'"}),
    ("unknown result text", {"result": "'Weird \"thing\"'"}),
    ("service principal", {"user-id": f"'{O365}'", "issuer": O365, "owner-email": O365}),
    ("acting as someone without @", {"acting-as-user": "dave", "user-id": "''"}),
    ("unexpected admin-action", {"admin-action": "maybe"}),
    ("US date-published", {"date-published": "12/17/2022 11:12:26 PM"}),
    ("fraction of a second", {"time": "21:59:28.1234567891"}),
    ("rejected: bad time", {"time": "25:99:00"}),
    ("rejected: bad seconds", {"time": "09:14:60"}),
    ("time without leading zero", {"time": "9:14:07"}),
    ("time with a fraction", {"time": "09:14:07.5"}),
    ("braces and spaces in ids", {"row-id": "{r 1}", "correlation-id": "c}"}),
    (
        "content-id with spaces inside its braces",
        {"content-id": "{ 271B6308-150D-49D2-8D1B-77789 }"},
    ),
    ("content-id with doubled braces", {"content-id": "{{271b6308-150d-49d2-8d1b-7778}}"}),
    ("content-id in quotes", {"content-id": "'{271B6308-150D-49D2-8D1B-777891F8C298}'"}),
    ("bare content-id", {"content-id": "271B6308-150D-49D2-8D1B-777891F8C298"}),
    ("empty-marker correlation-id", {"correlation-id": '""'}),
    ("empty-marker content-id", {"content-id": "'-'", "template-id": "-"}),
    ("date-published with an offset", {"date-published": "2022-12-17T11:12+01"}),
    ("date-published in UTC", {"date-published": "2022-12-17T11:12:2Z"}),
    ("date-published as a week date", {"date-published": "2022-W50-6T11:12:2"}),
    ("date-published with a space", {"date-published": "2022-12-17 11:12:26"}),
    ("date-published out of range", {"date-published": "2022-13-17T11:12:26"}),
    ("owner is the user, issuer differs", {"owner-email": "rupert.jackson@contoso.com"}),
    ("issuer without @", {"issuer": "Aadrm_S-1-7-0", "owner-email": ""}),
    ("owner and issuer without @", {"issuer": "svc", "owner-email": "svc"}),
    ("acting as the user", {"acting-as-user": "rupert.jackson@contoso.com"}),
    ("acting as someone, no IP", {"acting-as-user": "x@y.z", "c-ip": ""}),
    ("not an IP, no users", {"c-ip": "unknown", "user-id": "''", "owner-email": "", "issuer": ""}),
    ("rejected: bad date", {"date": "2024-02-30"}),
    ("rejected: no identity", {"row-id": "''", "correlation-id": "-"}),
]


@pytest.mark.parametrize("keep_original", [False, True])
@pytest.mark.parametrize(
    "changes", [c[1] for c in JSON_EDGE_CASES], ids=[c[0] for c in JSON_EDGE_CASES]
)
def test_bind_json_equals_bind_on_edge_cases(changes: dict[str, str], keep_original: bool) -> None:
    normaliser = RmsNormaliser(keep_original=keep_original)
    record = {**BASE, **changes}
    line = 'a "quoted"\tline\twith \\ tabs\r\n'
    for fields in (FIELDS_17, FIELDS_15, list(reversed(FIELDS_17))):
        values = [record[name] for name in fields]
        for path in ("/logs/000000001", 'C:\\logs\\"x"\\ü.log'):
            check_json_equals_dict(normaliser, fields, values, path, 12345, line)
        # the second time every piece comes from the caches
        check_json_equals_dict(normaliser, fields, values, "/logs/000000001", 0, line)


def test_bind_json_unknown_fields_and_odd_headers() -> None:
    normaliser = RmsNormaliser(keep_original=True)
    fields = [*FIELDS_17, "x-region", "client", "Field-Client", "x_region", "x-quote"]
    values = [BASE[f] for f in FIELDS_17] + ["westeurope", "raw client", "", "dup", 'say "hi"\\']
    line = "\t".join(values)
    check_json_equals_dict(normaliser, fields, values, "p", 1, line)
    check_json_equals_dict(normaliser, fields, [*values[:-4], "-", "", "", "", ""], "p", 2, line)
    # a header without time rejects every record, in both
    check_json_equals_dict(normaliser, ["date", "row-id"], ["2024-03-04", "x"], "p", 0, "")
    # a header with only some known fields
    fields = ["time", "date", "correlation-id", "c-ip", "x-extra"]
    values = ["01:02:03", "2024-03-04", "c-1", "10.0.0.1", "e"]
    check_json_equals_dict(normaliser, fields, values, "p", 3, "\t".join(values))


def test_bind_json_rejects_like_bind() -> None:
    values = [{**BASE, "row-id": "", "correlation-id": ""}[f] for f in FIELDS_17]
    for bind in (RmsNormaliser().bind, RmsNormaliser().bind_json):
        with pytest.raises(RecordRejected, match="no row-id and no correlation-id"):
            bind(FIELDS_17)(values, "p", 0, "")


def cache_sizes(normaliser: RmsNormaliser) -> dict[str, int]:
    """Entries per cache (every dict on the instance but the mapping tables)."""
    tables = {"_request_types", "_principal_ids", "_tenant_services"}
    return {
        k: len(v) for k, v in vars(normaliser).items() if isinstance(v, dict) and k not in tables
    }


def test_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shipper.normalise.rms.CACHE_LIMIT", 3)
    normaliser = RmsNormaliser()
    for i in range(20):
        record = {
            **BASE,
            "user-id": f"u{i}@x.com",
            "owner-email": f"o{i}@x.com",
            "issuer": f"i{i}@x.com",
            "acting-as-user": f"a{i}@x.com",
            "file-name": f"f{i}.txt",
            "c-ip": f"10.0.0.{i}",
            "c-info": f"'MSIPC;AppName=A{i}'",
            "template-id": f"{{t{i}}}",
            "request-type": f"R{i}",
            "admin-action": f"x{i}",
            "date": f"2024-03-{i + 1:02d}",
        }
        values = [record[f] for f in FIELDS_17]
        check_json_equals_dict(normaliser, FIELDS_17, values, f"/p{i}", i, "")
    sizes = cache_sizes(normaliser)
    limit = {k: 3 * (PACKED_SHARE if k.startswith("_packed") else 1) for k in sizes}
    assert len(sizes) >= 10 and all(size <= limit[k] for k, size in sizes.items()), sizes
    assert sizes["_packed_members"] > 3  # (check_json_equals_dict packs them too)


def test_values_new_in_every_record_are_not_cached() -> None:
    """Row ids, times, content ids and publication dates never grow a cache."""
    normaliser = RmsNormaliser()
    for fields in (FIELDS_17, FIELDS_15):
        bound = normaliser.bind_json(fields)
        for i in range(500):
            record = {
                **BASE,
                "row-id": f"row-{i}",
                "correlation-id": f"corr-{i}",
                "time": f"{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}",
                "content-id": f"{{{i:08x}-150d-49d2-8d1b-777891f8c298}}",
                "date-published": f"2022-12-17T11:{i // 60 % 60:02d}:{i % 60:02d}",
            }
            bound([record[f] for f in fields], "/logs/000000001", i, "")
    assert sum(cache_sizes(normaliser).values()) < 20, cache_sizes(normaliser)


def test_bind_json_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shipper.normalise.rms.CACHE_LIMIT", 3)
    normaliser = RmsNormaliser()
    for i in range(20):
        record = {**BASE, "user-id": f"u{i}@x.com", "file-name": f"f{i}.txt", "c-ip": f"10.0.0.{i}"}
        values = [record[f] for f in FIELDS_17]
        check_json_equals_dict(normaliser, FIELDS_17, values, f"/p{i}", i, "")
    caches = [v for k, v in vars(normaliser).items() if k.endswith("_json")]
    assert caches and all(len(cache) <= 3 for cache in caches)
