"""Where the declarative rules in ``mappings/`` live at run time.

In a wheel the folder is packaged as ``shipper/mappings``; in a source checkout (editable
install, tests) it is the repository's top-level ``mappings/``. Both are looked up once.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

_PACKAGED = Path(__file__).resolve().parent / "mappings"
_CHECKOUT = Path(__file__).resolve().parent.parent / "mappings"


@cache
def mappings_dir() -> Path:
    for candidate in (_PACKAGED, _CHECKOUT):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mappings folder not found (looked in {_PACKAGED} and {_CHECKOUT})")


@cache
def load_yaml(relative: str) -> Any:
    """Parse one mapping file, e.g. ``load_yaml("rms/request_types.yaml")``; cached."""
    with open(mappings_dir() / relative, encoding="utf-8") as f:
        return yaml.safe_load(f)
