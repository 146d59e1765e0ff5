"""Enrichment as a user of the detection rules sees it: GeoIP fields and ``after_hours``.

The MaxMind databases are built here, small, with ``mmdb-writer`` (the ``test`` extra): a City
database and an ASN database covering a few networks, including a private one that must never
be looked up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.errors import ConfigError
from shipper.normalise.enrich import Enricher, EnrichSettings
from shipper.normalise.rms import ECS_VERSION, KNOWN_FIELDS, RmsNormaliser
from tests.conftest import rms_row, rms_text

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
ECS_FLAT = SHARED / "ecs" / "ecs_flat.yml"
ECS_CHECK = SHARED / "tools" / "ecs_check.py"

FIELDS = list(KNOWN_FIELDS)
LONDON_IP = "81.2.69.160"

LONDON = {
    "city": {"names": {"en": "London"}},
    "continent": {"code": "EU", "names": {"en": "Europe"}},
    "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
    "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
    "location": {"latitude": 51.5142, "longitude": -0.0931, "time_zone": "Europe/London"},
    "postal": {"code": "EC2V"},
}
BERLIN_V6 = {
    "country": {"iso_code": "DE", "names": {"en": "Germany"}},
    "continent": {"code": "EU", "names": {"en": "Europe"}},
    "location": {"latitude": 52.52, "longitude": 13.405, "time_zone": "Europe/Berlin"},
}


def write_mmdb(path: Path, networks: dict[str, dict[str, Any]], kind: str) -> Path:
    mmdb_writer = pytest.importorskip("mmdb_writer", reason="mmdb-writer (test extra) is absent")
    from netaddr import IPSet

    writer = mmdb_writer.MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind)
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    writer.to_db_file(str(path))
    return path


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("mmdb")
    city = write_mmdb(
        folder / "city.mmdb",
        {
            "81.2.69.0/24": LONDON,
            "2a02:8108::/32": BERLIN_V6,
            # private: present in the database, yet never looked up
            "10.0.0.0/8": {"country": {"iso_code": "XX", "names": {"en": "Nowhere"}}},
        },
        "GeoLite2-City",
    )
    asn = write_mmdb(
        folder / "asn.mmdb",
        {
            "81.2.69.0/24": {
                "autonomous_system_number": 20712,
                "autonomous_system_organization": "Andrews & Arnold Ltd",
            }
        },
        "GeoLite2-ASN",
    )
    return {"geoip_database": str(city), "asn_database": str(asn)}


def normalise(enrich: dict[str, Any] | None = None, **changes: str) -> dict[str, Any]:
    """The event of one record (Monday 2024-03-04 09:00 UTC from London, unless changed)."""
    values = rms_row(1, FIELDS, **{"c_ip": LONDON_IP, **changes})
    normaliser = RmsNormaliser(enrich=Enricher.from_options(enrich))
    event_id, stamp, data, _ = normaliser.bind_json(FIELDS)(values, "/logs/1", 0, "")
    event = orjson.loads(data)
    # the dict path is the same event
    assert normaliser.bind(FIELDS)(values, "/logs/1", 0, "").get("source") == event.get("source")
    return event


# --- off by default -------------------------------------------------------------------------


def test_off_by_default_adds_nothing() -> None:
    assert Enricher.from_options({}) is None
    assert Enricher.from_options(EnrichSettings().options()) is None
    event = normalise()
    assert event["source"] == {"ip": LONDON_IP}
    assert "after_hours" not in event["azure_rms"]


# --- GeoIP ----------------------------------------------------------------------------------


def test_geoip_hit_adds_ecs_geo_and_as(databases: dict[str, str]) -> None:
    source = normalise(databases)["source"]
    assert source == {
        "ip": LONDON_IP,
        "geo": {
            "city_name": "London",
            "continent_code": "EU",
            "continent_name": "Europe",
            "country_iso_code": "GB",
            "country_name": "United Kingdom",
            "region_iso_code": "GB-ENG",
            "region_name": "England",
            "postal_code": "EC2V",
            "timezone": "Europe/London",
            "location": {"lat": 51.5142, "lon": -0.0931},
        },
        "as": {"number": 20712, "organization": {"name": "Andrews & Arnold Ltd"}},
    }


def test_geoip_ipv6_and_city_database_alone(databases: dict[str, str]) -> None:
    only_city = {"geoip_database": databases["geoip_database"]}
    source = normalise(only_city, c_ip="2a02:8108:fd4b:70ba::64bf:8cb")["source"]
    assert source["geo"]["country_iso_code"] == "DE"
    assert source["geo"]["location"] == {"lat": 52.52, "lon": 13.405}
    assert "as" not in source and "city_name" not in source["geo"]


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "10.1.2.3", "192.168.1.20", "127.0.0.1", "fe80::1", "2001:db8::1"],
    ids=["not in the database", "private 10/8", "private 192.168", "loopback", "link-local",
         "documentation"],
)  # fmt: skip
def test_geoip_miss_and_private_addresses_add_nothing(
    databases: dict[str, str], address: str
) -> None:
    event = normalise(databases, c_ip=address)
    assert event["source"] == {"ip": address}
    assert event["related"]["ip"] == [address]


def test_geoip_not_an_address_stays_raw(databases: dict[str, str]) -> None:
    event = normalise(databases, c_ip="unknown")
    assert "source" not in event and event["azure_rms"]["c_ip"] == "unknown"


def test_missing_or_unreadable_database_is_a_config_error_naming_the_file(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "GeoLite2-City.mmdb"
    with pytest.raises(ConfigError, match=r"enrich\.geoip_database: .*GeoLite2-City\.mmdb"):
        Enricher.from_options({"geoip_database": str(missing)})
    garbage = tmp_path / "asn.mmdb"
    garbage.write_bytes(b"this is not a MaxMind database")
    with pytest.raises(ConfigError, match=r"enrich\.asn_database: .*asn\.mmdb: not a readable"):
        Enricher.from_options({"asn_database": str(garbage)})
    # the settings model refuses them when the configuration is read
    with pytest.raises(ValueError, match="GeoLite2-City.mmdb: no such file"):
        EnrichSettings(geoip_database=missing)


# --- working hours --------------------------------------------------------------------------

HOURS = {
    "working_hours": {
        "default": {"timezone": "UTC"},
        "domains": {
            "fabrikam.jp": {"timezone": "Asia/Tokyo", "start": "09:00", "end": "17:30"},
            "contoso.com": {"timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu"]},
            "northwind.com": {"timezone": "America/New_York"},
        },
    }
}


def after_hours(user: str, date: str, time: str) -> bool:
    event = normalise(HOURS, user_id=f"'{user}'", date=date, time=time)
    return event["azure_rms"]["after_hours"]


@pytest.mark.parametrize(
    "user, date, time, expected",
    [
        # the default: UTC, Monday to Friday, 08:00 (inclusive) to 18:00 (exclusive)
        ("a@example.org", "2024-03-04", "09:14:07", False),
        ("a@example.org", "2024-03-04", "07:59:59", True),
        ("a@example.org", "2024-03-04", "08:00:00", False),
        ("a@example.org", "2024-03-04", "17:59:59", False),
        ("a@example.org", "2024-03-04", "18:00:00", True),
        ("a@example.org", "2024-03-09", "10:00:00", True),  # Saturday
        # Tokyo (UTC+9, no DST): 00:30 UTC Monday is 09:30 there; 23:30 UTC Sunday is 08:30
        ("k@fabrikam.jp", "2024-03-04", "00:30:00", False),
        ("k@fabrikam.jp", "2024-03-03", "23:30:00", True),
        ("k@fabrikam.jp", "2024-03-04", "08:29:00", False),  # 17:29 there
        ("k@fabrikam.jp", "2024-03-04", "08:30:00", True),  # 17:30 there
        # Friday 15:00 UTC is a working day in UTC, not in Tokyo (Saturday 00:00)
        ("k@fabrikam.jp", "2024-03-08", "15:00:00", True),
        # a subdomain takes its parent domain's hours: Berlin, Monday to Thursday
        ("r@eu.contoso.com", "2024-03-04", "17:30:00", True),  # 18:30 CET
        ("r@contoso.com", "2024-03-07", "16:30:00", False),  # Thursday 17:30 CET
        ("r@contoso.com", "2024-03-08", "10:00:00", True),  # Friday: not a working day there
    ],
)
def test_working_hours_per_domain_and_time_zone(
    user: str, date: str, time: str, expected: bool
) -> None:
    assert after_hours(user, date, time) is expected


def test_daylight_saving_time_moves_the_working_day() -> None:
    # Berlin: CET (UTC+1) until 31 March 2024, CEST (UTC+2) after; 07:30 UTC is 08:30 then
    # 09:30 -- and 06:30 UTC is 07:30 (before work) in winter, 08:30 (at work) in summer
    assert after_hours("r@contoso.com", "2024-03-28", "06:30:00") is True
    assert after_hours("r@contoso.com", "2024-04-02", "06:30:00") is False
    assert after_hours("r@contoso.com", "2024-03-28", "16:59:00") is False  # 17:59 CET
    assert after_hours("r@contoso.com", "2024-04-02", "16:00:00") is True  # 18:00 CEST
    # New York: EST (UTC-5) until 10 March 2024, EDT (UTC-4) after
    assert after_hours("n@northwind.com", "2024-03-08", "12:30:00") is True  # 07:30 EST
    assert after_hours("n@northwind.com", "2024-03-11", "12:30:00") is False  # 08:30 EDT


def test_events_without_a_user_domain_use_the_default() -> None:
    event = normalise(HOURS, user_id="Aadrm_S-1-7-0", time="03:00:00")
    assert event["azure_rms"]["after_hours"] is True
    event = normalise(HOURS, user_id="''", time="12:00:00")
    assert event["azure_rms"]["after_hours"] is False


def test_working_hours_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        EnrichSettings(working_hours={"default": {"timezone": "Mars/Olympus"}})
    with pytest.raises(ValueError, match="'25:00' is not a time of day"):
        EnrichSettings(working_hours={"domains": {"x.com": {"start": "25:00"}}})
    with pytest.raises(ValueError, match="end 08:00 is not after start 18:00"):
        EnrichSettings(working_hours={"default": {"start": "18:00", "end": "08:00"}})
    with pytest.raises(ValueError, match="days"):
        EnrichSettings(working_hours={"default": {"days": ["someday"]}})
    with pytest.raises(ValueError, match="extra"):
        EnrichSettings(working_hours={"default": {"time_zone": "UTC"}})


def test_settings_travel_as_plain_data(databases: dict[str, str]) -> None:
    settings = EnrichSettings(**databases, working_hours={"domains": {"x.com": {}}})
    options = settings.options()
    assert orjson.loads(orjson.dumps(options)) == options
    enricher = Enricher.from_options(options)
    assert enricher is not None and enricher.geo and enricher.hours


def test_the_decoder_side_does_not_import_pydantic() -> None:
    code = (
        "import sys; from shipper.normalise.enrich import Enricher; "
        "from shipper.normalise.rms import RmsNormaliser; "
        "RmsNormaliser(enrich=Enricher.from_options({'working_hours': {'default': {}}})); "
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "False", out.stderr


def test_enriched_events_pass_the_ecs_checker(databases: dict[str, str], tmp_path: Path) -> None:
    if not (ECS_FLAT.is_file() and ECS_CHECK.is_file()):
        pytest.skip("../shared (ECS field list and checker) is not available")
    options = {**databases, **HOURS}
    events = [
        normalise(options, c_ip=ip, user_id=user)
        for ip in (LONDON_IP, "2a02:8108::1", "10.0.0.1", "8.8.8.8")
        for user in ("'a@contoso.com'", "'k@fabrikam.jp'", "''")
    ]
    assert any("geo" in e["source"] for e in events)
    out = tmp_path / "events.ndjson"
    out.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    command = [sys.executable, str(ECS_CHECK), "--ecs", str(ECS_FLAT), "--custom-prefix"]
    command += ["azure_rms.", "--check-category-type", "--expect-ecs-version", ECS_VERSION]
    result = subprocess.run(
        [*command, str(out)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- end to end: `shipper run --once` with enrichment configured ------------------------------


def rms_file(path: Path, rows: list[dict[str, str]]) -> Path:
    records = [rms_row(i, FIELDS, **{"c_ip": LONDON_IP, **row}) for i, row in enumerate(rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rms_text(records, FIELDS), encoding="utf-8")
    return path


def test_run_once_ships_enriched_events(
    databases: dict[str, str], tmp_path: Path, cli: Any
) -> None:
    rms_file(
        tmp_path / "logs" / "2024-03-04.log",
        [
            # 06:30 UTC is 07:30 in Berlin: before work there; London address
            {"row_id": "r1", "user_id": "'a@contoso.com'", "time": "06:30:00"},
            # 01:00 UTC is 10:00 in Tokyo: at work there; a private address
            {"row_id": "r2", "user_id": "'k@fabrikam.jp'", "time": "01:00:00", "c_ip": "10.0.0.5"},
            # the default (UTC) at 12:00 on a Monday; an address no database knows
            {"row_id": "r3", "user_id": "'x@example.org'", "time": "12:00:00", "c_ip": "8.8.8.8"},
        ],
    )
    config = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [
            {
                "type": "rms_usage",
                "paths": [str(tmp_path / "logs" / "*")],
                "enrich": {
                    **databases,
                    "working_hours": {
                        "default": {"timezone": "UTC"},
                        "domains": {
                            "contoso.com": {"timezone": "Europe/Berlin"},
                            "fabrikam.jp": {"timezone": "Asia/Tokyo"},
                        },
                    },
                },
            }
        ],
        "outputs": [{"type": "ndjson", "path": str(tmp_path / "out" / "events.ndjson")}],
        "pipeline": {"workers": 1},
    }
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(orjson.dumps(config).decode())  # JSON is YAML
    done = cli("run", "--once", "--no-progress", str(cfg), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out" / "events.ndjson").read_bytes().splitlines()
    events = {e["event"]["id"]: e for e in map(orjson.loads, lines)}
    assert sorted(events) == ["r1", "r2", "r3"]
    assert [events[i]["azure_rms"]["after_hours"] for i in ("r1", "r2", "r3")] == [
        True,
        False,
        False,
    ]
    assert events["r1"]["source"]["geo"]["city_name"] == "London"
    assert events["r1"]["source"]["geo"]["location"] == {"lat": 51.5142, "lon": -0.0931}
    assert events["r1"]["source"]["as"] == {
        "number": 20712,
        "organization": {"name": "Andrews & Arnold Ltd"},
    }
    assert events["r2"]["source"] == {"ip": "10.0.0.5"}
    assert events["r3"]["source"] == {"ip": "8.8.8.8"}


def test_check_names_a_missing_database(tmp_path: Path, cli: Any) -> None:
    config = {
        "data_dir": str(tmp_path / "data"),
        "inputs": [
            {
                "type": "rms_usage",
                "paths": [str(tmp_path / "logs" / "*")],
                "enrich": {"geoip_database": str(tmp_path / "GeoLite2-City.mmdb")},
            }
        ],
    }
    cfg = tmp_path / "shipper.yaml"
    cfg.write_text(orjson.dumps(config).decode())
    done = cli("check", str(cfg), cwd=tmp_path)
    assert done.returncode == 2
    assert "inputs[0].enrich.geoip_database" in done.stderr + done.stdout
    assert "GeoLite2-City.mmdb: no such file" in done.stderr + done.stdout
