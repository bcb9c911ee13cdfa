"""Catalogues in memory: the :class:`Catalog` container, column units, input validation and attribute encoding.

Units
-----
Columns are named as in nbodykit: ``Position`` (N,3) Mpc/h, ``Velocity`` (N,3) km/s, ``Mass`` Msun/h, ``RA``,
``DEC`` degrees, ``Z``, ... Each column carries a unit string (``""`` means dimensionless or unspecified);
:data:`DEFAULT_UNITS` gives those of the standard columns, a :class:`Catalog`'s ``units`` or the caller's
``units`` override them. The strings are stored and read back verbatim (``"Mpc/h"``, ``"Msun/h"``). Generic unit
parsers read a bare ``h`` as the hour: HDF5 files keep the strings only, FITS files also give astropy the units
with little h as ``astropy.cosmology.units.littleh`` and never write an ``h`` into ``TUNITn`` (see
:mod:`emulator.mocks.io_fits`).

Validation
----------
Before anything touches the disk, a catalogue is checked (:func:`prepare_columns`): non-empty, printable column
names without ``'/'``, shapes ``(N,)`` or ``(N, k)`` with a common ``N``, numeric or boolean dtypes, finite
floating-point values, ASCII units, and for FITS only the dtypes of :data:`FITS_CODES` and names that differ in
more than case. Every failure is a one-line ``ValueError``.

Attributes
----------
Attrs (provenance) are a mapping with non-empty ASCII string keys. Values that a file format cannot hold
natively (dicts, lists, tuples, ``None``, dataclasses such as :class:`~emulator.core.cosmology.Cosmology`) are
JSON-encoded by :func:`dumps_attr`: numpy arrays as ``{"__ndarray__": list, "dtype": str}``, numpy scalars as
Python numbers, dataclasses as dicts, paths as strings; :func:`json_hook` turns the arrays back into numpy
(tuples come back as lists). Torch tensors are accepted wherever numpy arrays are (:mod:`.arrays`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import numpy as np

from .arrays import as_array, from_torch

__all__ = ["Catalog", "DEFAULT_UNITS", "FORMATS", "FITS_CODES"]

FORMATS = ("hdf5", "fits")

#: Units of the standard columns ("" = dimensionless). Other columns get "" unless the caller passes units.
DEFAULT_UNITS: dict[str, str] = {
    "Position": "Mpc/h",
    "RSDPosition": "Mpc/h",
    "Velocity": "km/s",
    "VelOffset": "Mpc/h",
    "Mass": "Msun/h",
    "Radius": "Mpc/h",
    "RA": "deg",
    "DEC": "deg",
    "Z": "",
    "Z_COSMO": "",
    "DISTANCE": "Mpc/h",
    "DISTANCE_COSMO": "Mpc/h",
    "HaloMass": "Msun/h",
    "VLOS": "km/s",
    "NZ": "(h/Mpc)^3",
    "INDEX": "",
    "REPLICA": "",
    "ID": "",
    "HaloID": "",
    "WEIGHT": "",
}

#: Column dtypes a FITS catalogue supports: numpy kind + itemsize (``"b"`` for bool) -> FITS ``TFORM`` letter.
FITS_CODES = {"b": "L", "u1": "B", "i2": "I", "i4": "J", "i8": "K", "f4": "E", "f8": "D"}


class Catalog(dict):
    """Columns (``name -> numpy array``) with ``attrs`` (provenance) and ``units`` (``name -> str``)."""

    def __init__(self, columns: Mapping[str, Any] = (), attrs: Mapping[str, Any] | None = None,
                 units: Mapping[str, str] | None = None) -> None:
        super().__init__(columns)
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.units: dict[str, str] = dict(units or {})

    @property
    def size(self) -> int:
        """Number of rows (0 for a catalogue without columns)."""
        return len(next(iter(self.values()))) if self else 0

    def __repr__(self) -> str:
        return f"Catalog(size={self.size}, columns={list(self)}, attrs={sorted(self.attrs)})"


# ---------------------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------------------
def check_format(fmt: Any) -> str:
    """The file format in lower case, one of :data:`FORMATS`."""
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    return fmt.lower()


def check_name(name: Any, what: str) -> str:
    """A column or catalogue name: a non-empty printable string without ``'/'``."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise ValueError(f"{what} must be a non-empty printable string without '/', got {name!r}")
    return name


def check_path(path: Any) -> str:
    """An output file name whose directory exists and that is not itself a directory."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise ValueError(f"path must be a file name, got {path!r}") from None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ValueError(f"path {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"path {path!r} is a directory")
    return path


def fits_code(dtype: np.dtype) -> str | None:
    """FITS ``TFORM`` letter of a column dtype, ``None`` if FITS cannot hold it (see :data:`FITS_CODES`)."""
    key = "b" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize}"
    return FITS_CODES.get(key)


def prepare_columns(columns: Mapping[str, Any], units: Mapping[str, str] | None, fmt: str, label: str):
    """Validate one catalogue; return ``(arrays, units)`` ready to write (native byte order, contiguous)."""
    if not isinstance(columns, Mapping) or not columns:
        raise ValueError(f"columns of {label} must be a non-empty mapping name -> array")
    given_units = dict(getattr(columns, "units", {}) or {})
    given_units.update(units or {})
    arrays: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    nrows = None
    for name, value in columns.items():
        check_name(name, f"column name in {label}")
        if fmt == "fits" and (len(name) + name.count("'") > 68 or not name.isascii()):  # one FITS card
            raise ValueError(f"column name {name!r} of {label} must be ASCII and fit one FITS card (68 characters, "
                             "quotes count twice)")
        if fmt == "fits" and name.upper() in seen:
            raise ValueError(f"column names of {label} differ only in case ({name!r}), not allowed in FITS")
        seen.add(name.upper())
        arr = as_array(value)
        if arr.ndim == 0 or arr.ndim > 2:
            raise ValueError(f"column {name!r} of {label} must have shape (N,) or (N, k), got {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"column {name!r} of {label} must be numeric or boolean, got dtype {arr.dtype}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"column {name!r} of {label} has non-finite values (NaN or inf)")
        if fmt == "fits" and fits_code(arr.dtype) is None:
            raise ValueError(f"column {name!r} of {label}: dtype {arr.dtype} is not supported in FITS")
        if nrows is None:
            nrows = arr.shape[0]
        elif arr.shape[0] != nrows:
            raise ValueError(
                f"column {name!r} of {label} has {arr.shape[0]} rows, expected {nrows} (inconsistent lengths)"
            )
        arrays[name] = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="), copy=False))
    out_units = {}
    for name in arrays:
        unit = given_units.get(name, DEFAULT_UNITS.get(name, ""))
        if not isinstance(unit, str) or not unit.isascii():
            raise ValueError(f"units of column {name!r} must be an ASCII string, got {unit!r}")
        out_units[name] = unit
    return arrays, out_units


# ---------------------------------------------------------------------------------------------------------------
# attribute encoding
# ---------------------------------------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    obj = from_torch(obj)
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str.lstrip("<>=|")}
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"attribute value of type {type(obj).__name__} is not JSON-serialisable")


def json_hook(obj: dict) -> Any:
    """``json.loads`` object hook: ``{"__ndarray__": list, "dtype": str}`` back to a numpy array."""
    if set(obj) == {"__ndarray__", "dtype"}:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def dumps_attr(value: Any, key: str) -> str:
    """JSON text of an attribute value (ASCII); ``ValueError`` naming ``key`` if it cannot be encoded."""
    try:
        return json.dumps(value, default=_json_default, ensure_ascii=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"attrs[{key!r}] cannot be stored: {exc}") from None


def normalise_attrs(attrs: Mapping[str, Any] | None, label: str) -> dict[str, Any]:
    """Validate attrs (keys, encodability) and convert torch tensors to numpy; ``{}`` for ``None``."""
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise ValueError(f"attrs of {label} must be a mapping, got {type(attrs).__name__}")
    out = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key or not key.isascii() or key == "_json_attrs":
            raise ValueError(f"attrs key {key!r} of {label} must be a non-empty ASCII string (not '_json_attrs')")
        value = from_torch(value)
        dumps_attr(value, key)  # fail early on unserialisable values
        out[key] = value
    return out
