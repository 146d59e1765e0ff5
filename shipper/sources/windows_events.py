"""The ``windows_events`` input: RMS connector / ECMA2Host event exports (.evtx, event XML,
CSV/TXT and JSON). Settings only; the readers are the formats named in ``formats``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from shipper.settings import SourceSettings


class Settings(SourceSettings):
    """RMS connector / ECMA2Host event exports: .evtx, event XML, CSV/TXT and JSON."""

    formats: ClassVar[tuple[str, ...]] = ("evtx", "event_xml", "event_json", "event_csv")
    normaliser: ClassVar[str] = "windows"

    type: Literal["windows_events"] = "windows_events"
    timezone: str = Field(
        default="UTC",
        description="IANA time zone of the exporting machine, for CSV/TXT local dates",
    )
    date_format: str = Field(
        default="%m/%d/%Y %I:%M:%S %p",
        description="strptime format of CSV/TXT dates (exporting machine's locale; en-US default)",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return v

    def options(self) -> dict[str, object]:
        """Settings the decoder needs, passed to worker processes with each chunk."""
        return {**super().options(), "timezone": self.timezone, "date_format": self.date_format}
