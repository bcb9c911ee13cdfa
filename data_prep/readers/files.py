"""Where a snapshot's particles are: locating its files, the members of a multi-file set, its format, chunks.

A snapshot is named by a file, by any member ``base.N[.hdf5]`` of a multi-file set, by the base name of such a
set (``snap_005`` -> ``snap_005.0``, ``snap_005.0.hdf5`` or ``snap_005.hdf5``), or by a bigfile directory. Failures
raise :class:`~data_prep.readers.base.SnapshotError` naming the path. Containers, units and validation are in
:mod:`data_prep.readers.base`.
"""

from __future__ import annotations

import os
import re
from typing import Iterable

from .base import SnapshotError

__all__ = ["locate", "member_files", "detect_format", "iter_slices"]

_MEMBER_RE = re.compile(r"^(?P<base>.+)\.(?P<idx>\d+)(?P<suffix>\.hdf5|\.h5)?$")


def locate(path: str | os.PathLike) -> tuple[str, str | None, str]:
    """Find an existing file of the snapshot named by ``path``: ``(file, base, suffix)``.

    ``path`` may be a file (a lone file or any member ``base.N[.hdf5]`` of a set), a directory (bigfile), or a
    base name ``snap_005`` resolving to ``snap_005.0``, ``snap_005.0.hdf5`` or ``snap_005.hdf5``. ``base`` is
    None when the file does not look like a member of a multi-file set.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return path, None, ""
    if os.path.isfile(path):
        m = _MEMBER_RE.match(path)
        if m:
            return path, m["base"], m["suffix"] or ""
        return path, None, ""
    stem = path[:-5] if path.endswith(".hdf5") else path
    for cand, base, suffix in ((f"{stem}.0", stem, ""), (f"{stem}.0.hdf5", stem, ".hdf5"),
                               (f"{stem}.hdf5", None, "")):
        if os.path.isfile(cand):
            return cand, base, suffix
    raise SnapshotError(path, "no such snapshot (also tried path.0, path.0.hdf5 and path.hdf5)")


def member_files(path: str, base: str | None, suffix: str, num_files: int) -> list[str]:
    """All files of a ``num_files``-file set containing ``path`` (checked to exist), in file order."""
    if num_files <= 1:
        return [path]
    if base is None:
        raise SnapshotError(path, f"the header says the snapshot has {num_files} files, but the name does not "
                                  "follow the 'name.N' pattern of a multi-file snapshot")
    files = [f"{base}.{i}{suffix}" for i in range(num_files)]
    if os.path.abspath(path) not in map(os.path.abspath, files):
        raise SnapshotError(path, f"file index is outside the {num_files}-file set")
    for f in files:
        if not os.path.isfile(f):
            raise SnapshotError(f, f"missing file of a {num_files}-file snapshot")
    return files


def detect_format(path: str | os.PathLike) -> str:
    """Return ``"hdf5"``, ``"gadget-binary"`` or ``"bigfile"`` for the snapshot named by ``path``."""
    first, _, _ = locate(path)
    if os.path.isdir(first):
        if os.path.isdir(os.path.join(first, "1")) and (
                os.path.isdir(os.path.join(first, "Header")) or os.path.isfile(os.path.join(first, "attr-v2"))):
            return "bigfile"
        if os.path.isdir(os.path.join(first, "Position")) and os.path.isfile(os.path.join(first, "attr-v2")):
            return "bigfile"
        raise SnapshotError(first, "directory is not a bigfile snapshot (no 'Header' and '1/' blocks)")
    with open(first, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if len(head) >= 4:
        markers = (int.from_bytes(head[:4], "little"), int.from_bytes(head[:4], "big"))
        if 256 in markers or (8 in markers and head[4:8] == b"HEAD"):
            return "gadget-binary"
    import h5py  # HDF5 files with a user block do not start with the signature

    if h5py.is_hdf5(first):
        return "hdf5"
    raise SnapshotError(first, "unrecognised snapshot format: not HDF5, not a bigfile directory, and the first "
                               "record marker is neither 256 (Gadget format 1) nor 8 + 'HEAD' (format 2)")


def iter_slices(n: int, chunk_size: int) -> Iterable[tuple[int, int]]:
    """``(start, stop)`` pairs covering ``range(n)`` in steps of ``chunk_size``."""
    for start in range(0, n, chunk_size):
        yield start, min(start + chunk_size, n)
