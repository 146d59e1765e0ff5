"""ECMA2Host trace messages: appendix split off, SCIM details pulled out, secrets removed."""

from __future__ import annotations

from shipper.normalise.ecma2host import redact
from shipper.normalise.winlog import normalise


def event(message: str, provider: str = "ConnectorsLog", level: int = 4) -> dict:
    rec = {"time": "2024-03-04T14:14:07Z", "event_id": "0", "provider": provider, "level": level,
           "channel": "ECMA2Host", "computer": "PROV01", "record_id": 5,
           "event_data": {"param1": message}}  # fmt: skip
    return normalise(rec, "ecma.evtx")


def test_trace_listener_appendix_is_split_into_fields() -> None:
    ev = event(
        "Export failed for connector 'CORPDB1'.\r\n"
        "System.Data.Odbc.OdbcException: Login failed for user 'svc-ecma'.\r\n"
        "    DateTime=2024-03-04T14:18:07.9912003Z\r\n"
        "    Callstack=   at System.Environment.get_StackTrace()\r\n   at X.Export()\r\n"
        "    ProcessId=4412\r\n    ThreadId=27",
        level=2,
    )
    assert ev["message"].endswith("Login failed for user 'svc-ecma'.")
    assert "DateTime=" not in ev["message"]
    assert ev["ecma2host"]["trace"]["datetime"] == "2024-03-04T14:18:07.9912003Z"
    assert ev["process"] == {"pid": 4412, "thread": {"id": 27}}
    assert ev["error"]["type"] == "System.Data.Odbc.OdbcException"
    assert "X.Export" in ev["error"]["stack_trace"]
    assert ev["ecma2host"]["connector"] == "CORPDB1"


def test_scim_request_details() -> None:
    ev = event(
        "SCIM request received: GET /ecma2host_CORPDB1/scim/Users?filter=userName%20eq%20"
        "%22adele.vance%40contoso.com%22 connector: CORPDB1"
    )
    assert ev["http"]["request"]["method"] == "GET"
    assert ev["url"]["path"] == "/ecma2host_CORPDB1/scim/Users"
    assert ev["ecma2host"]["scim"]["resource_type"] == "Users"
    assert ev["ecma2host"]["scim"]["filter"] == 'userName eq "adele.vance@contoso.com"'
    assert ev["user"]["name"] == "adele.vance@contoso.com"
    status = event("SCIM POST /scim/Users completed. Status: 201.")
    assert status["http"]["response"]["status_code"] == 201


def test_secrets_never_leave_the_machine() -> None:
    ev = event(
        "Connection string: Driver={ODBC};Server=sql01;Uid=svc;Pwd=Winter2024!;\r\n"
        "Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.abc.def"
    )
    doc = str(ev)
    assert "Winter2024" not in doc and "eyJ0eXAi" not in doc
    assert "***" in ev["message"] and "***" in ev["winlog"]["event_data"]["param1"]
    assert redact("Server=a;Password=p@ss;Database=b") == "Server=a;Password=***;Database=b"
    assert redact("pwd = hunter2") == "pwd = ***"
    assert redact("the secret token did not match") == "the secret token did not match"
    # as event XML exports write quotes: the raw text of a quarantined record
    assert redact("<Data>Password=&quot;Winter 2024&quot; user=&apos;svc&apos;</Data>") == (
        "<Data>Password=*** user=&apos;svc&apos;</Data>"
    )
    assert redact("connection string=&apos;Server=a;Pwd=x&apos; done") == (
        "connection string=*** done"
    )
