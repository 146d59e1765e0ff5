"""The ``windows_events`` input: RMS connector / ECMA2Host event exports (.evtx, event XML,
CSV/TXT and JSON). Settings only; the readers are the formats named in ``default_formats``
(or in the configuration's ``formats:``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shipper.settings import SourceSettings, TimeZone


class Settings(SourceSettings):
    """RMS connector / ECMA2Host event exports: .evtx, event XML, CSV/TXT and JSON."""

    default_formats: ClassVar[tuple[str, ...]] = ("evtx", "event_xml", "event_json", "event_csv")
    normaliser: ClassVar[str] = "windows"

    type: Literal["windows_events"] = "windows_events"
    timezone: TimeZone = Field(
        default="UTC",
        description="IANA time zone of the exporting machine, for CSV/TXT local dates",
    )
    date_format: str = Field(
        default="%m/%d/%Y %I:%M:%S %p",
        description="strptime format of CSV/TXT dates (exporting machine's locale; en-US default)",
    )

    def options(self) -> dict[str, object]:
        """Settings the decoder needs, passed to worker processes with each chunk."""
        return {**super().options(), "timezone": self.timezone, "date_format": self.date_format}
