"""Gadget-2 binary snapshots, format 1 (``SnapFormat=1``) and format 2 (labelled blocks).

Layout: Fortran-style records, each framed by a 4-byte marker holding the payload size on both sides. The
first record is the 256-byte header; then POS (3 floats per particle, all types in type order), VEL, ID (4- or
8-byte integers) and MASS (only for types with ``Massarr == 0`` and ``Npart > 0``); further (gas) blocks are
ignored. Format 2 puts a label record before each block: marker 8, a 4-character label, an int (the next
record's size including its markers), marker 8. The byte order is taken from the first marker; float/double
and 4/8-byte IDs are told apart by the record sizes expected from ``Npart`` (markers are compared modulo 2**32,
so blocks above 4 GB, whose markers overflow, still read).

Units: a Gadget binary file carries no unit metadata. Lengths need ``length_unit`` (never guessed); velocities
are taken as km/s in Gadget's convention ``V = v_pec / sqrt(a)`` (peculiar = ``V sqrt(a)``) and masses as
1e10 Msun/h, the Gadget defaults. Multi-file sets are ``name.0 ... name.N-1``; ``Nall`` (with ``NallHW``) must
agree between files and equal the sum of ``Npart``.
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from .base import (
    Snapshot, SnapshotError, SnapshotHeader, check_parttype, check_time_redshift, resolve_length_unit,
    scale_lengths, velocity_exponent,
)
from .files import iter_slices, locate, member_files

__all__ = ["HEADER_DTYPE", "read_header", "iter_chunks"]

HEADER_DTYPE = np.dtype([
    ("npart", "u4", 6), ("massarr", "f8", 6), ("time", "f8"), ("redshift", "f8"), ("flag_sfr", "i4"),
    ("flag_feedback", "i4"), ("nall", "u4", 6), ("flag_cooling", "i4"), ("num_files", "i4"),
    ("box_size", "f8"), ("omega0", "f8"), ("omega_lambda", "f8"), ("hubble", "f8"), ("flag_age", "i4"),
    ("flag_metals", "i4"), ("nall_hw", "u4", 6), ("flag_entr_ics", "i4"), ("fill", "u1", 60),
])
assert HEADER_DTYPE.itemsize == 256
_MASS_UNIT_MSUN_H = 1e10  # Gadget default mass unit


def _read_marker(fh, path: str, endian: str, where: str) -> int:
    raw = fh.read(4)
    if len(raw) < 4:
        raise SnapshotError(path, f"file is truncated: missing record marker ({where}) at offset {fh.tell()}")
    return int(np.frombuffer(raw, dtype=endian + "u4")[0])


def _read_record_at(fh, path, endian, size_options: dict[int, int], label: str, fsize: int) -> tuple[int, int]:
    """Read one data record at the current position; return ``(payload offset, itemsize)``.

    ``size_options`` maps itemsize -> expected payload bytes; the marker must match one of them mod 2**32.
    """
    start = fh.tell()
    marker = _read_marker(fh, path, endian, f"{label} block")
    matches = [(item, size) for item, size in size_options.items() if size % 2**32 == marker]
    if not matches:
        expected = " or ".join(str(s) for s in size_options.values())
        raise SnapshotError(path, f"{label} block at offset {start}: record marker {marker} does not match the "
                                  f"expected size ({expected} bytes from Npart); wrong record markers or not "
                                  "a Gadget file")
    item, size = matches[0]
    if start + 8 + size > fsize:
        raise SnapshotError(path, f"file is truncated: {label} block at offset {start} needs {size} bytes, "
                                  f"file ends at {fsize}")
    fh.seek(start + 4 + size)
    trailer = _read_marker(fh, path, endian, f"end of {label} block")
    if trailer != marker:
        raise SnapshotError(path, f"{label} block at offset {start}: record markers disagree "
                                  f"({marker} before, {trailer} after)")
    return start + 4, item


def _read_file_layout(path: str) -> dict:
    """Parse the header of one file and locate its POS/VEL/ID/MASS blocks."""
    fsize = os.path.getsize(path)
    with open(path, "rb") as fh:
        first = fh.read(4)
        if len(first) < 4:
            raise SnapshotError(path, "file is truncated: shorter than one record marker")
        endian = next((e for e in "<>" if int(np.frombuffer(first, e + "u4")[0]) in (256, 8)), None)
        if endian is None:
            raise SnapshotError(path, "first record marker is neither 256 (Gadget format 1) nor 8 (format 2)")
        fmt = 2 if int(np.frombuffer(first, endian + "u4")[0]) == 8 else 1
        fh.seek(0)
        if fmt == 2:
            label, _ = _read_label(fh, path, endian)
            if label != "HEAD":
                raise SnapshotError(path, f"format-2 file starts with block {label!r}, expected 'HEAD'")
        hstart = fh.tell()
        hoff, _ = _read_record_at(fh, path, endian, {1: 256}, "HEAD", fsize)
        fh.seek(hoff)
        header = np.frombuffer(fh.read(256), dtype=HEADER_DTYPE.newbyteorder(endian))[0]
        fh.seek(hstart + 264)
        npart = header["npart"].astype(np.int64)
        massarr = header["massarr"].astype(np.float64)
        ntot = int(npart.sum())
        nmass = int(npart[(massarr == 0) & (npart > 0)].sum())
        counts = {"POS": 3 * ntot, "VEL": 3 * ntot, "ID": ntot, "MASS": nmass}  # values per block
        wanted = ["POS", "VEL", "ID"] + (["MASS"] if nmass else [])
        blocks: dict[str, tuple[int, int]] = {}
        while len(blocks) < len(wanted):
            if fmt == 2:
                if fh.tell() >= fsize:
                    break
                label, nextblock = _read_label(fh, path, endian)
            else:
                label = wanted[len(blocks)]
                if fh.tell() >= fsize:
                    break
            if label in wanted and label not in blocks:
                options = {4: 4 * counts[label], 8: 8 * counts[label]}
                blocks[label] = _read_record_at(fh, path, endian, options, label, fsize)
                fh.seek(blocks[label][0] + options[blocks[label][1]] + 4)
            else:  # an extra format-2 block: skip it using its own markers
                _skip_record(fh, path, endian, label, nextblock, fsize)
    return {"path": path, "endian": endian, "format": fmt, "header": header, "npart": npart,
            "massarr": massarr, "blocks": blocks}


def _skip_record(fh, path: str, endian: str, label: str, nextblock: int, fsize: int) -> None:
    """Skip a record we do not read; its size is the label's hint if consistent with the marker, else the marker."""
    start = fh.tell()
    marker = _read_marker(fh, path, endian, f"{label} block")
    size = nextblock - 8 if nextblock >= 8 and (nextblock - 8) % 2**32 == marker else marker
    fh.seek(start)
    _read_record_at(fh, path, endian, {1: size}, label, fsize)


def _read_label(fh, path: str, endian: str) -> tuple[str, int]:
    start = fh.tell()
    if _read_marker(fh, path, endian, "label record") != 8:
        raise SnapshotError(path, f"format-2 label record at offset {start}: record marker is not 8")
    raw = fh.read(8)
    if len(raw) < 8:
        raise SnapshotError(path, f"file is truncated inside the label record at offset {start}")
    label = raw[:4].decode("ascii", errors="replace").strip()
    nextblock = int(np.frombuffer(raw[4:], endian + "u4")[0])
    if _read_marker(fh, path, endian, "label record end") != 8:
        raise SnapshotError(path, f"format-2 label record at offset {start}: record markers disagree")
    return label, nextblock


def _total(header) -> np.ndarray:
    return header["nall"].astype(np.int64) + (header["nall_hw"].astype(np.int64) << 32)


def read_header(path: str | os.PathLike, length_unit: str | float | None = None, parttype: int = 1,
                velocity_convention: str | None = None) -> SnapshotHeader:
    """Read and cross-check the headers of every file of a Gadget binary snapshot.

    Parameters
    ----------
    path : str or PathLike
        Any file of the set, or its base name (``snap_005`` for ``snap_005.0 ...``).
    length_unit : {"Mpc/h", "kpc/h"} or float, required
        Unit of the stored lengths (Gadget binary has no unit metadata; None raises :class:`SnapshotError`).
    parttype : int
        Particle type whose blocks are checked for presence (MASS only matters if this type needs it).
    velocity_convention : str, optional
        Override Gadget's ``V = v_pec/sqrt(a)`` (see :data:`~data_prep.readers.base.VELOCITY_CONVENTIONS`).
    """
    parttype = check_parttype(parttype)
    given, base, suffix = locate(path)
    first = _read_file_layout(given)
    files = member_files(given, base, suffix, int(first["header"]["num_files"]))
    layouts = [first if f == given else _read_file_layout(f) for f in files]
    h0 = layouts[0]["header"]
    nall = _total(h0)
    for lay in layouts:
        h, p = lay["header"], lay["path"]
        if not np.array_equal(_total(h), nall):
            raise SnapshotError(p, f"Nall {_total(h).tolist()} differs from {nall.tolist()} in {files[0]}")
        if int(h["num_files"]) != int(h0["num_files"]) or h["box_size"] != h0["box_size"] or h["time"] != h0["time"]:
            raise SnapshotError(p, f"NumFiles/BoxSize/Time differ from those in {files[0]}")
        missing = [b for b in ("POS", "VEL", "ID") if b not in lay["blocks"]]
        if lay["npart"][parttype] > 0 and lay["massarr"][parttype] == 0 and "MASS" not in lay["blocks"]:
            missing.append("MASS")
        if missing:
            raise SnapshotError(p, f"missing block(s) {', '.join(missing)} (file ends at {os.path.getsize(p)})")
    npart_file = np.array([lay["npart"] for lay in layouts], dtype=np.int64)
    if not np.array_equal(npart_file.sum(axis=0), nall):
        raise SnapshotError(files[-1], f"sum of Npart over the {len(files)} file(s) {npart_file.sum(0).tolist()} "
                                       f"differs from Nall {nall.tolist()}")
    a, z = check_time_redshift(files[0], float(h0["time"]), float(h0["redshift"]))
    box_file = float(h0["box_size"])
    factor = resolve_length_unit(files[0], None, length_unit, box_file)
    fmt = {1: "gadget-binary-1", 2: "gadget-binary-2"}[layouts[0]["format"]]
    return SnapshotHeader(
        format=fmt, files=files, npart_total=nall, npart_file=npart_file,
        mass_table=h0["massarr"].astype(np.float64) * _MASS_UNIT_MSUN_H,
        box_size=float(scale_lengths(np.array(box_file), factor)), box_size_file=box_file,
        length_unit_mpc_h=factor, velocity_factor=a ** velocity_exponent(velocity_convention, 0.5),
        mass_unit_msun_h=_MASS_UNIT_MSUN_H, redshift=z, scale_factor=a,
        cosmology={"Omega_m": float(h0["omega0"]), "Omega_lambda": float(h0["omega_lambda"]),
                   "h": float(h0["hubble"])},
        attrs={name: h0[name].tolist() for name in HEADER_DTYPE.names if name != "fill"}, layout=layouts,
    )


def _read_rows(fh, lay: dict, block: str, first_row: int, start: int, stop: int, ncomp: int) -> np.ndarray:
    offset, item = lay["blocks"][block]
    kind = "u" if block == "ID" else "f"
    dtype = np.dtype(f"{lay['endian']}{kind}{item}")
    fh.seek(offset + (first_row + start) * ncomp * item)
    count = (stop - start) * ncomp
    data = np.fromfile(fh, dtype=dtype, count=count)
    if data.size != count:
        raise SnapshotError(lay["path"], f"file is truncated inside the {block} block")
    data = data.astype(dtype.newbyteorder("="), copy=False)
    return data.reshape(-1, ncomp) if ncomp > 1 else data


def iter_chunks(header: SnapshotHeader, chunk_size: int, parttype: int = 1) -> Iterator[Snapshot]:
    """Yield consecutive chunks (at most ``chunk_size`` particles, never spanning files) of one type."""
    for lay in header.layout:
        n = int(lay["npart"][parttype])
        row0 = int(lay["npart"][:parttype].sum())
        with_mass = (lay["massarr"] == 0) & (lay["npart"] > 0)
        mass_row0 = int(lay["npart"][:parttype][with_mass[:parttype]].sum())
        with open(lay["path"], "rb") as fh:
            for start, stop in iter_slices(n, chunk_size):
                pos = _read_rows(fh, lay, "POS", row0, start, stop, 3)
                vel = _read_rows(fh, lay, "VEL", row0, start, stop, 3)
                ids = _read_rows(fh, lay, "ID", row0, start, stop, 1).astype(np.int64)
                if header.mass_table[parttype] > 0:
                    mass = float(header.mass_table[parttype])
                else:
                    mass = _read_rows(fh, lay, "MASS", mass_row0, start, stop, 1).astype(np.float64)
                    mass = mass * header.mass_unit_msun_h
                yield Snapshot(
                    positions=scale_lengths(pos, header.length_unit_mpc_h), velocities=vel * header.velocity_factor,
                    ids=ids, box_size=header.box_size, redshift=header.redshift,
                    scale_factor=header.scale_factor, cosmology=dict(header.cosmology), particle_mass=mass,
                    source=[lay["path"]], length_unit_mpc_h=header.length_unit_mpc_h, parttype=parttype,
                    format=header.format,
                )
