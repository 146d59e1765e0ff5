"""Outputs: deliver encoded events durably and say so (see ``base.Output``).

``build_output`` turns one validated output setting into a running output; each output type
registers its constructor in ``BUILDERS`` under its config ``type``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipper.outputs import elasticsearch
from shipper.outputs.base import Ack, EventBatch, Output
from shipper.outputs.ndjson import NdjsonFileOutput
from shipper.outputs.stdout import StdoutOutput

#: config type -> constructor(settings, data_dir)
BUILDERS: dict[str, Callable[[Any, Path], Output]] = {
    "ndjson": lambda settings, data_dir: NdjsonFileOutput(settings),
    "stdout": lambda settings, data_dir: StdoutOutput(),
    "elasticsearch": lambda settings, data_dir: elasticsearch.build(settings, data_dir),
    "opensearch": lambda settings, data_dir: elasticsearch.build(settings, data_dir),
}


def build_output(settings: Any, data_dir: Path) -> Output:
    return BUILDERS[settings.type](settings, data_dir)


__all__ = ["BUILDERS", "Ack", "EventBatch", "Output", "build_output"]
