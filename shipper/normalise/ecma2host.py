"""ECMA2Host events: free-text trace messages made searchable, with secrets removed.

ECMA2Host writes to its event log through .NET's ``EventLogTraceListener``, so a record is one
string: the message, possibly followed by the listener's appendix lines (``DateTime=``,
``Timestamp=``, ``Callstack=`` ...). The appendix is split off into ``ecma2host.trace.*`` so
the message reads as written; the SCIM request (method, resource path, filter), HTTP status,
connector name and exception type are pulled out where the text has them. The patterns live in
``mappings/windows/ecma2host.yaml``.

``redact`` runs on every Windows event's message and event data (not just ECMA2Host's):
connector configuration errors quote connection strings and tokens, and nothing secret may
leave the machine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any
from urllib.parse import unquote

from shipper.mappings import load_yaml

PATTERNS = "windows/ecma2host.yaml"
MASK = "***"


_WORDS = re.compile(r"\(\?i\)([a-z0-9_]+(?:\|[a-z0-9_]+)*)")


class _Redaction:
    """The compiled redaction rules.

    ``trigger`` is the cheap regex that decides whether any pattern can apply; when it is a
    plain list of alternatives (``(?i)a|b|c``), ``words`` holds them, and ASCII text is tested
    with ``in`` on its lower-case form instead (the same answer: on ASCII text, (?i) is plain
    lower-casing; non-ASCII text, where (?i) also folds e.g. the Kelvin sign to "k", takes the
    regex). ``patterns`` pairs each pattern with its ``when`` words (empty: always run).
    """

    __slots__ = ("trigger", "words", "patterns")

    def __init__(self, spec: dict[str, Any]) -> None:
        self.trigger = re.compile(spec["redact_trigger"])
        m = _WORDS.fullmatch(spec["redact_trigger"])
        self.words: tuple[str, ...] = tuple(m.group(1).split("|")) if m else ()
        self.patterns: list[tuple[re.Pattern[str], tuple[str, ...]]] = []
        for entry in spec["redact"]:
            if isinstance(entry, str):
                self.patterns.append((re.compile(entry), ()))
            else:
                when = tuple(w.lower() for w in entry.get("when") or ())
                self.patterns.append((re.compile(entry["pattern"]), when))


@cache
def _redaction() -> _Redaction:
    return _Redaction(load_yaml(PATTERNS))


_KEEP = r"\g<keep>" + MASK


def redact(text: str) -> str:
    """Replace secrets (passwords, tokens, connection strings) with ``***``."""
    if not isinstance(text, str):
        return text
    rules = _redaction()
    words = rules.words
    if words and text.isascii():
        low = text.lower()
        for w in words:
            if w in low:
                break
        else:
            return text  # most texts: no keyword, nothing to do
    elif not rules.trigger.search(text):
        return text
    else:
        low = ""  # not ASCII: every pattern runs
    for pattern, when in rules.patterns:
        if when and low:
            for w in when:
                if w in low:
                    break
            else:
                continue
        text, n = pattern.subn(_KEEP, text)
        if n and low:
            low = text.lower()
    return text


def _setpath(event: dict[str, Any], dotted: str, value: Any) -> None:
    node = event
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node.setdefault(leaf, value)


def split_appendix(message: str, keys: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Message text and the ``Key=value`` lines EventLogTraceListener appended to it."""
    lines = message.splitlines()
    starts = tuple(k + "=" for k in keys)
    i = next((n for n, line in enumerate(lines) if line.lstrip().startswith(starts)), -1)
    if i < 0:
        return message, {}
    appendix: dict[str, str] = {}
    current = None
    for line in lines[i:]:
        stripped = line.lstrip()
        if stripped.startswith(starts):
            current, _, value = stripped.partition("=")
            appendix[current] = value.strip()
        elif current is not None:
            appendix[current] = (appendix[current] + "\n" + line.rstrip()).strip()
    return "\n".join(lines[:i]).rstrip(), appendix


def build() -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """Compile the patterns once; the returned function enriches an ECS event in place."""
    spec = load_yaml(PATTERNS)
    keys = tuple(spec["appendix_keys"])
    extract = [re.compile(p) for p in spec["extract"]]
    filter_user = re.compile(spec["filter_user"])

    def enrich(event: dict[str, Any], rec: dict[str, Any]) -> None:
        message = event.get("message")
        if not message:
            return
        text, appendix = split_appendix(message, keys)
        ecma: dict[str, Any] = {}
        if appendix:
            event["message"] = text
            trace: dict[str, Any] = {}
            for key, value in appendix.items():
                if key == "ProcessId" and value.isdigit():
                    event.setdefault("process", {})["pid"] = int(value)
                elif key == "ThreadId" and value.isdigit():
                    event.setdefault("process", {}).setdefault("thread", {})["id"] = int(value)
                else:
                    trace[key.lower()] = value
            if trace:
                ecma["trace"] = trace
        found: dict[str, str] = {}
        for pattern in extract:
            m = pattern.search(text)
            if m:
                for name, value in m.groupdict().items():
                    if value and name not in found:
                        found[name] = value
        for name, value in found.items():
            field = name.replace("__", ".")
            if field == "http.response.status_code":
                _setpath(event, field, int(value))
            elif field == "ecma2host.scim.filter":
                value = unquote(value).strip()
                ecma.setdefault("scim", {})["filter"] = value
                if m := filter_user.search(value):
                    _setpath(event, "user.name", m.group("user"))
            elif field.startswith("ecma2host."):
                _setpath(ecma, field.partition(".")[2], value)
            else:
                _setpath(event, field, value)
        if "error" in event and "Callstack" in appendix:
            event["error"].setdefault("stack_trace", appendix["Callstack"])
        if ecma:
            event["ecma2host"] = ecma

    return enrich
