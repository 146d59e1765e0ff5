"""RMS connector events become findings: title, meaning, action, who connected."""

from __future__ import annotations

from shipper.normalise.winlog import normalise

RMS = "Microsoft RMS connector"


def event(code: str, message: str, level: int = 4) -> dict:
    rec = {"time": "2024-03-04T14:14:07Z", "event_id": code, "provider": RMS, "level": level,
           "channel": "Application", "computer": "RMSCON01", "record_id": 1,
           "event_data": {"param1": message}}  # fmt: skip
    return normalise(rec, "app.xml")


def test_unauthorised_access_attempt_names_the_account_and_computer() -> None:
    ev = event(
        "2001",
        "Unauthorized access attempt to Microsoft RMS connector.\r\n\r\n"
        "SID: S-1-5-21-1-2-3-2231\r\nAccount Name: CONTOSO\\SP-WEB03$\r\n"
        "Computer Name: SP-WEB03.contoso.com",
        level=3,
    )
    assert ev["event"]["dataset"] == "rms_connector.events"
    assert ev["event"]["outcome"] == "failure"
    assert ev["event"]["category"] == ["authentication"]
    assert ev["user"] == {"id": "S-1-5-21-1-2-3-2231", "domain": "CONTOSO", "name": "SP-WEB03$"}
    assert ev["client"]["domain"] == "SP-WEB03.contoso.com"
    assert ev["rms_connector"]["title"].startswith("Unauthorized access attempt")
    assert "administrator tool" in ev["rms_connector"]["action_required"]
    assert ev["log"]["level"] == "warning"


def test_3000_empty_response_is_flagged_as_ssl_inspection() -> None:
    message = (
        "An unhandled exception occurred in the Microsoft RMS connector.\n"
        "System.Net.WebException: The request failed with an empty response."
    )
    ev = event("3000", message, level=2)
    assert ev["rms_connector"]["cause"] == "ssl_inspection"
    assert "inspection" in ev["rms_connector"]["action_required"]
    other = event("3000", "An unhandled exception occurred. NullReferenceException", level=2)
    assert "cause" not in other["rms_connector"]


def test_3001_is_a_connectivity_problem() -> None:
    ev = event("3001", "An exception occurred while downloading authorization information.")
    assert ev["rms_connector"]["cause"] == "connectivity"
    assert "proxy" in ev["rms_connector"]["action_required"]


def test_unknown_ids_still_ship() -> None:
    ev = event("4242", "Something new.")
    assert ev["rms_connector"] == {"known": False}
    assert ev["message"] == "Something new."


def test_every_documented_id_is_in_the_catalog() -> None:
    for code in ["1000", "1001", "1002", "1003", "1004", "2000", "2001", "2002", "2003",
                 "3000", "3001"]:  # fmt: skip
        ev = event(code, "text")
        assert ev["rms_connector"]["known"] is True, code
        assert ev["event"]["outcome"] in ("success", "failure")
