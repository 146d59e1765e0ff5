"""Give a chunk's memory back to the system once it is done with (glibc only).

A chunk's big buffers (the bytes read, the decoded text, an NDJSON run of a few MiB) are
allocated and freed over and over. glibc raises its mmap threshold each time such a block is
freed, up to 32 MiB, so that after the first few chunks they all come from the heap, which
keeps the freed space as resident memory. Fixing the threshold (``mallopt``) keeps those blocks
in their own mappings, returned to the system when freed: 12 MB less resident memory in the
pipeline process and 3 MB in each decoder, at no measurable cost in speed
(``benchmarks/bench_rms.py``).

Nothing on PyPI sets allocator options; ``ctypes`` is the standard way to call ``mallopt``.
Elsewhere (Windows, macOS, musl) this does nothing: their allocators behave differently.
"""

from __future__ import annotations

import sys

#: glibc's M_MMAP_THRESHOLD parameter number (malloc.h)
_M_MMAP_THRESHOLD = -3
#: glibc's initial threshold; setting it explicitly turns the adjustment off
MMAP_THRESHOLD = 128 * 1024


def return_big_blocks() -> bool:
    """Serve big allocations from their own mappings for the rest of the process's life.

    Returns whether the allocator took the setting.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
