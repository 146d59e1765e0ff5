"""``shipper check --outputs``: can each output be reached and written to, right now?

Each output module answers for itself through its optional ``check(settings, data_dir)`` (see
``shipper.registry``); this module only runs them and words the lines.
"""

from __future__ import annotations

from collections.abc import Iterator

from shipper import registry
from shipper.config import Config
from shipper.errors import ShipperError


def check_outputs(cfg: Config) -> Iterator[tuple[str, bool]]:
    """One line per output, and whether it is usable."""
    for i, out in enumerate(cfg.outputs):
        where = f"outputs[{i}] ({out.type})"
        try:
            check = getattr(registry.output_module(out), "check", None)
            if check is None:
                yield f"{where}: no check available", True
                continue
            yield f"{where}: {check(out, cfg.data_path)}", True
        except ShipperError as e:
            yield f"{where}: {e}", False
