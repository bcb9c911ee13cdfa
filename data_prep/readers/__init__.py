"""Snapshot readers: Gadget-2 binary (formats 1 and 2), Gadget/Arepo/Gadget-4/SWIFT HDF5, FastPM/MP-Gadget bigfile.

All readers return :class:`Snapshot` objects in the project's units (comoving Mpc/h, peculiar km/s, Msun/h;
see :mod:`data_prep.readers.base`) and raise :class:`SnapshotError` (a ``ValueError`` naming the file) on bad
input. ``format="auto"`` detects the format: HDF5 signature, a bigfile directory (``Header`` and ``1/``), or a
Gadget binary file by its first record marker (256: format 1; 8 followed by ``HEAD``: format 2). A multi-file
snapshot is named by its base (``snap_005`` -> ``snap_005.0 ...`` or ``snap_005.0.hdf5 ...``) or by any one file.

Example
-------
>>> snap = read_snapshot("snapdir_004/snap_004", length_unit="kpc/h")     # doctest: +SKIP
>>> for chunk in iter_chunks("snap_004.0.hdf5", chunk_size=2**20): ...    # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from . import bigfile_reader, gadget_binary, gadget_hdf5
from .base import (
    VELOCITY_CONVENTIONS, Snapshot, SnapshotError, SnapshotHeader, check_parttype, parse_length_unit, validate_ids,
)
from .files import detect_format

__all__ = [
    "Snapshot", "SnapshotHeader", "SnapshotError", "VELOCITY_CONVENTIONS", "read_snapshot", "read_header",
    "iter_chunks", "detect_format", "validate_ids", "parse_length_unit", "FORMATS",
]

_MODULES = {"gadget-binary": gadget_binary, "hdf5": gadget_hdf5, "bigfile": bigfile_reader}
_ALIASES = {"gadget": "gadget-binary", "gadget1": "gadget-binary", "gadget2": "gadget-binary",
            "binary": "gadget-binary", "gadget-hdf5": "hdf5", "gadget4": "hdf5", "arepo": "hdf5", "swift": "hdf5",
            "fastpm": "bigfile", "mp-gadget": "bigfile"}
FORMATS = ("auto", *_MODULES, *_ALIASES)
DEFAULT_CHUNK_SIZE = 1 << 20


def _format_module(path, format: str):
    if not isinstance(format, str):
        raise ValueError(f"format must be a string, one of {', '.join(FORMATS)}; got {format!r}")
    key = format.strip().lower()
    if key == "auto":
        key = detect_format(path)
    key = _ALIASES.get(key, key)
    if key not in _MODULES:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    return _MODULES[key]


def read_header(path: str | os.PathLike, format: str = "auto", length_unit: str | float | None = None,
                parttype: int = 1, *, velocity_convention: str | None = None) -> SnapshotHeader:
    """Read and cross-check a snapshot's header(s) without reading particles.

    Parameters
    ----------
    path : str or PathLike
        A file, any file of a multi-file set, a set's base name, or a bigfile directory.
    format : str
        ``"auto"`` (default), ``"gadget-binary"``, ``"hdf5"`` or ``"bigfile"`` (aliases in :data:`FORMATS`).
    length_unit : {"Mpc/h", "kpc/h", "Gpc/h"} or float, optional
        Unit of stored lengths (factor to Mpc/h). Needed when the file has no unit metadata; never guessed.
    parttype : int
        Gadget particle type (1 = dark matter).
    velocity_convention : {"gadget", "peculiar", "internal"}, optional
        Override the format's velocity convention (see :data:`VELOCITY_CONVENTIONS`).
    """
    check_parttype(parttype)
    module = _format_module(path, format)
    return module.read_header(path, length_unit=length_unit, parttype=parttype,
                              velocity_convention=velocity_convention)


def _header_for_particles(path, format, length_unit, parttype, velocity_convention, chunk_size) -> SnapshotHeader:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    header = read_header(path, format, length_unit, parttype, velocity_convention=velocity_convention)
    if header.npart_total[parttype] == 0:
        raise SnapshotError(header.files[0], f"the snapshot has no particles of type {parttype} "
                                             f"(totals per type: {header.npart_total.tolist()})")
    return header


def iter_chunks(path: str | os.PathLike, chunk_size: int = DEFAULT_CHUNK_SIZE, format: str = "auto",
                length_unit: str | float | None = None, parttype: int = 1, *,
                velocity_convention: str | None = None) -> Iterator[Snapshot]:
    """Stream a snapshot as partial :class:`Snapshot` objects of at most ``chunk_size`` particles.

    Headers are read and checked immediately (errors raise here, not at the first ``next``); particle data are
    read one chunk at a time, file after file, in storage order. Each chunk's ``source`` is its one file.
    Parameters are those of :func:`read_header`.
    """
    header = _header_for_particles(path, format, length_unit, parttype, velocity_convention, chunk_size)
    return _MODULES[_module_key(header)].iter_chunks(header, int(chunk_size), parttype)


def _module_key(header: SnapshotHeader) -> str:
    return next(key for key in _MODULES if header.format.startswith(key))


def read_snapshot(path: str | os.PathLike, format: str = "auto", length_unit: str | float | None = None,
                  parttype: int = 1, *, velocity_convention: str | None = None, check_ids: bool = True,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> Snapshot:
    """Read all particles of one type into a :class:`Snapshot` (comoving Mpc/h, peculiar km/s, Msun/h).

    Parameters are those of :func:`read_header`, plus ``check_ids`` (default True: the IDs must be a
    permutation of a contiguous range, see :func:`validate_ids`) and ``chunk_size`` (read granularity).
    ``particle_mass`` is a scalar when the mass table gives it, else one value per particle.
    """
    header = _header_for_particles(path, format, length_unit, parttype, velocity_convention, chunk_size)
    module = _MODULES[_module_key(header)]
    n = int(header.npart_total[parttype])
    pos = np.empty((n, 3), dtype=np.float64)
    ids = np.empty(n, dtype=np.int64)
    vel = None
    masses: list = []
    filled = 0
    for chunk in module.iter_chunks(header, int(chunk_size), parttype):
        k = len(chunk)
        if vel is None:
            vel = np.empty((n, 3), dtype=chunk.velocities.dtype)
        pos[filled:filled + k], vel[filled:filled + k], ids[filled:filled + k] = (
            chunk.positions, chunk.velocities, chunk.ids)
        masses.append((filled, filled + k, chunk.particle_mass))
        filled += k
    if filled != n:
        raise SnapshotError(header.files[0], f"read {filled} particles of type {parttype}, expected {n}")
    where = header.files[0] if len(header.files) == 1 else f"{header.files[0]} (+{len(header.files) - 1} files)"
    if check_ids:
        validate_ids(ids, n, source=where)
    if all(np.ndim(m) == 0 for _, _, m in masses) and len({float(m) for _, _, m in masses}) == 1:
        mass: float | np.ndarray = float(masses[0][2])
    else:
        mass = np.empty(n, dtype=np.float64)
        for lo, hi, m in masses:
            mass[lo:hi] = m
    return Snapshot(
        positions=pos, velocities=vel, ids=ids, box_size=header.box_size, redshift=header.redshift,
        scale_factor=header.scale_factor, cosmology=dict(header.cosmology), particle_mass=mass,
        source=list(header.files), length_unit_mpc_h=header.length_unit_mpc_h, parttype=parttype,
        format=header.format,
    )
