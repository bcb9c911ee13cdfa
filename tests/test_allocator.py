"""keep_freed_memory: freed large blocks stay in the process (so the next allocation reuses faulted pages), the
opt-out leaves glibc's default (the block goes back to the system)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import sys, torch
from emulator.core.allocator import keep_freed_memory
def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024
on = keep_freed_memory()
x = torch.ones(64 * 2**20)  # 256 MiB, touched
before = rss()
del x
print(on, before - rss())
"""


def _run(env_extra: dict) -> tuple[bool, float]:
    env = {**os.environ, **env_extra}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    on, freed = out.stdout.split()
    return on == "True", float(freed)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_memory_is_kept_and_the_opt_out_returns_it():
    on, freed = _run({"COSMO_EMULATOR_MALLOC": ""})
    assert on and freed < 16  # MiB given back after freeing 256 MiB: the block stays for reuse
    off, freed_default = _run({"COSMO_EMULATOR_MALLOC": "system"})
    assert not off and freed_default > 200  # glibc's default: the mmap'd block goes back to the system

