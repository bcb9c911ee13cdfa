"""Snapshot writers: Gadget-4-style HDF5 (what the simulator writes) and Gadget-2 binary (formats 1 and 2).

Both take particles in the project's units (comoving Mpc/h, peculiar km/s, Msun/h) and store them the Gadget
way: lengths in ``length_unit`` (``UnitLength_in_cm`` = 3.085678e24 for Mpc/h, 3.085678e21 for kpc/h),
velocities as ``v_pec / sqrt(a)`` in km/s, masses in 1e10 Msun/h (``UnitMass_in_g`` = 1.989e43). A multi-file
snapshot splits the particles contiguously (file ``k`` gets particles ``[k N / n, (k+1) N / n)``) into
``base.k.hdf5`` (HDF5) or ``base.k`` (binary). Every set is written atomically: all files go to temporary
files first and are renamed only when all succeeded; on any failure no file of the set remains.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

import numpy as np

from emulator.core.atomic import atomic_file_set
from .readers.base import MPC_IN_CM, parse_length_unit
from .readers.gadget_binary import HEADER_DTYPE

__all__ = ["write_gadget4_hdf5", "write_gadget2_binary", "MASS_UNIT_IN_G"]

MASS_UNIT_IN_G = 1.989e43  # 1e10 Msun/h, Gadget's default
_MASS_UNIT_MSUN_H = 1e10
_RESERVED = {"Omega0", "OmegaLambda", "OmegaBaryon", "HubbleParam", "UnitLength_in_cm", "UnitVelocity_in_cm_per_s",
             "UnitMass_in_g", "ComovingIntegrationOn", "BoxSize", "n_s", "sigma8"}


def _as_float_array(name: str, value: Any, n: int | None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or (n is not None and arr.shape[0] != n):
        raise ValueError(f"{name} must have shape (N, 3){'' if n is None else f' with N={n}'}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def _prepare(positions, velocities, ids, box_size, redshift, cosmology, particle_mass, num_files, length_unit,
             parttype) -> dict:
    """Validate the common writer arguments; return everything in file units."""
    pos = _as_float_array("positions", positions, None)
    n = pos.shape[0]
    vel = _as_float_array("velocities", velocities, n)
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu" or ids.shape != (n,):
        raise ValueError(f"ids must be an integer array of shape ({n},), got {ids.dtype} {ids.shape}")
    if n and ids.min() < 0:
        raise ValueError("ids must be non-negative")
    box_size = float(box_size)
    if not (box_size > 0 and math.isfinite(box_size)):
        raise ValueError(f"box_size must be positive and finite, got {box_size!r}")
    if n and (pos.min() < 0 or pos.max() > box_size):
        raise ValueError(f"positions must lie in [0, box_size={box_size:g}] Mpc/h (wrap them periodically first)")
    redshift = float(redshift)
    if not (redshift > -1 and math.isfinite(redshift)):
        raise ValueError(f"redshift must be finite and > -1, got {redshift!r}")
    if isinstance(num_files, bool) or not isinstance(num_files, (int, np.integer)) or not 1 <= num_files <= max(n, 1):
        raise ValueError(f"num_files must be an integer in [1, N={n}], got {num_files!r}")
    if isinstance(parttype, bool) or not isinstance(parttype, (int, np.integer)) or not 0 <= parttype <= 5:
        raise ValueError(f"parttype must be an integer in 0..5, got {parttype!r}")
    if hasattr(cosmology, "to_dict") and not isinstance(cosmology, Mapping):
        cosmology = cosmology.to_dict()
    if not isinstance(cosmology, Mapping) or "Omega_m" not in cosmology or "h" not in cosmology:
        raise ValueError("cosmology must be a mapping with at least 'Omega_m' and 'h'")
    cosmo = {k: float(v) for k, v in cosmology.items() if isinstance(v, (int, float, np.floating, np.integer))}
    mass = np.asarray(particle_mass, dtype=np.float64)
    if mass.ndim not in (0, 1) or (mass.ndim == 1 and mass.shape != (n,)):
        raise ValueError(f"particle_mass must be a scalar or have shape ({n},), got {mass.shape}")
    if not np.all(np.isfinite(mass)) or not np.all(mass > 0):
        raise ValueError("particle_mass must be positive and finite (Msun/h)")
    factor = parse_length_unit(length_unit)
    a = 1.0 / (1.0 + redshift)
    bounds = [k * n // num_files for k in range(num_files + 1)]
    return {
        "n": n, "pos_file": _to_file_units(pos, factor), "vel_file": (vel / math.sqrt(a)).astype(vel.dtype),
        "ids": ids.astype(np.uint64), "box_file": float(_to_file_units(np.array(box_size), factor)),
        "a": a, "z": redshift, "cosmo": cosmo, "mass": mass / _MASS_UNIT_MSUN_H, "factor": factor,
        "slices": list(zip(bounds[:-1], bounds[1:], strict=True)), "parttype": int(parttype),
        "num_files": int(num_files),
    }


def _to_file_units(x: np.ndarray, factor: float) -> np.ndarray:
    """Mpc/h -> file units (exact integer multiplication for kpc/h); inverse of :func:`scale_lengths`."""
    if factor == 1.0:
        return x
    inv = 1.0 / factor
    if inv > 1.0 and abs(inv - round(inv)) <= 1e-9 * inv:
        return (x * float(round(inv))).astype(x.dtype)
    return (x / factor).astype(x.dtype)


def _targets(path: str | os.PathLike, num_files: int, suffix: str, overwrite: bool) -> list[str]:
    path = os.fspath(path)
    stem = path[: -len(suffix)] if suffix and path.endswith(suffix) else path
    names = [stem + suffix] if num_files == 1 else [f"{stem}.{k}{suffix}" for k in range(num_files)]
    if not overwrite:
        for name in names:
            if os.path.exists(name):
                raise FileExistsError(f"{name} exists and overwrite=False")
    return names


def _check_extra(extra_attrs: Mapping | None) -> dict:
    out = {}
    for key, value in (extra_attrs or {}).items():
        if not isinstance(key, str) or key in _RESERVED:
            raise ValueError(f"extra_attrs key {key!r} is not a string or clashes with a reserved parameter")
        if value is None or isinstance(value, (dict, list, tuple)):
            value = json.dumps(value)
        out[key] = value
    return out


def write_gadget4_hdf5(path: str | os.PathLike, positions, velocities, ids, box_size: float, redshift: float,
                       cosmology: Mapping, particle_mass, *, num_files: int = 1, length_unit: str | float = "Mpc/h",
                       extra_attrs: Mapping | None = None, parttype: int = 1, overwrite: bool = True) -> list[str]:
    """Write particles as a Gadget-4-style HDF5 snapshot; return the file names written.

    Parameters
    ----------
    path : str or PathLike
        Snapshot name: ``name.hdf5`` (``.hdf5`` is appended if missing) for one file, else ``name.k.hdf5``.
    positions : array (N, 3), comoving Mpc/h in ``[0, box_size]``. Stored in its float precision.
    velocities : array (N, 3), peculiar km/s; stored as ``v/sqrt(a)``.
    ids : integer array (N,), non-negative; stored as uint64.
    box_size : float, Mpc/h.  redshift : float.
    cosmology : mapping with ``Omega_m, h`` and optionally ``Omega_b, n_s, sigma8, Omega_lambda``
        (``Omega_lambda`` defaults to ``1 - Omega_m``), or a ``Cosmology``.
    particle_mass : float or array (N,), Msun/h: a scalar goes to ``MassTable``, an array to ``Masses``.
    num_files : int
        Number of files; particles are split contiguously.
    length_unit : {"Mpc/h", "kpc/h"} or float
        Unit of the stored lengths (``UnitLength_in_cm`` = 3.085678e24 times the factor).
    extra_attrs : mapping, optional
        Provenance (seed, model, version...) written into ``/Parameters``; dicts/lists as JSON strings.
    parttype : int
        Gadget particle type to write (1 = dark matter).
    overwrite : bool
        If False, refuse (FileExistsError) when a target file exists.
    """
    import h5py

    p = _prepare(positions, velocities, ids, box_size, redshift, cosmology, particle_mass, num_files, length_unit,
                 parttype)
    extra = _check_extra(extra_attrs)
    targets = _targets(path, p["num_files"], ".hdf5", overwrite)
    t, cosmo = p["parttype"], p["cosmo"]
    omega_l = cosmo.get("Omega_lambda", 1.0 - cosmo["Omega_m"])
    unit_length = MPC_IN_CM * p["factor"]
    total = np.zeros(6, dtype=np.uint64)
    total[t] = p["n"]
    mass_table = np.zeros(6)
    if p["mass"].ndim == 0:
        mass_table[t] = float(p["mass"])
    params = {"Omega0": cosmo["Omega_m"], "OmegaLambda": omega_l, "HubbleParam": cosmo["h"], "BoxSize": p["box_file"],
              "UnitLength_in_cm": unit_length, "UnitVelocity_in_cm_per_s": 1e5, "UnitMass_in_g": MASS_UNIT_IN_G,
              "ComovingIntegrationOn": np.int32(1)}
    for key, name in (("Omega_b", "OmegaBaryon"), ("n_s", "n_s"), ("sigma8", "sigma8")):
        if key in cosmo:
            params[name] = cosmo[key]
    scaling = {  # Gadget-4 per-dataset unit attributes: physical cgs = value * a^a h^h * to_cgs
        "Coordinates": (1.0, -1.0, 1.0, 0.0, 0.0, unit_length), "Velocities": (0.5, 0.0, 0.0, 0.0, 1.0, 1e5),
        "ParticleIDs": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0), "Masses": (0.0, -1.0, 0.0, 1.0, 0.0, MASS_UNIT_IN_G)}
    with atomic_file_set(targets) as temps:
        for (lo, hi), tmp in zip(p["slices"], temps, strict=True):
            this = np.zeros(6, dtype=np.uint32)
            this[t] = hi - lo
            with h5py.File(tmp, "w") as f:
                hdr = f.create_group("Header").attrs
                hdr.update({"BoxSize": p["box_file"], "Time": p["a"], "Redshift": p["z"],
                            "NumFilesPerSnapshot": np.int32(p["num_files"]), "MassTable": mass_table,
                            "NumPart_ThisFile": this, "NumPart_Total": (total & 0xFFFFFFFF).astype(np.uint32),
                            "NumPart_Total_HighWord": (total >> np.uint64(32)).astype(np.uint32),
                            "Omega0": cosmo["Omega_m"], "OmegaLambda": omega_l, "HubbleParam": cosmo["h"],
                            "Flag_DoublePrecision": np.int32(p["pos_file"].dtype == np.float64)})
                par = f.create_group("Parameters").attrs
                par.update(params)
                for key, value in extra.items():
                    try:
                        par[key] = value
                    except TypeError as exc:
                        raise ValueError(f"extra_attrs[{key!r}] cannot be stored as an HDF5 attribute: {exc}") from None
                g = f.create_group(f"PartType{t}")
                data = {"Coordinates": p["pos_file"][lo:hi], "Velocities": p["vel_file"][lo:hi],
                        "ParticleIDs": p["ids"][lo:hi]}
                if p["mass"].ndim == 1:
                    data["Masses"] = p["mass"][lo:hi]
                for name, values in data.items():
                    ds = g.create_dataset(name, data=values)
                    for key, val in zip(("a_scaling", "h_scaling", "length_scaling", "mass_scaling",
                                         "velocity_scaling", "to_cgs"), scaling[name], strict=True):
                        ds.attrs[key] = val
    return targets


def _record(payload: bytes, endian: str) -> bytes:
    marker = np.array([len(payload) % 2**32], dtype=endian + "u4").tobytes()
    return marker + payload + marker


def write_gadget2_binary(path: str | os.PathLike, positions, velocities, ids, box_size: float, redshift: float,
                         cosmology: Mapping, particle_mass, *, num_files: int = 1, format: int = 1,
                         id_bytes: int = 4, double: bool = False, length_unit: str | float = "Mpc/h",
                         parttype: int = 1, endian: str = "<", overwrite: bool = True) -> list[str]:
    """Write particles as a Gadget-2 binary snapshot (``path`` or ``path.0 ... path.N-1``); return the names.

    Parameters are those of :func:`write_gadget4_hdf5`, plus ``format`` (1, or 2 with block labels),
    ``id_bytes`` (4 or 8), ``double`` (float64 POS/VEL/MASS instead of float32) and ``endian`` ("<" or ">").
    A scalar ``particle_mass`` goes to ``Massarr`` (no MASS block); an array is written as a MASS block.
    """
    if format not in (1, 2):
        raise ValueError(f"format must be 1 or 2, got {format!r}")
    if id_bytes not in (4, 8):
        raise ValueError(f"id_bytes must be 4 or 8, got {id_bytes!r}")
    if endian not in ("<", ">"):
        raise ValueError(f"endian must be '<' or '>', got {endian!r}")
    p = _prepare(positions, velocities, ids, box_size, redshift, cosmology, particle_mass, num_files, length_unit,
                 parttype)
    if id_bytes == 4 and p["n"] and int(p["ids"].max()) >= 2**32:
        raise ValueError("ids do not fit in 4 bytes: use id_bytes=8")
    targets = _targets(path, p["num_files"], "", overwrite)
    t, cosmo, fdt = p["parttype"], p["cosmo"], np.dtype(endian + ("f8" if double else "f4"))
    with atomic_file_set(targets) as temps:
        for (lo, hi), tmp in zip(p["slices"], temps, strict=True):
            h = np.zeros((), dtype=HEADER_DTYPE.newbyteorder(endian))
            h["npart"][t], h["nall"][t], h["nall_hw"][t] = hi - lo, p["n"] % 2**32, p["n"] >> 32
            if p["mass"].ndim == 0:
                h["massarr"][t] = float(p["mass"])
            h["time"], h["redshift"], h["num_files"], h["box_size"] = p["a"], p["z"], p["num_files"], p["box_file"]
            h["omega0"], h["hubble"] = cosmo["Omega_m"], cosmo["h"]
            h["omega_lambda"] = cosmo.get("Omega_lambda", 1.0 - cosmo["Omega_m"])
            blocks = [("HEAD", h.tobytes()), ("POS ", p["pos_file"][lo:hi].astype(fdt).tobytes()),
                      ("VEL ", p["vel_file"][lo:hi].astype(fdt).tobytes()),
                      ("ID  ", p["ids"][lo:hi].astype(f"{endian}u{id_bytes}").tobytes())]
            if p["mass"].ndim == 1:
                blocks.append(("MASS", p["mass"][lo:hi].astype(fdt).tobytes()))
            with open(tmp, "wb") as fh:
                for label, payload in blocks:
                    if format == 2:
                        nextblock = np.array([(len(payload) + 8) % 2**32], dtype=endian + "u4").tobytes()
                        fh.write(_record(label.encode("ascii") + nextblock, endian))
                    fh.write(_record(payload, endian))
    return targets
