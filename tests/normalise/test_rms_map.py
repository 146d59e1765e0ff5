"""The W3C-field -> ECS map is data: an edit of ``mappings/rms/fields.yaml`` changes the events,
and an edit the normaliser cannot honour is refused at load, naming the field."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from shipper.mappings import load_yaml
from shipper.normalise.rms import KNOWN_FIELDS, RmsNormaliser
from shipper.normalise.rms import fieldmap as fieldmap_module
from shipper.normalise.rms.fieldmap import FieldMap, MappingError
from tests.conftest import rms_row

FIELDS = list(KNOWN_FIELDS)


def edited_map(monkeypatch: pytest.MonkeyPatch, edit: Any) -> FieldMap:
    """A FieldMap over ``fields.yaml`` as ``edit`` changes it (the file itself untouched)."""
    data = copy.deepcopy(load_yaml("rms/fields.yaml"))
    edit(data["fields"])

    def load(relative: str) -> Any:
        return data if relative == "rms/fields.yaml" else load_yaml(relative)

    monkeypatch.setattr(fieldmap_module, "load_yaml", load)
    return FieldMap()


def event_with(field_map: FieldMap, **changes: str) -> dict[str, Any]:
    normaliser = RmsNormaliser()
    normaliser._map = field_map
    values = rms_row(1, FIELDS, c_ip="81.2.69.160", **changes)
    return orjson.loads(normaliser.bind_json(FIELDS)(values, "/logs/1", 0, "")[2])


def test_a_target_moved_in_the_map_moves_in_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    def edit(fields: dict[str, Any]) -> None:
        fields["owner-email"]["to"] = {"value": "azure_rms.document_owner"}
        fields["file-name"]["to"] = {"name": "file.name", "extension": "azure_rms.file_type"}
        fields["c-info"] = {"read": "client_info"}
        fields["user-id"]["to"].pop("domain")

    event = event_with(edited_map(monkeypatch, edit), file_name="Q3.xlsx")
    assert event["azure_rms"]["document_owner"] == "alice@contoso.com"
    assert "owner_email" not in event["azure_rms"]
    assert event["file"] == {"name": "Q3.xlsx"}
    assert event["azure_rms"]["file_type"] == "xlsx"
    assert "domain" not in event["user"] and event["user"]["email"] == "joe@contoso.com"


def test_the_shipped_map_gives_the_documented_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    event = event_with(edited_map(monkeypatch, lambda fields: None))
    assert event["azure_rms"]["owner_email"] == "alice@contoso.com"
    assert event["file"] == {"name": "Q3 Forecast.docx", "extension": "docx"}


@pytest.mark.parametrize(
    "field, target, says",
    [
        ("owner-email", "user.owner", "owner-email.to.value: user.owner is outside"),
        ("row-id", "azure_rms.ids.row", "row-id.to.value: azure_rms.ids.row is outside"),
        ("file-name", "event.file_name", "file-name.to.name: event.file_name is outside"),
        ("c-ip", "client.ip", "c-ip.to.ip: client.ip is outside"),
    ],
)
def test_a_target_the_normaliser_cannot_fill_is_refused(
    monkeypatch: pytest.MonkeyPatch, field: str, target: str, says: str
) -> None:
    def edit(fields: dict[str, Any]) -> None:
        part = next(iter(fields[field]["to"]))
        fields[field]["to"][part] = target

    with pytest.raises(MappingError, match=says):
        edited_map(monkeypatch, edit)
