"""FastPM and MP-Gadget snapshots in the bigfile format (a directory of blocks), read with the optional
``bigfile`` package (``pip install bigfile``), imported only when needed.

Layout: blocks ``1/Position``, ``1/Velocity``, ``1/ID`` (``N`` = particle type) and optionally ``1/Mass``; the
attributes live on the ``Header`` block (old FastPM: on the root block, with ``Position`` etc. at the root).

Conventions implemented
-----------------------
- Header: ``BoxSize``; the scale factor from ``Time`` or ``ScalingFactor``; ``Omega_m`` from ``OmegaM`` or
  ``Om0`` before ``Omega0`` (FastPM writes ``Omega0`` = Omega_cdm for MP-Gadget compatibility, so ``OmegaM``
  wins); ``Omega_lambda`` from ``OmegaLambda`` (else ``1 - Omega_m``: FastPM is flat); ``h`` from ``HubbleParam``.
- Lengths: ``UnitLength_in_cm`` if present (MP-Gadget: usually kpc/h); otherwise FastPM files (recognised by
  ``ScalingFactor``, ``NC`` or ``LibFastPMVersion``) are Mpc/h by FastPM's fixed convention; anything else needs
  ``length_unit``.
- Velocities: ``UsePeculiarVelocity = 1`` (FastPM always, MP-Gadget optionally) means peculiar km/s;
  ``UsePeculiarVelocity = 0`` (MP-Gadget) means the internal ``a^2 dx/dt = a v_pec``, so ``v_pec = V / a``;
  without the attribute, FastPM files are peculiar km/s (FastPM's ``RSDFactor = 1/(a H)`` applies to them) and
  other files need ``velocity_convention``. ``velocity_convention`` overrides all of this.
- Masses: the ``Mass`` block if present, else ``MassTable[type]`` (or old FastPM's ``M0``), in
  ``UnitMass_in_g`` (default 1e10 Msun/h).
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

from .base import (
    MPC_IN_CM, MSUN_IN_G, VELOCITY_CONVENTIONS, Snapshot, SnapshotError, SnapshotHeader, check_parttype,
    check_time_redshift, resolve_length_unit, scale_lengths, snap_to_power_of_ten, velocity_exponent,
)
from .files import iter_slices

__all__ = ["read_header", "iter_chunks", "import_bigfile"]


def import_bigfile(path: Any = None):
    """Import the optional ``bigfile`` package, or raise an ImportError saying how to install it."""
    try:
        import bigfile
    except ImportError:
        where = f"{os.fspath(path)}: " if path is not None else ""
        raise ImportError(f"{where}reading bigfile (FastPM / MP-Gadget) snapshots needs the optional 'bigfile' "
                          "package: pip install bigfile") from None
    return bigfile


def _attrs(block) -> dict:
    out = {}
    for key in block.attrs.keys():
        value = np.asarray(block.attrs[key])
        if value.dtype.kind in "SU":
            out[key] = "".join(np.asarray(value, dtype=str).ravel().tolist())
        else:
            out[key] = value.item() if value.size == 1 else value.tolist()
    return out


def _blocks(f, parttype: int, path: str) -> tuple[str, dict]:
    names = set(f.blocks)
    prefix = f"{parttype}/"
    if f"{prefix}Position" not in names and parttype == 1 and "Position" in names:
        prefix = ""  # old FastPM: columns at the root
    found = {col: prefix + col for col in ("Position", "Velocity", "ID", "Mass") if prefix + col in names}
    missing = [c for c in ("Position", "Velocity", "ID") if c not in found]
    if missing:
        raise SnapshotError(path, f"block(s) {', '.join(prefix + m for m in missing)} missing")
    return prefix, found


def read_header(path: str | os.PathLike, length_unit: str | float | None = None, parttype: int = 1,
                velocity_convention: str | None = None) -> SnapshotHeader:
    """Read the header and column sizes of a bigfile snapshot directory (see the module notes)."""
    parttype = check_parttype(parttype)
    path = os.fspath(path)
    bigfile = import_bigfile(path)
    try:
        f = bigfile.File(path)
    except Exception as exc:  # bigfile raises its own error types
        raise SnapshotError(path, f"cannot open bigfile snapshot ({exc})") from exc
    with f:
        attrs = _attrs(f["Header"]) if "Header" in f.blocks else _attrs(f["."])
        prefix, cols = _blocks(f, parttype, path)
        sizes = {name: f[block].size for name, block in cols.items()}
    n = sizes["Position"]
    if any(size != n for size in sizes.values()):
        raise SnapshotError(path, f"columns of type {parttype} have different lengths: {sizes}")
    a = attrs.get("Time", attrs.get("ScalingFactor"))
    if a is None:
        raise SnapshotError(path, "Header has neither 'Time' nor 'ScalingFactor'")
    a, z = check_time_redshift(path, a, None)
    if "BoxSize" not in attrs:
        raise SnapshotError(path, "Header attribute 'BoxSize' is missing")
    box_file = float(np.asarray(attrs["BoxSize"]).reshape(-1)[0])
    is_fastpm = any(k in attrs for k in ("ScalingFactor", "NC", "LibFastPMVersion"))
    ul = attrs.get("UnitLength_in_cm")
    length_meta = snap_to_power_of_ten(float(ul) / MPC_IN_CM, 1e-5) if ul else (1.0 if is_fastpm else None)
    factor = resolve_length_unit(path, length_meta, length_unit, box_file)
    if velocity_convention is None:
        if "UsePeculiarVelocity" in attrs:
            velocity_convention = "peculiar" if int(attrs["UsePeculiarVelocity"]) else "internal"
        elif is_fastpm:
            velocity_convention = "peculiar"
        else:
            raise SnapshotError(path, "no 'UsePeculiarVelocity' attribute and not a FastPM file: pass "
                                      f"velocity_convention (one of {sorted(VELOCITY_CONVENTIONS)})")
    uv = float(attrs.get("UnitVelocity_in_cm_per_s", 1e5))
    um = attrs.get("UnitMass_in_g")
    mass_unit = 1e10 if not um else snap_to_power_of_ten(float(um) / MSUN_IN_G, 1e-3)
    omega_m = next((float(attrs[k]) for k in ("OmegaM", "Om0", "Omega0") if k in attrs), None)
    omega_l = attrs.get("OmegaLambda", None if omega_m is None else 1.0 - omega_m)
    cosmology = {"Omega_m": omega_m, "Omega_lambda": omega_l, "h": attrs.get("HubbleParam")}
    if "OmegaBaryon" in attrs:
        cosmology["Omega_b"] = float(attrs["OmegaBaryon"])
    mass_table = np.zeros(6)
    if "MassTable" in attrs:
        mass_table[:] = np.asarray(attrs["MassTable"], dtype=np.float64).reshape(-1)[:6]
    elif "M0" in attrs and parttype == 1:
        mass_table[1] = float(attrs["M0"])
    if "Mass" in cols:
        mass_table[parttype] = 0.0
    elif not mass_table[parttype] > 0:
        raise SnapshotError(path, f"no '{prefix}Mass' block and no positive MassTable[{parttype}]")
    npart = np.zeros(6, dtype=np.int64)
    npart[parttype] = n
    return SnapshotHeader(
        format="bigfile", files=[path], npart_total=npart, npart_file=npart[None, :], mass_table=mass_table * mass_unit,
        box_size=float(scale_lengths(np.array(box_file), factor)), box_size_file=box_file, length_unit_mpc_h=factor,
        velocity_factor=snap_to_power_of_ten(uv / 1e5, 1e-6) * a ** velocity_exponent(velocity_convention, 0.0),
        mass_unit_msun_h=mass_unit, redshift=z, scale_factor=a, cosmology=cosmology, attrs=attrs,
        layout=[{"path": path, "columns": cols, "n": n}],
    )


def iter_chunks(header: SnapshotHeader, chunk_size: int, parttype: int = 1) -> Iterator[Snapshot]:
    """Yield consecutive chunks of at most ``chunk_size`` particles."""
    lay = header.layout[0]
    path, cols = lay["path"], lay["columns"]
    bigfile = import_bigfile(path)
    with bigfile.File(path) as f:
        blocks = {name: f[block] for name, block in cols.items()}
        for start, stop in iter_slices(lay["n"], chunk_size):
            pos = np.asarray(blocks["Position"][start:stop]).reshape(-1, 3)
            vel = np.asarray(blocks["Velocity"][start:stop]).reshape(-1, 3)
            ids = np.asarray(blocks["ID"][start:stop]).reshape(-1).astype(np.int64)
            if "Mass" in blocks:
                mass: Any = np.asarray(blocks["Mass"][start:stop], dtype=np.float64) * header.mass_unit_msun_h
            else:
                mass = float(header.mass_table[parttype])
            yield Snapshot(
                positions=scale_lengths(pos, header.length_unit_mpc_h), velocities=vel * header.velocity_factor,
                ids=ids, box_size=header.box_size, redshift=header.redshift, scale_factor=header.scale_factor,
                cosmology=dict(header.cosmology), particle_mass=mass, source=[path],
                length_unit_mpc_h=header.length_unit_mpc_h, parttype=parttype, format=header.format,
            )
