"""A corpus with every detection scenario planted among normal activity, and what should fire.

Background: ``../shared/bench/gen_rms.py`` (4,000 RMS usage records over 2024-03-04/05, a
Monday and a Tuesday) plus two RMS connector hosts logging their 1004 heartbeat every 15
minutes and ordinary 1000/1002 events. Planted on Tuesday 2024-03-05 (UTC), each scenario by
its own user, document or host, written as the service and the connector write them (W3C
lines; wevtutil event XML):

=================  =============================================================
after_hours        night.owl: 25 openings 02:10-02:34 (outside 08:00-18:00); night.worker:
                   15 on Monday night, 25 on Tuesday night (not far above their usual)
multiple_ips       traveller: requests from 4 addresses within 6 minutes
multiple_countries roamer: requests from Germany and Brazil 30 minutes apart
bulk               collector: 30 distinct documents within 6 minutes
denied_user        prober: 6 AccessDenied on 6 documents within 5 minutes
denied_document    one document refused to 6 different users within 40 minutes
admin              it.admin: GetAllDocs acting as victim, RevokeAccess, as admin
config_change      it.admin: UpdateTemplate, SetUsageLogFeatureState
connector          2001, 2002, 3001, 3000 with an empty response (and a 3000 without);
                   RMSCON02 stops logging 1004 at 20:00, RMSCON01 carries on
policy overdue     typeperf logs of both hosts, every 5 minutes: RMSCON02's "Time since
                   last authorization policy update" passes 900 s after its last 1004
=================  =============================================================

``EXPECTED`` names, per Sigma rule id, exactly what must fire: the groups (user, document,
host) of a correlation, or the planted event ids of a plain rule. A plain rule's background
hits are counted from the raw background files by :func:`background_admin_ids` (the generator
itself writes admin actions), never by running the rule.
"""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GEN = REPO.parent / "shared" / "bench" / "gen_rms.py"
DAY = "2024-03-05"
NOW = dt.datetime(2024, 3, 5, 23, 50, tzinfo=dt.timezone.utc)  # "now" for the absence rule

FIELDS = (
    "date time row-id request-type user-id result correlation-id content-id owner-email "
    "issuer template-id file-name date-published c-info c-ip admin-action acting-as-user"
).split()
CINFO = (
    "'MSIPC;version=1.0.4008.0;AppName=WINWORD.EXE;AppVersion=16.0.17328.20162;AppArch=x64;"
    "OSName=Windows;OSVersion=10.0.22631;OSArch=amd64'"
)

# Sigma rule ids (mappings/detections/sigma/*.yml)
AFTER_HOURS = "14154a54-51c6-4e28-84db-a46b6f1b51a2"
MULTIPLE_IPS = "79c1515a-8d5e-426f-ac99-9b482d88342f"
MULTIPLE_COUNTRIES = "cd77b553-c633-49e0-b5b5-37c87015b8b1"
BULK = "550e9174-9eda-4d1e-bbda-9cf8d7e7ac58"
DENIED_USER = "a64cba40-414c-41ad-b49c-ff311ed67be0"
DENIED_DOCUMENT = "72ac4d5a-15be-4b88-abe9-0f7257c4b2ae"
ADMIN = "a5b4b959-5114-4a9f-9169-d466c0ac46b6"
CONFIG_CHANGE = "07a9f0b0-d309-4e84-8ff2-eaf3901f404e"
UNAUTHORIZED = "04f03e59-4028-4443-b250-d29b3ed37dc3"
PLAIN_HTTP = "6644cee8-15ef-41a6-9f1a-c94b43c70049"
CONNECTIVITY = "7ea5a234-3bf2-4a1b-93c9-bfe68adc7f45"
SSL_INSPECTION = "006ae27c-0e77-4415-b434-ce6209b05ecc"
REFRESH_MISSING = "9a6aaa38-767a-4b05-bbaf-b2a763e3b5c4"
POLICY_OVERDUE = "cc2d196a-0c16-4f5a-811b-252c32613aa5"

# The networks of the tiny GeoIP database the test builds (GeoIP looks up only globally
# routable addresses, so roamer's two are real-world ones, placed here in two countries).
GEO_NETWORKS = {"85.214.0.0/16": "DE", "200.160.0.0/16": "BR"}
ROAMER_IPS = ("85.214.132.117", "200.160.2.3")
LEAKED_DOC = "0badc0de-0000-4000-8000-00000000f00d"


@dataclass
class Corpus:
    rms_dir: Path
    windows_dir: Path
    expected: dict[str, set[str]] = field(default_factory=dict)
    planted_ids: set[str] = field(default_factory=set)
    perf_dir: Path | None = None


def _guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _W3C:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[str] = []

    def add(
        self,
        time: str,
        request: str,
        user: str,
        *,
        result: str = "Success",
        content: str = "",
        ip: str = "203.0.113.5",
        admin: bool = False,
        acting_as: str = "",
        file_name: str = "",
        day: str = DAY,
    ) -> str:
        row_id = _guid(self.rng)
        owner = "vera.harris@contoso.com" if content else ""
        row = {
            "date": day,
            "time": time,
            "row-id": row_id,
            "request-type": request,
            "user-id": f"'{user}'",
            "result": f"'{result}'",
            "correlation-id": _guid(self.rng),
            "content-id": "{" + content + "}" if content else "",
            "owner-email": owner,
            "issuer": owner,
            "template-id": "",
            "file-name": file_name,
            "date-published": "2023-11-08T11:01:40" if content else "",
            "c-info": CINFO,
            "c-ip": ip,
            "admin-action": "true" if admin else "",
            "acting-as-user": acting_as,
        }
        self.lines.append("\t".join(row[f] for f in FIELDS))
        return row_id

    def text(self) -> str:
        head = "#Software: RMS\n#Version: 1.1\n#Fields: " + "\t".join(FIELDS) + "\n"
        return head + "".join(line + "\n" for line in self.lines)


def _clock(start: str, step_seconds: int, n: int) -> list[str]:
    t0 = dt.datetime.strptime(start, "%H:%M:%S")
    return [(t0 + dt.timedelta(seconds=i * step_seconds)).strftime("%H:%M:%S") for i in range(n)]


def _plant_usage(corpus: Corpus, rng: random.Random) -> str:
    w = _W3C(rng)
    exp = corpus.expected
    ids = corpus.planted_ids

    def doc() -> str:
        return _guid(rng)

    for t in _clock("02:10:00", 60, 25):
        ids.add(w.add(t, "AcquireLicense", "night.owl@contoso.com", content=doc()))
    # night.worker's nights reach 15 an hour (Monday), so 25 on Tuesday is not "far above"
    # their usual: the Sigma floor alone would fire, the Elastic rule must not
    for t in _clock("21:10:00", 50, 15):
        w.add(t, "AcquireLicense", "night.worker@contoso.com", content=doc(), day="2024-03-04")
    for t in _clock("21:05:00", 55, 25):
        ids.add(w.add(t, "AcquireLicense", "night.worker@contoso.com", content=doc()))
    exp[AFTER_HOURS] = {"night.owl@contoso.com"}

    addresses = ("198.51.100.7", "203.0.113.9", "192.0.2.44", "2001:db8:77::1")
    for t, ip in zip(_clock("10:01:00", 120, 4), addresses, strict=True):
        ids.add(w.add(t, "AcquireLicense", "traveller@contoso.com", content=doc(), ip=ip))
    exp[MULTIPLE_IPS] = {"traveller@contoso.com"}

    ids.add(w.add("11:05:00", "Certify", "roamer@contoso.com", ip=ROAMER_IPS[0]))
    ids.add(
        w.add("11:35:00", "AcquireLicense", "roamer@contoso.com", content=doc(), ip=ROAMER_IPS[1])
    )
    exp[MULTIPLE_COUNTRIES] = {"roamer@contoso.com"}

    for t in _clock("14:01:00", 12, 30):
        ids.add(
            w.add(t, "AcquireLicense", "collector@contoso.com", content=doc(), ip="203.0.113.77")
        )
    exp[BULK] = {"collector@contoso.com"}

    for t in _clock("15:01:00", 50, 6):
        ids.add(
            w.add(t, "AcquireLicense", "prober@contoso.com", result="AccessDenied", content=doc())
        )
    exp[DENIED_USER] = {"prober@contoso.com"}

    for i, t in enumerate(_clock("16:05:00", 480, 6)):
        ids.add(
            w.add(
                t,
                "AcquireLicense",
                f"outsider{i}@fabrikam.com",
                result="AccessDenied",
                content=LEAKED_DOC,
                file_name="Merger Plan (final).docx",
            )
        )
    exp[DENIED_DOCUMENT] = {LEAKED_DOC}

    admin = {
        w.add(
            "12:30:00",
            "GetAllDocs",
            "it.admin@contoso.com",
            admin=True,
            acting_as="victim@contoso.com",
        ),
        w.add("12:31:00", "RevokeAccess", "it.admin@contoso.com", content=doc(), admin=True),
    }
    ids |= admin
    exp[ADMIN] = admin

    config = {
        w.add("13:10:00", "UpdateTemplate", "it.admin@contoso.com"),
        w.add("13:12:00", "SetUsageLogFeatureState", "it.admin@contoso.com"),
    }
    ids |= config
    exp[CONFIG_CHANGE] = config
    return w.text()


# --- the connector --------------------------------------------------------------------------

_XML = (
    "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>"
    "<Provider Name='Microsoft RMS connector'/><EventID Qualifiers='0'>{code}</EventID>"
    "<Version>0</Version><Level>{level}</Level><Task>0</Task><Opcode>0</Opcode>"
    "<Keywords>0x80000000000000</Keywords><TimeCreated SystemTime='{when}'/>"
    "<EventRecordID>{record}</EventRecordID><Correlation/>"
    "<Execution ProcessID='0' ThreadID='0'/><Channel>Application</Channel>"
    "<Computer>{host}</Computer><Security/></System><EventData><Data>{text}</Data>"
    "</EventData></Event>"
)
_TEXT = {
    "1000": (4, "The Microsoft RMS connector web service has started."),
    "1002": (
        4,
        "Access to the Microsoft RMS connector has been allowed for an authorized server.\n\n"
        "SID: S-1-5-21-1-2-3-1105\nAccount Name: CONTOSO\\EXCH01$\n"
        "Computer Name: EXCH01.contoso.com",
    ),
    "1004": (
        4,
        "The list of authorized accounts has been updated.\n\nAuthorized accounts:\n"
        "CONTOSO\\EXCH01$\nCONTOSO\\RMS Servers",
    ),
    "2001": (
        3,
        "Unauthorized access attempt to Microsoft RMS connector.\n\n"
        "SID: S-1-5-21-1-2-3-2231\nAccount Name: CONTOSO\\SP-WEB03$\n"
        "Computer Name: SP-WEB03.contoso.com",
    ),
    "2002": (
        3,
        "The connection from the client listed below is using a non-secure (HTTP) "
        "connection.\n\nSID: S-1-5-21-1-2-3-1107\nAccount Name: CONTOSO\\FS-SRV02$\n"
        "Computer Name: FS-SRV02.contoso.com",
    ),
    "3001": (
        2,
        "An exception occurred while downloading authorization information.\n\n"
        "System.Net.WebException: Unable to connect to the remote server",
    ),
    "3000-ssl": (
        2,
        "An unhandled exception occurred in the Microsoft RMS connector.\n\n"
        "System.Net.WebException: The request failed with an empty response.\n"
        "   at Microsoft.RightsManagementServices.Connector.LicensingProxy.AcquireLicense()",
    ),
    "3000-other": (
        2,
        "An unhandled exception occurred in the Microsoft RMS connector.\n\n"
        "System.InvalidOperationException: The cache database is not available.",
    ),
}


def _connector(corpus: Corpus) -> str:
    events: list[tuple[dt.datetime, str, str]] = []
    start = dt.datetime(2024, 3, 4, 0, 0, tzinfo=dt.timezone.utc)
    silent_from = dt.datetime(2024, 3, 5, 20, 0, tzinfo=dt.timezone.utc)
    t = start
    while t <= NOW:
        events.append((t + dt.timedelta(seconds=7), "RMSCON01.contoso.com", "1004"))
        if t < silent_from:
            events.append((t + dt.timedelta(seconds=11), "RMSCON02.contoso.com", "1004"))
        if t.minute == 0 and t.hour % 3 == 0:
            events.append((t + dt.timedelta(minutes=2), "RMSCON01.contoso.com", "1002"))
            events.append((t + dt.timedelta(minutes=3), "RMSCON02.contoso.com", "1002"))
        t += dt.timedelta(minutes=15)
    events.append((start + dt.timedelta(seconds=1), "RMSCON01.contoso.com", "1000"))
    events.append((start + dt.timedelta(seconds=2), "RMSCON02.contoso.com", "1000"))
    planted = {
        UNAUTHORIZED: (dt.datetime(2024, 3, 5, 9, 20, tzinfo=dt.timezone.utc), "2001"),
        PLAIN_HTTP: (dt.datetime(2024, 3, 5, 9, 40, tzinfo=dt.timezone.utc), "2002"),
        CONNECTIVITY: (dt.datetime(2024, 3, 5, 17, 3, tzinfo=dt.timezone.utc), "3001"),
        SSL_INSPECTION: (dt.datetime(2024, 3, 5, 17, 33, tzinfo=dt.timezone.utc), "3000-ssl"),
    }
    for when, code in planted.values():
        events.append((when, "RMSCON01.contoso.com", code))
    other = dt.datetime(2024, 3, 5, 18, 1, tzinfo=dt.timezone.utc)
    events.append((other, "RMSCON01.contoso.com", "3000-other"))
    events.sort()
    out = []
    for record, (when, host, key) in enumerate(events, start=50000):
        level, text = _TEXT[key]
        out.append(
            _XML.format(
                code=key.split("-")[0],
                level=level,
                when=when.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
                record=record,
                host=host,
                text=text,
            )
        )
    # Plain rules over connector events are checked by (host.name, code, time): ids are
    # hashes. host.name is the Computer lower-cased, the FQDN.
    for rule_id, (when, code) in planted.items():
        corpus.expected[rule_id] = {f"rmscon01.contoso.com {code.split('-')[0]} {when:%H:%M}"}
    # host.hostname: the name the counters of the same host carry too (see _perf)
    corpus.expected[REFRESH_MISSING] = {"rmscon02"}
    return "".join(out)


def _perf(corpus: Corpus) -> dict[str, str]:
    """typeperf logs (file name -> text) of both connector hosts: the seconds since each
    host's last 1004 (as ``_connector`` writes them), sampled every 5 minutes."""
    rms = "Microsoft Rights Management connector"
    silent_from = dt.datetime(2024, 3, 5, 20, 0, 11, tzinfo=dt.timezone.utc)
    start = dt.datetime(2024, 3, 4, 0, 0, 30, tzinfo=dt.timezone.utc)
    out = {}
    for host, offset, silent in (("RMSCON01", 7, None), ("RMSCON02", 11, silent_from)):
        lines = [
            f'"(PDH-CSV 4.0) (GMT Standard Time)(0)","\\\\{host}\\{rms}\\Time since last'
            f' authorization policy update","\\\\{host}\\{rms}\\Licensing Successful'
            ' Batched Request Average Connector Response Time"'
        ]
        t = start
        while t <= NOW:
            since = ((t - start).seconds + 30 - offset) % 900
            if silent is not None and t > silent:
                since = int((t - silent).total_seconds())
            lines.append(f'"{t:%m/%d/%Y %H:%M:%S}.000","{since}","42.5"')
            t += dt.timedelta(minutes=5)
        out[f"{host.lower()}.csv"] = "\r\n".join(lines) + "\r\n"
    corpus.expected[POLICY_OVERDUE] = {"rmscon02"}
    return out


def build(root: Path) -> Corpus:
    """Write the background and the planted files under ``root``; return what must fire."""
    corpus = Corpus(root / "rms", root / "windows")
    subprocess.run(
        [
            sys.executable,
            str(GEN),
            str(corpus.rms_dir),
            "--files", "4",
            "--lines-per-file", "1000",
            "--days", "2",
            "--start", "2024-03-04",
            "--seed", "7",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    rng = random.Random(14)
    (corpus.rms_dir / "planted.log").write_text(_plant_usage(corpus, rng), encoding="utf-8")
    corpus.windows_dir.mkdir()
    (corpus.windows_dir / "connectors.xml").write_text(_connector(corpus), encoding="utf-8")
    corpus.perf_dir = root / "perf"
    corpus.perf_dir.mkdir()
    for name, text in _perf(corpus).items():
        (corpus.perf_dir / name).write_text(text, encoding="utf-8", newline="")
    return corpus


def background_admin_ids(rms_dir: Path) -> set[str]:
    """Row ids of the generator's own admin actions (admin-action true), read from the files."""
    out: set[str] = set()
    for path in rms_dir.iterdir():
        if path.name == "planted.log":
            continue
        fields: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#Fields:"):
                fields = line.split(":", 1)[1].strip().split("\t")
            elif line and not line.startswith("#"):
                row = dict(zip(fields, line.split("\t"), strict=False))
                if row.get("admin-action") == "true":
                    out.add(row["row-id"])
    return out
