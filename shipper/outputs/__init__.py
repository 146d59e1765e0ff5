"""Outputs: deliver encoded events durably and say so (see ``base.Output``).

Each output is a module registered under the ``shipper.outputs`` entry point group (see
``shipper.registry``) holding its ``Settings``, ``build`` and, where it has them, ``check`` and
``setup``. ``build_output`` finds the module from the validated settings' ``type``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipper import registry
from shipper.outputs.base import Ack, EventBatch, Output


def build_output(settings: Any, data_dir: Path) -> Output:
    """A running output for one validated ``outputs[]`` entry."""
    output: Output = registry.output_module(settings).build(settings, Path(data_dir))
    return output


__all__ = ["Ack", "EventBatch", "Output", "build_output"]
