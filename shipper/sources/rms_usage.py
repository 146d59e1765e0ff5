"""The ``rms_usage`` input: Azure RMS usage logs (W3C) downloaded by Get-AadrmUserLog /
Get-AadrmUsageLog. Settings only; the reader is the ``w3c_rms`` format."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shipper.normalise.enrich import EnrichSettings
from shipper.settings import SourceSettings


class Settings(SourceSettings):
    """Azure RMS usage logs (W3C) downloaded by Get-AadrmUserLog / Get-AadrmUsageLog."""

    default_formats: ClassVar[tuple[str, ...]] = ("w3c_rms",)
    normaliser: ClassVar[str] = "azure_rms"

    type: Literal["rms_usage"] = "rms_usage"
    enrich: EnrichSettings = Field(  # type: ignore[valid-type]
        default_factory=EnrichSettings, description="GeoIP and working hours; off by default"
    )

    def options(self) -> dict[str, object]:
        """Settings the decoder needs, passed to worker processes with each chunk."""
        options = super().options()
        enrich = self.enrich.options()
        if enrich:
            options["enrich"] = enrich
        return options
