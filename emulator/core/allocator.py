"""Keep freed memory in the process (glibc ``mallopt``): large tensors stop paying for fresh pages every time.

By default glibc serves every allocation above a threshold (128 KB, growing to at most 32 MB) with a new ``mmap``
and returns it to the system on ``free``; torch's CPU allocator does not cache. A network pass or a PM step then
allocates its large activations and meshes afresh each time and the kernel zero-fills every page on first touch:
on the 2-core development machine that is half of a 128^3 network pass (2.9 -> 1.5 s) and a quarter of 256^3
tiled generation (32.6 -> 25 s). :func:`keep_freed_memory` raises the ``mmap`` threshold (to 1 GiB) and the trim
threshold (to 2 GiB), so freed blocks are reused. The peak memory is unchanged; the resident memory stays near the
peak until the process ends (what a mock-generation or simulation process wants). The PyTorch CPU tuning guide
recommends the same effect through jemalloc or TCMalloc; this needs no extra library.

The command-line entry points (``emulator``, ``data-prep``, ``python -m benchmarks`` and its timing subprocesses)
call it, so contenders are timed alike; Python users may call it themselves. ``COSMO_EMULATOR_MALLOC=system``
leaves the allocator alone. Elsewhere than Linux with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done: bool | None = None


def keep_freed_memory(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 31) -> bool:
    """Set glibc's ``mmap`` and trim thresholds (bytes) once per process; return whether they are set.

    ``False`` when not on Linux/glibc, when ``COSMO_EMULATOR_MALLOC=system``, or when ``mallopt`` refuses.
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("COSMO_EMULATOR_MALLOC", "").strip().lower() == "system" or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return _done
    _done = bool(ok)
    return _done
