"""RMS connector events: what each one means, what to do, and who connected.

The catalog (``mappings/windows/rms_connector_events.yaml``) turns an event id into a title,
an explanation and an action an analyst can follow, plus its ECS classification. Events that
name a connecting server (1002, 1003, 2001, 2002) carry its SID, account and computer only in
the message text, so they are pulled out into ``user.*`` and ``client.*`` here; without that a
refused server (2001) could not be searched for. Event ids missing from the catalog ship
unchanged, with ``rms_connector.known: false``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shipper.mappings import load_yaml

CATALOG = "windows/rms_connector_events.yaml"

_SID = re.compile(r"\b(S-1-\d+(?:-\d+)+)\b")
_ACCOUNT = re.compile(
    r"(?im)^[ \t]*(?:account|user)(?:[ \t]*name)?[ \t]*[:=][ \t]*(\S[^\r\n]*?)[ \t]*$"
)
_COMPUTER = re.compile(
    r"(?im)^[ \t]*(?:computer|client|machine|host)(?:[ \t]*name)?[ \t]*[:=]"
    r"[ \t]*(\S[^\r\n]*?)[ \t]*$"
)


class _Entry:
    __slots__ = ("fields", "event", "identity", "causes", "default_cause", "level")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.fields = {
            "known": True,
            "title": raw["title"],
            "meaning": raw["meaning"],
            "action_required": raw["action"],
        }
        self.event = {k: raw[k] for k in ("category", "type", "outcome") if k in raw}
        self.identity = bool(raw.get("identity"))
        self.level = raw.get("level")
        self.default_cause = raw.get("default_cause")
        self.causes = [
            (re.compile(c["match"]), c["cause"], c.get("explanation"), c.get("action"))
            for c in raw.get("causes", ())
        ]


def parse_identity(message: str) -> dict[str, str]:
    """SID, account (DOMAIN\\name or name@domain) and computer named in a message."""
    out: dict[str, str] = {}
    if m := _SID.search(message):
        out["sid"] = m.group(1)
    if m := _ACCOUNT.search(message):
        account = m.group(1)
        if not _SID.fullmatch(account):
            out["account"] = account
    if m := _COMPUTER.search(message):
        out["computer"] = m.group(1)
    return out


def build() -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """Compile the catalog once; the returned function enriches an ECS event in place."""
    catalog = {str(k): _Entry(v) for k, v in load_yaml(CATALOG)["events"].items()}

    def enrich(event: dict[str, Any], rec: dict[str, Any]) -> None:
        entry = catalog.get(event["event"]["code"])
        if entry is None:
            event["rms_connector"] = {"known": False}
            return
        fields = dict(entry.fields)
        event["event"].update(entry.event)
        if "level" not in event["log"] and entry.level:
            event["log"]["level"] = entry.level
        message = event.get("message") or ""
        for pattern, cause, explanation, action in entry.causes:
            if pattern.search(message):
                fields["cause"] = cause
                if explanation:
                    fields["cause_explanation"] = explanation
                if action:
                    fields["action_required"] = action
                break
        else:
            if entry.default_cause:
                fields["cause"] = entry.default_cause
        if entry.identity and message:
            who = parse_identity(message)
            _identity_fields(event, who)
        event["rms_connector"] = fields

    return enrich


def _identity_fields(event: dict[str, Any], who: dict[str, str]) -> None:
    user: dict[str, Any] = {}
    if "sid" in who:
        user["id"] = who["sid"]
    account = who.get("account")
    if account:
        if "\\" in account:
            domain, _, name = account.partition("\\")
            user["domain"], user["name"] = domain, name
        elif "@" in account:
            name, _, domain = account.partition("@")
            user["name"], user["domain"] = name, domain
        else:
            user["name"] = account
    if user:
        event["user"] = user
        if "name" in user:
            event["related"] = {"user": [user["name"]]}
    computer = who.get("computer")
    if computer:
        event["client"] = {"domain": computer, "address": computer}
