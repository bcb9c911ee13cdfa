"""Advisory file locks that make concurrent runs on one output stop at once with one line, never collide.

A lock is ``fcntl.flock`` on a small lock file next to what is written, taken without blocking, so the kernel
releases it when its holder exits, however it ends: a killed run never leaves a lock that blocks the next one.
Lock files are deleted on release by the last holder; a lock therefore counts only if it is on the file still at
its path (a locker that opened a file just deleted by a releaser tries again on the new one), so deleting them can
never let two writers in. Locks exclude other runs of this package, not other programs; they need a file system
with ``flock`` (local disks; NFS on Linux emulates it). Without ``fcntl`` (not POSIX) no lock is taken.

Used by ``data-prep build`` (``<out>.lock``), ``data-prep simulate`` (``<suite>/simulate.lock``) and
``emulator generate`` (a shared folder lock and one exclusive lock per output file, :mod:`emulator.mocks.outputs`).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["BusyError", "take_lock", "release_lock", "exclusive_lock", "LOCKS_AVAILABLE"]

#: whether this platform has ``flock`` (else every function here is a no-op)
LOCKS_AVAILABLE = fcntl is not None


class BusyError(FileExistsError):
    """Another process holds the lock; the message names the output and the lock file."""


def take_lock(path: str | os.PathLike, busy: str, *, shared: bool = False) -> int | None:
    """Open the lock file ``path`` (created if missing) and lock it without waiting.

    Parameters
    ----------
    path : str or PathLike
        The lock file; its folder must exist.
    busy : str
        The one-line message of the :class:`BusyError` raised when another process holds the lock.
    shared : bool
        A shared lock (many holders, none exclusive) instead of an exclusive one.

    Returns
    -------
    int or None
        The open descriptor holding the lock (give it to :func:`release_lock`); None without ``fcntl``.
    """
    if fcntl is None:  # pragma: no cover
        return None
    path = Path(path)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BusyError(busy) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:  # the previous holder removed it between our open and our lock
            pass
        os.close(fd)


def release_lock(path: str | os.PathLike, fd: int | None) -> None:
    """Release a lock from :func:`take_lock`, deleting the lock file unless another process holds it too."""
    if fd is None or fcntl is None:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds only if nobody else holds the file
    except OSError:
        pass
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, message: str) -> Iterator[Path]:
    """Hold an exclusive lock on the file ``path`` for the duration of the block (it holds ``pid@host``).

    Raises
    ------
    BusyError
        At once (never waits) when another process holds the lock: ``"<message> (lock <path>)"``.
    """
    path = Path(path)
    fd = take_lock(path, f"{message} (lock {path})")
    try:
        if fd is not None:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}@{socket.gethostname()}\n".encode())
        yield path
    finally:
        release_lock(path, fd)
