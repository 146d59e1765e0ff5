"""``shipper check``: can each input's formats and normaliser be loaded, and (``--outputs``)
can each output be reached and written to, right now?

Validating the configuration only looks the formats and normalisers up by name (it must not
import them all); here they are imported, so that a plugin that fails to import is named, with
its distribution, before ``shipper run`` refuses files for it. Each output module answers for
itself through its optional ``check(settings, data_dir)`` (see ``shipper.registry``); this
module only runs them and words the lines.
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


def reader_problems(cfg: Config) -> Iterator[str]:
    """One line per format or normaliser of an input that cannot be loaded (a plugin that
    fails to import or lacks what a format must provide), naming it and its distribution."""
    for i, inp in enumerate(cfg.inputs):
        for setting, kind, name in inp.readers():
            try:
                registry.load(kind, name)
            except ShipperError as e:
                yield f"inputs[{i}].{setting}: {e}"
