"""Human-friendly sizes in settings (``100MB``, ``1GiB``), shared by every settings model."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """``100MB``, ``1GiB``, ``5000`` -> bytes."""
    if isinstance(value, int):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r} (use e.g. 100MB, 1GiB or a number of bytes)")
    unit = (m.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    power = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}[unit[:1]] if unit else 0
    return int(float(m.group(1)) * base**power)
