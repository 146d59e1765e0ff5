"""``shipper check --outputs``: can each output be reached and written to, right now?"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from shipper.config import Config


def check_outputs(cfg: Config) -> Iterator[tuple[str, bool]]:
    """One line per output, and whether it is usable."""
    for i, out in enumerate(cfg.outputs):
        where = f"outputs[{i}] ({out.type})"
        if out.type == "ndjson":
            folder = Path(out.path).resolve().parent
            probe = folder
            while not probe.exists():
                probe = probe.parent
            if not probe.is_dir():
                yield f"{where}: {out.path}: {probe} is a file, not a folder", False
            elif not os.access(probe, os.W_OK):
                yield f"{where}: {out.path}: {probe} is not writable", False
            else:
                yield f"{where}: {out.path}: writable", True
        elif out.type == "stdout":
            yield f"{where}: standard output", True
        elif out.type in ("elasticsearch", "opensearch"):
            from shipper.outputs.elasticsearch.setup import status

            st = status(out)
            if st.ok:
                yield f"{where}: {st.product} {st.version}, all templates installed", True
            elif st.version:
                yield f"{where}: {st.product} {st.version}: {st.message}", False
            else:
                yield f"{where}: {st.message}", False
        else:
            yield f"{where}: no check available", True
