"""Hand-built snapshot byte layouts and HDF5 layouts for reader tests, written with ``struct``/``h5py`` only.

These are independent of ``data_prep.writers``: the Gadget-2 header and record framing are spelled out field by
field from the Gadget-2 user guide (256-byte header; 4-byte record markers; format-2 label records).
"""

from __future__ import annotations

import struct
from typing import Sequence

import numpy as np

# Npart[6] Massarr[6] Time Redshift FlagSfr FlagFeedback Nall[6] FlagCooling NumFiles BoxSize Omega0 OmegaLambda
# HubbleParam FlagAge FlagMetals NallHW[6] flag_entr_ics  -> 196 bytes, zero-padded to 256
_HEADER_FMT = "6I6dddii6Iiiddddii6Ii"


def header_bytes(endian: str, npart: Sequence[int], massarr: Sequence[float], time: float, redshift: float,
                 nall: Sequence[int], num_files: int, box_size: float, omega0: float, omega_lambda: float,
                 hubble: float, nall_hw: Sequence[int] = (0,) * 6) -> bytes:
    """The 256-byte Gadget-2 header."""
    body = struct.pack(endian + _HEADER_FMT, *npart, *massarr, time, redshift, 0, 0, *nall, 0, num_files,
                       box_size, omega0, omega_lambda, hubble, 0, 0, *nall_hw, 0)
    assert len(body) == 196
    return body + b"\0" * 60


def record(payload: bytes, endian: str) -> bytes:
    """A Fortran record: int32 size, payload, int32 size."""
    marker = struct.pack(endian + "I", len(payload))
    return marker + payload + marker


def label_record(label: str, next_size: int, endian: str) -> bytes:
    """Format-2 label record: marker 8, 4-char label, int (next record's size incl. its markers), marker 8."""
    return record(label.ljust(4).encode("ascii") + struct.pack(endian + "I", next_size + 8), endian)


def floats(values, endian: str, double: bool = False) -> bytes:
    flat = np.asarray(values, dtype=np.float64).ravel().tolist()
    return struct.pack(f"{endian}{len(flat)}{'d' if double else 'f'}", *flat)


def ints(values, endian: str, nbytes: int = 4) -> bytes:
    flat = np.asarray(values).ravel().tolist()
    return struct.pack(f"{endian}{len(flat)}{'I' if nbytes == 4 else 'Q'}", *flat)


def gadget_file(blocks: Sequence[tuple[str, bytes]], endian: str = "<", fmt: int = 1) -> bytes:
    """Concatenate records (with label records for format 2)."""
    out = b""
    for label, payload in blocks:
        if fmt == 2:
            out += label_record(label, len(payload), endian)
        out += record(payload, endian)
    return out


# A small mixed-type snapshot with known contents: 2 gas (type 0, masses in MASS), 4 DM (type 1, mass table),
# 1 star (type 4, mass in MASS). a = 0.25 (z = 3), so sqrt(a) = 1/2 exactly; lengths in kpc/h.
MIXED = {
    "npart": [2, 4, 0, 0, 1, 0],
    "massarr": [0.0, 0.5, 0.0, 0.0, 0.0, 0.0],
    "time": 0.25, "redshift": 3.0, "box": 10000.0, "omega0": 0.3, "omega_lambda": 0.7, "hubble": 0.7,
    "pos": np.array([[100.0, 200.0, 300.0], [400.0, 500.0, 600.0],  # gas
                     [1500.0, 2500.0, 3500.0], [9000.0, 250.0, 125.0], [4000.0, 8000.0, 1.0],
                     [7777.0, 3333.0, 5555.0],  # DM
                     [1234.0, 5678.0, 9012.0]]),  # star
    "vel": np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0],
                     [200.0, -100.0, 50.0], [-64.0, 32.0, 16.0], [0.0, 2.0, -8.0], [1000.0, -1000.0, 0.5],
                     [6.0, 4.0, 2.0]]),
    "ids": np.array([10, 11, 3, 1, 4, 2, 20]),
    "mass_block": np.array([0.125, 0.25, 0.0625]),  # gas, gas, star (1e10 Msun/h)
}


def mixed_gadget_file(endian: str = "<", fmt: int = 1, double: bool = False, id_bytes: int = 4,
                      with_extra_block: bool = True) -> bytes:
    """The :data:`MIXED` snapshot as a Gadget-2 binary file (plus a gas ``U`` block that readers must skip)."""
    m = MIXED
    head = header_bytes(endian, m["npart"], m["massarr"], m["time"], m["redshift"], m["npart"], 1, m["box"],
                        m["omega0"], m["omega_lambda"], m["hubble"])
    blocks = [("HEAD", head), ("POS", floats(m["pos"], endian, double)), ("VEL", floats(m["vel"], endian, double)),
              ("ID", ints(m["ids"], endian, id_bytes)), ("MASS", floats(m["mass_block"], endian, double))]
    if with_extra_block:
        blocks.append(("U", floats([1.0, 2.0], endian, double)))
    return gadget_file(blocks, endian, fmt)


def write_swift_like(path, pos_mpc, vel_kms, ids, mass_1e10msun, *, box_mpc, h, scale_factor, omega_m=0.3,
                     boxsize_vector=True) -> None:
    """A SWIFT-layout HDF5 file built by hand: non-h units (Mpc, 1e10 Msun, km/s), peculiar velocities."""
    import h5py

    n = len(ids)
    ul, um = 3.08567758149e24, 1.98841e43
    with h5py.File(path, "w") as f:
        hdr = f.create_group("Header").attrs
        hdr["BoxSize"] = np.full(3, box_mpc) if boxsize_vector else box_mpc
        hdr["NumPart_ThisFile"] = np.array([0, n, 0, 0, 0, 0, 0], dtype=np.int64)
        hdr["NumPart_Total"] = np.array([0, n, 0, 0, 0, 0, 0], dtype=np.uint64)
        hdr["NumPart_Total_HighWord"] = np.zeros(7, dtype=np.uint64)
        hdr["MassTable"] = np.zeros(7)
        hdr["NumFilesPerSnapshot"] = 1
        hdr["Time"] = 0.123  # SWIFT: cosmic time in internal units, not the scale factor
        hdr["Scale-factor"] = scale_factor
        hdr["Redshift"] = 1.0 / scale_factor - 1.0
        hdr["Code"] = "SWIFT"
        u = f.create_group("Units").attrs
        u["Unit length in cgs (U_L)"] = ul
        u["Unit mass in cgs (U_M)"] = um
        u["Unit time in cgs (U_t)"] = ul / 1e5
        u["Unit current in cgs (U_I)"] = 1.0
        u["Unit temperature in cgs (U_T)"] = 1.0
        c = f.create_group("Cosmology").attrs
        c["h"], c["Omega_m"], c["Omega_lambda"], c["Omega_b"] = h, omega_m, 1 - omega_m, 0.05
        c["Redshift"], c["Scale-factor"] = 1.0 / scale_factor - 1.0, scale_factor
        g = f.create_group("PartType1")
        g.create_dataset("Coordinates", data=pos_mpc).attrs["a-scale exponent"] = 1.0
        g.create_dataset("Velocities", data=vel_kms).attrs["a-scale exponent"] = 0.0
        g.create_dataset("ParticleIDs", data=np.asarray(ids, dtype=np.uint64))
        g.create_dataset("Masses", data=mass_1e10msun)
