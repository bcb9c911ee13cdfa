"""Helpers for data-prep tests that need other processes: a writer killed mid-write, a concurrent lock holder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_KILLED_WRITER = """
import contextlib, sys, time
from emulator.core.atomic import atomic_path
with contextlib.ExitStack() as stack:
    for target in sys.argv[1:]:
        print(stack.enter_context(atomic_path(target)), flush=True)
    time.sleep(120)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def killed_writer(*targets: str | os.PathLike) -> tuple[list[str], int]:
    """Start a process that opens ``atomic_path(target)`` for every target, SIGKILL it mid-write, reap it.

    Returns the temporary paths it left behind (one per target) and its (now dead) process ID.
    """
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, *map(str, targets)], stdout=subprocess.PIPE,
                            text=True, cwd=ROOT, env=_env())
    try:
        temps = [proc.stdout.readline().strip() for _ in targets]
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert all(temps), "the writer died before creating its temporaries"
    return temps, proc.pid


def start_child(code: str, *args: str | os.PathLike, ready: str) -> subprocess.Popen:
    """Run ``code`` in another Python process and wait until it prints the line ``ready``."""
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env=_env())
    line = proc.stdout.readline().strip()
    if line != ready:
        proc.kill()
        proc.wait()
        raise AssertionError(f"child did not get ready (printed {line!r})")
    return proc


def stop_child(proc: subprocess.Popen) -> None:
    """SIGKILL a child (as a kill -9 or an out-of-memory kill would) and reap it."""
    proc.kill()
    proc.wait()
    proc.stdout.close()


#: a process holding an flock on argv[1], as any data-prep run holding that lock file would
HOLD_LOCK = """
import fcntl, sys, time
fh = open(sys.argv[1], "a")
fcntl.flock(fh, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""
