"""Keep freed memory in the process (glibc ``mallopt``): large tensors stop paying for fresh pages every time.

By default glibc serves every allocation above a threshold (128 KB, growing to at most 32 MB) with a new ``mmap``
and returns it to the system on ``free``; torch's CPU allocator does not cache. A network pass or a PM step then
allocates its large activations and meshes afresh each time and the kernel zero-fills every page on first touch:
on the 2-core development machine that is most of the cost of a mock. :func:`keep_freed_memory` raises the
``mmap`` threshold (to 128 MiB) and the trim threshold (to 2 GiB), so freed blocks below 128 MiB are reused; the
resident memory stays near the peak (what a mock-generation or simulation process wants) until the process ends
or calls :func:`release_freed_memory`, as ``generate_mocks`` does between mocks and ``stream_fields`` between the
stages of a streamed box (at 768^3 its kept heap had added ~2.5 GB to the network stage).
Measured with ``python -m benchmarks.scaling`` (one thread, median of 3): generator 64^3 0.51 -> 0.32 s,
128^3 3.55 -> 1.99 s, 256^3 44.2 -> 29.4 s with peak RSS 2.19 -> 2.51 GB; 2LPT 256^3 6.96 -> 4.25 s. A 1 GiB
threshold is a little faster (128^3 1.65 s) but fragments the heap: 3.4 GB at 256^3, over the 3 GB target.
The PyTorch CPU tuning guide recommends the same effect through jemalloc or TCMalloc; this needs no extra library.

The command-line entry points (``emulator``, ``data-prep``, ``python -m benchmarks`` and its timing subprocesses)
call it, so contenders are timed alike; Python users may call it themselves. ``COSMO_EMULATOR_MALLOC=system``
leaves the allocator alone; ``COSMO_EMULATOR_MALLOC=<MiB>`` sets another ``mmap`` threshold. Elsewhere than Linux
with glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory", "release_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done: bool | None = None


def keep_freed_memory(mmap_threshold: int = 128 << 20, trim_threshold: int = 1 << 31) -> bool:
    """Set glibc's ``mmap`` and trim thresholds (bytes) once per process; return whether they are set.

    ``False`` when not on Linux/glibc, when ``COSMO_EMULATOR_MALLOC=system``, or when ``mallopt`` refuses.
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    env = os.environ.get("COSMO_EMULATOR_MALLOC", "").strip().lower()
    if env == "system" or not sys.platform.startswith("linux"):
        return _done
    if env:
        try:
            mmap_threshold = int(float(env) * 2**20)  # MiB
        except ValueError:
            raise ValueError(f"COSMO_EMULATOR_MALLOC must be 'system' or an mmap threshold in MiB, "
                             f"got {env!r}") from None
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return _done
    _done = bool(ok)
    return _done


def release_freed_memory() -> bool:
    """Give the freed heap blocks kept by :func:`keep_freed_memory` back to the system (glibc ``malloc_trim``).

    Called between mocks of a campaign: each mock then reuses its own freed blocks, but the heap left by one mock
    does not fragment under the next. Measured with three 256^3 halo mocks in one process (two threads): peak
    3093 MiB without, growing by ~300 MiB a mock. Returns whether anything was called (``False`` when
    :func:`keep_freed_memory` did not set the thresholds).
    """
    if not _done:
        return False
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True
