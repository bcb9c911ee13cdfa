"""Atomic file writes: write to a temporary file in the target's directory, then ``os.replace`` it.

A reader never sees a half-written file: either the old file (or no file) is there, or the complete new one.
On any exception the temporary file is deleted and the target is left untouched.

:func:`atomic_path` yields a temporary *path* (for libraries such as h5py that open files by name);
:func:`atomic_open` yields an open file object; :func:`atomic_file_set` writes several files as one unit: all
are written to temporaries first and only renamed once every one succeeded, and if anything fails, no file of
the set is left behind (targets already renamed in a failing commit are removed again).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator, Sequence

__all__ = ["atomic_path", "atomic_open", "atomic_file_set"]


def _make_temp(path: str) -> str:
    """Create an empty temporary file next to ``path`` and return its name."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would (0666 minus umask)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return tmp


def _fsync(path: str) -> None:
    """Flush a closed file's data to disk (best effort: ignored where the OS does not support it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[str]:
    """Yield a temporary path in ``path``'s directory; ``os.replace`` it onto ``path`` on success.

    Parameters
    ----------
    path : str or PathLike
        Final file name. Its directory must exist.
    fsync : bool
        Flush the temporary file to disk before the rename.

    Notes
    -----
    The temporary file exists (empty) when the block starts; the caller may overwrite or truncate it.
    On any exception inside the block the temporary file is removed and the exception propagates.
    """
    path = os.fspath(path)
    tmp = _make_temp(path)
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = True) -> Iterator[IO]:
    """Open a temporary file for writing and atomically move it onto ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or PathLike
        Final file name.
    mode : str
        A write mode: ``"w"``, ``"wb"``, ``"wt"`` (``"x"``/``"a"``/``"+"`` are refused).
    fsync : bool
        Flush the data to disk before the rename.
    """
    if not mode.startswith("w") or "+" in mode:
        raise ValueError(f"mode must be a plain write mode ('w', 'wb', 'wt'), got {mode!r}")
    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, mode) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_file_set(paths: Sequence[str | os.PathLike], *, fsync: bool = True) -> Iterator[list[str]]:
    """Write several files as one unit: yield one temporary path per target, commit them all at the end.

    If the block raises, every temporary file is removed and no target is touched. If a rename fails during
    the commit, the targets renamed so far in this commit are removed too, so that no file of the set remains
    (a pre-existing file at such a target is lost in that rare case; the others keep their old contents).

    Parameters
    ----------
    paths : sequence of str or PathLike
        Final file names (distinct).
    fsync : bool
        Flush each temporary file to disk before the renames.
    """
    targets = [os.fspath(p) for p in paths]
    if len(set(map(os.path.abspath, targets))) != len(targets):
        raise ValueError("paths must be distinct")
    temps: list[str] = []
    try:
        for target in targets:
            temps.append(_make_temp(target))
        yield list(temps)
        if fsync:
            for tmp in temps:
                _fsync(tmp)
    except BaseException:
        for tmp in temps:
            _remove(tmp)
        raise
    done: list[str] = []
    try:
        for tmp, target in zip(temps, targets, strict=True):
            os.replace(tmp, target)
            done.append(target)
    except BaseException:
        for target in done:
            _remove(target)
        for tmp in temps:
            _remove(tmp)
        raise
