"""Give a chunk's memory back to the system once it is done with (glibc only).

A chunk's big buffers (the bytes read, the decoded text, an NDJSON run of a few MiB) are
allocated and freed over and over. glibc raises its mmap threshold each time such a block is
freed, up to 32 MiB, and its trim threshold to twice that, so that after the first chunks they
all come from the heap, which then keeps tens of MiB of freed space resident. Fixing the
threshold (``mallopt``) at 1 MiB keeps the few blocks bigger than that in mappings of their
own, returned to the system when freed, and the rest in a heap that stays small: 20 MB less
resident memory over the pipeline and its decoders (``benchmarks/bench_rms.py``). Lower (glibc's
initial 128 KiB) saves nothing more and costs a tenth of the throughput in page faults.

Nothing on PyPI sets allocator options; ``ctypes`` is the standard way to call ``mallopt``.
Elsewhere (Windows, macOS, musl) this does nothing: their allocators behave differently.
"""

from __future__ import annotations

import sys

#: glibc's M_MMAP_THRESHOLD parameter number (malloc.h)
_M_MMAP_THRESHOLD = -3
#: setting it explicitly also turns glibc's adjustment of it off
MMAP_THRESHOLD = 1024 * 1024


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
