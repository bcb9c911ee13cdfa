"""HDF5 snapshots: Gadget-2/3, Arepo, Gadget-4 and SWIFT (``PartTypeN/Coordinates, Velocities, ParticleIDs[,
Masses]`` plus a ``Header`` group with ``NumPart_ThisFile, NumPart_Total[, _HighWord], MassTable, BoxSize, Time,
Redshift, NumFilesPerSnapshot``).

Flavours and the conventions implemented
----------------------------------------
- **Gadget-2/3, Arepo, Gadget-4** (Gadget-style): lengths, masses and velocities are in the h-scaled internal
  units ``UnitLength_in_cm`` (per h), ``UnitMass_in_g`` (per h) and ``UnitVelocity_in_cm_per_s``, found in
  ``/Parameters`` (Gadget-4) or ``/Header`` (Arepo). Without ``UnitLength_in_cm`` the caller must pass
  ``length_unit``; missing velocity and mass units default to Gadget's km/s and 1e10 Msun/h. ``Time`` is the
  scale factor, and velocities are ``V = v_pec/sqrt(a)`` (a Gadget-4 ``a_scaling`` attribute on the
  ``Velocities`` dataset takes precedence: ``v_pec = V a^a_scaling``). ``ComovingIntegrationOn = 0`` is refused.
  Cosmology comes from ``/Header`` (``Omega0, OmegaLambda, HubbleParam``) or ``/Parameters`` (Gadget-4, which
  also gives ``OmegaBaryon`` and, from our writer, ``n_s, sigma8``).
- **SWIFT** (a ``/Units`` group with ``Unit length in cgs (U_L)`` or ``Header/Code = SWIFT``): units are *not*
  h-scaled, so lengths are ``U_L`` (e.g. Mpc) times ``h`` to give Mpc/h and masses ``U_M`` times ``h`` to give
  Msun/h; velocities are in ``U_L/U_t`` and are already the peculiar velocity ``a dx/dt`` (SWIFT's documented
  convention, ``a-scale exponent = 0``), so no sqrt(a) factor. The scale factor is ``Header/Scale-factor``
  (SWIFT's ``Time`` is cosmic time), and the cosmology is every scalar of ``/Cosmology`` (``Omega_m, Omega_b,
  Omega_lambda, h``, ...). ``BoxSize`` may be a 3-vector; it must be cubic.

Unit constants within 1e-5 (lengths) or 1e-3 (masses, the solar mass differs between codes) of a power of ten of
Gadget's Mpc and Msun are snapped to it, so that e.g. a kpc/h file converts by an exact division by 1000.
"""

from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

from .base import (
    MPC_IN_CM, MSUN_IN_G, Snapshot, SnapshotError, SnapshotHeader, check_parttype, check_time_redshift,
    resolve_length_unit, scale_lengths, snap_to_power_of_ten, velocity_exponent,
)
from .files import iter_slices, locate, member_files

__all__ = ["read_header", "iter_chunks"]

_COSMO_NAMES = {"Omega0": "Omega_m", "OmegaLambda": "Omega_lambda", "HubbleParam": "h", "OmegaBaryon": "Omega_b",
                "n_s": "n_s", "PrimordialIndex": "n_s", "sigma8": "sigma8", "Sigma8": "sigma8"}
_SWIFT_UL = "Unit length in cgs (U_L)"


def _py(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size != 1 else _py(value.reshape(()).item())
    return value.item() if isinstance(value, np.generic) else value


def _group_attrs(f, name: str) -> dict:
    return {k: _py(v) for k, v in f[name].attrs.items()} if name in f else {}


def _scalar(path: str, attrs: dict, key: str, default: Any = None) -> Any:
    if key not in attrs:
        if default is None:
            raise SnapshotError(path, f"Header attribute {key!r} is missing")
        return default
    return attrs[key]


def _file_info(path: str, parttype: int) -> dict:
    """Read one file's metadata and check the requested particle type's datasets."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "Header" not in f:
                raise SnapshotError(path, "HDF5 file has no 'Header' group: not a Gadget/SWIFT snapshot")
            header = _group_attrs(f, "Header")
            params, units, cosmo = _group_attrs(f, "Parameters"), _group_attrs(f, "Units"), _group_attrs(f, "Cosmology")
            this = np.asarray(_scalar(path, header, "NumPart_ThisFile"), dtype=np.int64).reshape(-1)
            mass_table = np.asarray(_scalar(path, header, "MassTable", [0.0] * len(this)), dtype=np.float64)
            n, group = int(this[parttype]) if parttype < len(this) else 0, f"PartType{parttype}"
            names = ["Coordinates", "Velocities", "ParticleIDs"]
            if n and mass_table[parttype] == 0:
                names.append("Masses")
            vel_exponent = None
            for name in names if n else []:
                if f"{group}/{name}" not in f:
                    raise SnapshotError(path, f"dataset {group}/{name} is missing")
                shape = f[group][name].shape
                if shape[0] != n or (name in ("Coordinates", "Velocities") and shape[1:] != (3,)):
                    raise SnapshotError(path, f"{group}/{name} has shape {shape} but "
                                              f"NumPart_ThisFile[{parttype}] = {n}")
            if n:
                vattrs = f[group]["Velocities"].attrs
                for key in ("a_scaling", "a-scale exponent"):
                    if key in vattrs:
                        vel_exponent = float(np.asarray(vattrs[key]).reshape(-1)[0])
    except OSError as exc:
        raise SnapshotError(path, f"cannot read HDF5 file ({exc})") from exc
    nt = np.asarray(_scalar(path, header, "NumPart_Total"), dtype=np.int64).reshape(-1)
    hw = np.asarray(header.get("NumPart_Total_HighWord", [0] * len(nt)), dtype=np.int64).reshape(-1)
    total = np.where(nt < 2**32, nt + (hw << 32), nt)  # 64-bit totals (Gadget-4) ignore the high word
    swift = _SWIFT_UL in units or str(header.get("Code", "")).upper().startswith("SWIFT")
    return {"path": path, "header": header, "params": params, "units": units, "cosmo": cosmo, "this": this,
            "total": total, "mass_table": mass_table, "swift": swift, "vel_exponent": vel_exponent}


def _cubic_box(path: str, box: Any) -> float:
    b = np.asarray(box, dtype=np.float64).reshape(-1)
    if b.size == 0 or not np.all(b == b[0]) or not b[0] > 0:
        raise SnapshotError(path, f"BoxSize {box!r} is not a positive cubic box")
    return float(b[0])


def _units(info: dict, path: str) -> tuple[float | None, float, float, float, float | None, dict]:
    """(length factor from metadata or None, velocity km/s factor, mass Msun/h factor, a, z, cosmology)."""
    header, params, cosmo = info["header"], info["params"], info["cosmo"]
    if info["swift"]:
        units = info["units"]
        h = cosmo.get("h", header.get("HubbleParam"))
        if h is None:
            raise SnapshotError(path, "SWIFT snapshot without /Cosmology 'h': cannot convert to h-scaled units")
        try:
            ul, um, ut = (float(units[k]) for k in (_SWIFT_UL, "Unit mass in cgs (U_M)", "Unit time in cgs (U_t)"))
        except KeyError as exc:
            raise SnapshotError(path, f"SWIFT /Units attribute {exc} is missing") from None
        length = snap_to_power_of_ten(ul / MPC_IN_CM, 1e-5) * h
        vel = snap_to_power_of_ten(ul / ut / 1e5, 1e-6)
        mass = snap_to_power_of_ten(um / MSUN_IN_G, 1e-3) * h
        a = header.get("Scale-factor", cosmo.get("Scale-factor"))
        if a is None:
            raise SnapshotError(path, "SWIFT snapshot without 'Scale-factor' (its 'Time' is not the scale factor)")
        a, z = check_time_redshift(path, a, header.get("Redshift", cosmo.get("Redshift")))
        cosmology = {k: v for k, v in cosmo.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        cosmology.setdefault("Omega_lambda", None)
        cosmology.setdefault("Omega_m", None)
        return length, vel, mass, a, z, cosmology
    if int(params.get("ComovingIntegrationOn", 1)) == 0:
        raise SnapshotError(path, "ComovingIntegrationOn = 0: not a comoving cosmological snapshot")
    meta = {**header, **params}

    def unit(key):
        return float(meta[key]) if key in meta and float(meta[key]) > 0 else None

    ul, uv, um = unit("UnitLength_in_cm"), unit("UnitVelocity_in_cm_per_s"), unit("UnitMass_in_g")
    length = None if ul is None else snap_to_power_of_ten(ul / MPC_IN_CM, 1e-5)
    vel = 1.0 if uv is None else snap_to_power_of_ten(uv / 1e5, 1e-6)
    mass = 1e10 if um is None else snap_to_power_of_ten(um / MSUN_IN_G, 1e-3)
    a, z = check_time_redshift(path, _scalar(path, header, "Time"), header.get("Redshift"))
    cosmology: dict = {"Omega_m": None, "Omega_lambda": None, "h": None}
    for src in (header, params):
        for key, name in _COSMO_NAMES.items():
            if key in src and isinstance(src[key], (int, float)):
                cosmology[name] = float(src[key])
    return length, vel, mass, a, z, cosmology


def read_header(path: str | os.PathLike, length_unit: str | float | None = None, parttype: int = 1,
                velocity_convention: str | None = None) -> SnapshotHeader:
    """Read and cross-check the headers of every file of an HDF5 snapshot (see the module notes for units).

    Parameters
    ----------
    path : str or PathLike
        Any file of the set, or its base name (``snap_005`` for ``snap_005.0.hdf5 ...`` or ``snap_005.hdf5``).
    length_unit : {"Mpc/h", "kpc/h"} or float, optional
        Unit of the stored lengths; needed only when the file has no unit metadata (overrides it otherwise).
    parttype : int
        Particle type whose datasets are checked.
    velocity_convention : str, optional
        Override the flavour's velocity convention (see :data:`~data_prep.readers.base.VELOCITY_CONVENTIONS`).
    """
    parttype = check_parttype(parttype)
    given, base, suffix = locate(path)
    first = _file_info(given, parttype)
    files = member_files(given, base, suffix, int(first["header"].get("NumFilesPerSnapshot", 1)))
    infos = [first if f == given else _file_info(f, parttype) for f in files]
    i0, f0 = infos[0], files[0]
    box_file = _cubic_box(f0, _scalar(f0, i0["header"], "BoxSize"))
    for info in infos:
        h, p = info["header"], info["path"]
        if not np.array_equal(info["total"], i0["total"]):
            raise SnapshotError(p, f"NumPart_Total {info['total'].tolist()} differs from "
                                   f"{i0['total'].tolist()} in {f0}")
        same = (h.get("NumFilesPerSnapshot", 1) == i0["header"].get("NumFilesPerSnapshot", 1)
                and _cubic_box(p, _scalar(p, h, "BoxSize")) == box_file and h.get("Time") == i0["header"].get("Time"))
        if not same:
            raise SnapshotError(p, f"NumFilesPerSnapshot/BoxSize/Time differ from those in {f0}")
    this = np.array([info["this"] for info in infos], dtype=np.int64)
    if not np.array_equal(this.sum(axis=0), i0["total"]):
        raise SnapshotError(files[-1], f"sum of NumPart_ThisFile over the {len(files)} file(s) "
                                       f"{this.sum(0).tolist()} differs from NumPart_Total {i0['total'].tolist()}")
    length_meta, vel_unit, mass_unit, a, z, cosmology = _units(i0, f0)
    factor = resolve_length_unit(f0, length_meta, length_unit, box_file)
    default_p = 0.0 if i0["swift"] else 0.5
    exps = {info["vel_exponent"] for info in infos if info["vel_exponent"] is not None}
    if len(exps) == 1:
        default_p = exps.pop()
    return SnapshotHeader(
        format="hdf5-swift" if i0["swift"] else "hdf5-gadget", files=files, npart_total=i0["total"],
        npart_file=this, mass_table=i0["mass_table"] * mass_unit,
        box_size=float(scale_lengths(np.array(box_file), factor)), box_size_file=box_file, length_unit_mpc_h=factor,
        velocity_factor=vel_unit * a ** velocity_exponent(velocity_convention, default_p),
        mass_unit_msun_h=mass_unit, redshift=z, scale_factor=a, cosmology=cosmology,
        attrs=dict(i0["header"]), layout=infos,
    )


def iter_chunks(header: SnapshotHeader, chunk_size: int, parttype: int = 1) -> Iterator[Snapshot]:
    """Yield consecutive chunks (at most ``chunk_size`` particles, never spanning files) of one type."""
    import h5py

    group = f"PartType{parttype}"
    for info in header.layout:
        path, n = info["path"], int(info["this"][parttype]) if parttype < len(info["this"]) else 0
        try:
            with h5py.File(path, "r") as f:
                for start, stop in iter_slices(n, chunk_size):
                    g = f[group]
                    pos = g["Coordinates"][start:stop]
                    vel = g["Velocities"][start:stop]
                    ids = np.asarray(g["ParticleIDs"][start:stop]).reshape(-1).astype(np.int64)
                    if header.mass_table[parttype] > 0:
                        mass: Any = float(header.mass_table[parttype])
                    else:
                        mass = np.asarray(g["Masses"][start:stop], dtype=np.float64) * header.mass_unit_msun_h
                    yield Snapshot(
                        positions=scale_lengths(pos, header.length_unit_mpc_h),
                        velocities=vel * header.velocity_factor, ids=ids, box_size=header.box_size,
                        redshift=header.redshift, scale_factor=header.scale_factor,
                        cosmology=dict(header.cosmology), particle_mass=mass, source=[path],
                        length_unit_mpc_h=header.length_unit_mpc_h, parttype=parttype, format=header.format,
                    )
        except OSError as exc:
            raise SnapshotError(path, f"cannot read particle data ({exc})") from exc
