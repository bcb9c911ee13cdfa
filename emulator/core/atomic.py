"""Atomic file writes: write to a temporary file in the target's directory, then ``os.replace`` it.

A reader never sees a half-written file: either the old file (or no file) is there, or the complete new one.
On any exception the temporary file is deleted and the target is left untouched.

:func:`atomic_path` yields a temporary *path* (for libraries such as h5py that open files by name);
:func:`atomic_open` yields an open file object; :func:`atomic_file_set` writes several files as one unit: all
are written to temporaries first and only renamed once every one succeeded, and if anything fails, no file of
the set is left behind (targets already renamed in a failing commit are removed again).

Temporary files are hidden and named ``.<target name>.<pid>@<host>.<random>.tmp``: the owner's process ID and
host name (characters other than letters, digits and ``-`` replaced by ``-``). A process killed mid-write (where
no ``except`` clause runs) leaves its temporary behind; :func:`remove_stale_temporaries` removes those whose
owner process on this host is dead, and :func:`atomic_path` does so for its own target name before it creates a
temporary. A temporary of a live process, of another host (a shared file system), or in another naming scheme
(those written before owner names were recorded) is never removed. Limits: a dead owner's PID reused by a new
process keeps its leftover until that process ends; processes in another PID namespace that share this host
name and folder (containers) would look dead; liveness is only tested on POSIX systems (elsewhere nothing is
removed, as ``os.kill`` with signal 0 would terminate the process there).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import socket
import tempfile
from typing import IO, Iterator, Sequence

__all__ = ["atomic_path", "atomic_open", "atomic_file_set", "remove_stale_temporaries", "scratch_path"]

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)@(?P<host>[A-Za-z0-9-]+)\.[A-Za-z0-9_]+\.tmp$")


def _host() -> str:
    """This host's name as it appears in temporary file names (letters, digits and ``-``; at most 63)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "localhost"


def _owner_is_dead(pid: int) -> bool:
    """True only when no process ``pid`` exists on this host (POSIX ``kill(pid, 0)`` -> ``ESRCH``)."""
    if os.name != "posix" or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, owned by another user
        return False
    return False


def _remove_stale(directory: str, names: list[str]) -> list[str]:
    """Remove the temporaries among ``names`` (file names in ``directory``) whose owner here is dead."""
    host, removed = _host(), []
    for name in names:
        m = _TEMP_RE.match(name)
        if m is None or m["host"] != host or not _owner_is_dead(int(m["pid"])):
            continue
        path = os.path.join(directory, name)
        try:
            os.remove(path)
        except FileNotFoundError:  # removed meanwhile by another cleaner
            continue
        except OSError:  # not ours to remove (permissions, a directory): leave it
            continue
        removed.append(path)
    return sorted(removed)


def remove_stale_temporaries(directory: str | os.PathLike) -> list[str]:
    """Remove this module's temporary files in ``directory`` whose owner process on this host is dead.

    Parameters
    ----------
    directory : str or PathLike
        Folder to clean (not recursive). A missing folder has nothing to remove.

    Returns
    -------
    list of str
        Paths of the removed files, sorted. Temporaries of live processes, of other hosts and files in any
        other naming scheme are kept (see the module notes).
    """
    directory = os.fspath(directory)
    try:
        names = [e.name for e in os.scandir(directory) if e.name.endswith(".tmp") and e.is_file(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return _remove_stale(directory, names)


def _make_temp(path: str) -> str:
    """Create an empty temporary file next to ``path`` and return its name.

    Stale temporaries of the same target (owner dead, this host) are removed first: a cheap glob of
    ``.<name>.*.tmp``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    pattern = os.path.join(glob.escape(directory), "." + glob.escape(base) + ".*.tmp")
    _remove_stale(directory, [os.path.basename(p) for p in glob.glob(pattern)
                              if (m := _TEMP_RE.match(os.path.basename(p))) and m["name"] == base])
    prefix = f".{base}.{os.getpid()}@{_host()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
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
def scratch_path(path: str | os.PathLike, tag: str) -> Iterator[str]:
    """Yield a hidden scratch file next to ``path``, removed when the block ends, however it ends.

    It is named as this module's temporaries (target ``<name of path>.<tag>``), so one left by a killed process
    is removed by the next :func:`scratch_path` of the same target or by :func:`remove_stale_temporaries` of the
    folder once its owner is dead. The file exists (empty) when yielded; a library may recreate it by name.
    """
    tmp = _make_temp(f"{os.fspath(path)}.{tag}")
    try:
        yield tmp
    finally:
        _remove(tmp)


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
