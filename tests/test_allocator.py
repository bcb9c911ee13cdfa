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
x = torch.ones(16 * 2**20)  # 64 MiB (below the default 128 MiB threshold), touched
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
    assert on and freed < 8  # MiB given back after freeing 64 MiB: the block stays for reuse
    off, freed_default = _run({"COSMO_EMULATOR_MALLOC": "system"})
    assert not off and freed_default > 56  # glibc default: the mmap-ed block goes back to the system


RELEASE = r"""
import torch
from emulator.core.allocator import keep_freed_memory, release_freed_memory
def rss():
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024
keep_freed_memory()
x = torch.ones(16 * 2**20)  # 64 MiB, kept after del
del x
before = rss()
print(release_freed_memory(), before - rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_release_gives_the_kept_blocks_back_between_mocks():
    env = {**os.environ, "COSMO_EMULATOR_MALLOC": ""}
    out = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, env=env, check=True)
    called, freed = out.stdout.split()
    assert called == "True" and float(freed) > 56  # the 64 MiB kept by keep_freed_memory went back
    env["COSMO_EMULATOR_MALLOC"] = "system"  # thresholds never set: nothing to release, nothing called
    out = subprocess.run([sys.executable, "-c", RELEASE], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split()[0] == "False"


def test_a_bad_threshold_is_a_clear_error():
    env = {**os.environ, "COSMO_EMULATOR_MALLOC": "lots"}
    out = subprocess.run([sys.executable, "-c", "from emulator.core.allocator import keep_freed_memory as k; k()"],
                         capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "COSMO_EMULATOR_MALLOC must be 'system' or an mmap threshold in MiB" in out.stderr
