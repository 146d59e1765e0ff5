"""The ``windows_perf`` input: Windows performance counter logs, above all the RMS
connector's ("Microsoft Rights Management connector"), as typeperf / relog / Export-Counter
write them (PDH CSV or TSV) or as ``Get-Counter | ConvertTo-Json`` exports them. Settings only;
the readers are the formats named in ``formats``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from shipper.settings import SourceSettings


class Settings(SourceSettings):
    """Performance counter logs: PDH CSV/TSV (typeperf, relog, Export-Counter) and
    Get-Counter JSON."""

    formats: ClassVar[tuple[str, ...]] = ("perf_csv", "perf_json")
    #: the formats import ``shipper.normalise.perf`` today (one line each); the name is for
    #: normalisers chosen by the input
    normaliser: ClassVar[str] = "windows_perf"

    type: Literal["windows_perf"] = "windows_perf"
    timezone: str = Field(
        default="UTC",
        description=(
            "IANA time zone of the collecting machine, used only where a file does not say"
            " (a PDH CSV header without its (zone)(bias) part; JSON times without an offset)"
        ),
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
        return {**super().options(), "timezone": self.timezone}
