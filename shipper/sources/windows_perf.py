"""The ``windows_perf`` input: Windows performance counter logs, above all the RMS
connector's ("Microsoft Rights Management connector"), as typeperf / relog / Export-Counter
write them (PDH CSV or TSV) or as ``Get-Counter | ConvertTo-Json`` exports them. Settings only;
the readers are the formats named in ``default_formats`` (or in the configuration's
``formats:``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shipper.settings import SourceSettings, TimeZone


class Settings(SourceSettings):
    """Performance counter logs: PDH CSV/TSV (typeperf, relog, Export-Counter) and
    Get-Counter JSON."""

    default_formats: ClassVar[tuple[str, ...]] = ("perf_csv", "perf_json")
    #: the registered normaliser (``shipper.normalise.perf``) the decoders look up
    normaliser: ClassVar[str] = "windows_perf"

    type: Literal["windows_perf"] = "windows_perf"
    timezone: TimeZone = Field(
        default="UTC",
        description=(
            "IANA time zone of the collecting machine, used only where a file does not say"
            " (a PDH CSV header without its (zone)(bias) part; JSON times without an offset)"
        ),
    )

    def options(self) -> dict[str, object]:
        """Settings the decoder needs, passed to worker processes with each chunk."""
        return {**super().options(), "timezone": self.timezone}
