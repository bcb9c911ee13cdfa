"""Catalogue files: HDF5 (default) or FITS, written atomically, with units and provenance.

Layout
------
**HDF5.** One dataset per column, named as in nbodykit (``Position`` (N,3) Mpc/h, ``Velocity`` (N,3) km/s,
``Mass`` Msun/h, ``RA``, ``DEC`` degrees, ``Z``, ...), each with a ``units`` attribute (``""`` means
dimensionless or unspecified; see :data:`DEFAULT_UNITS`). :func:`write_catalog` puts the columns at the file
root; :func:`write_catalogs` puts each catalogue in a group (e.g. ``/data`` and ``/randoms``) with its own attrs.
File attributes carry the provenance the caller passes plus ``catalog_format`` and ``catalog_format_version``.
Attribute values: strings, numbers, booleans and numeric numpy arrays are stored natively; anything else (dicts,
lists, tuples, ``None``, dataclasses such as :class:`~emulator.core.cosmology.Cosmology`) is JSON-encoded and its
key listed in the JSON attribute ``_json_attrs``, so :func:`read_catalog` decodes it (tuples come back as lists).

**FITS.** An empty primary HDU holds the file attrs; each catalogue is a ``BinTableHDU`` whose ``EXTNAME`` is the
catalogue name in upper case (``CATALOG`` for :func:`write_catalog`) and whose ``CATNAME`` keeps its exact name.
``(N, k)`` columns are vector columns (``'3D'`` for float64 positions), units go in ``TUNITn``. Every header holds
its attrs twice: the authoritative copy is a JSON object in the long-string (``CONTINUE``) card ``PROVENAN``
(numpy arrays as ``{"__ndarray__": list, "dtype": str}``), and, for humans and other tools, each scalar attr
that fits one 80-character card also appears as a ``HIERARCH <name> = value`` keyword (case preserved).
Supported FITS column dtypes: bool, uint8, int16, int32, int64, float32, float64. ``TUNITn`` holds the project's
unit strings verbatim (``"Mpc/h"``, ``"Msun/h"``): FITS has no unit for little h, so generic parsers such as
``astropy.units`` misread ``h`` as the hour; read the strings, do not parse them.

Every write validates first (column lengths, finite floating-point values, names, dtypes, format) and raises a
one-line ``ValueError`` before touching the disk; the file is then written through
:func:`data_prep.atomic.atomic_path`, so a failure leaves neither the file nor a temporary behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping

import numpy as np

from data_prep.atomic import atomic_path

__all__ = ["Catalog", "DEFAULT_UNITS", "FORMATS", "write_catalog", "write_catalogs", "read_catalog", "list_catalogs"]

FORMATS = ("hdf5", "fits")
FORMAT_NAME = "cosmo-emulator-catalog"
FORMAT_VERSION = 1
SINGLE_FITS_NAME = "CATALOG"

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
    "VLOS": "km/s",
    "NZ": "(h/Mpc)^3",
    "INDEX": "",
    "REPLICA": "",
    "ID": "",
    "HaloID": "",
    "WEIGHT": "",
}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_FITS_CODES = {"b": "L", "u1": "B", "i2": "I", "i4": "J", "i8": "K", "f4": "E", "f8": "D"}


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
def _check_format(fmt: Any) -> str:
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    return fmt.lower()


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or not name.isprintable():
        raise ValueError(f"{what} must be a non-empty printable string without '/', got {name!r}")
    return name


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _prepare(columns: Mapping[str, Any], units: Mapping[str, str] | None, fmt: str, label: str):
    """Validate one catalogue; return ``(arrays, units)`` ready to write."""
    if not isinstance(columns, Mapping) or not columns:
        raise ValueError(f"columns of {label} must be a non-empty mapping name -> array")
    given_units = dict(getattr(columns, "units", {}) or {})
    given_units.update(units or {})
    arrays: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    nrows = None
    for name, value in columns.items():
        _check_name(name, f"column name in {label}")
        if fmt == "fits" and name.upper() in seen:
            raise ValueError(f"column names of {label} differ only in case ({name!r}), not allowed in FITS")
        seen.add(name.upper())
        arr = _to_numpy(value)
        if arr.ndim == 0 or arr.ndim > 2:
            raise ValueError(f"column {name!r} of {label} must have shape (N,) or (N, k), got {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"column {name!r} of {label} must be numeric or boolean, got dtype {arr.dtype}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"column {name!r} of {label} has non-finite values (NaN or inf)")
        if fmt == "fits" and _fits_code(arr.dtype) is None:
            raise ValueError(f"column {name!r} of {label}: dtype {arr.dtype} is not supported in FITS")
        if nrows is None:
            nrows = arr.shape[0]
        elif arr.shape[0] != nrows:
            raise ValueError(f"column {name!r} of {label} has {arr.shape[0]} rows, expected {nrows} (inconsistent lengths)")
        arrays[name] = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="), copy=False))
    out_units = {}
    for name in arrays:
        unit = given_units.get(name, DEFAULT_UNITS.get(name, ""))
        if not isinstance(unit, str) or not unit.isascii():
            raise ValueError(f"units of column {name!r} must be an ASCII string, got {unit!r}")
        out_units[name] = unit
    return arrays, out_units


def _fits_code(dtype: np.dtype) -> str | None:
    key = "b" if dtype.kind == "b" else f"{dtype.kind}{dtype.itemsize}"
    return _FITS_CODES.get(key)


def _check_path(path: Any) -> str:
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


# ---------------------------------------------------------------------------------------------------------------
# attribute encoding
# ---------------------------------------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str.lstrip("<>=|")}
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"attribute value of type {type(obj).__name__} is not JSON-serialisable")


def _json_hook(obj: dict) -> Any:
    if set(obj) == {"__ndarray__", "dtype"}:
        return np.asarray(obj["__ndarray__"], dtype=obj["dtype"])
    return obj


def _dumps(value: Any, key: str) -> str:
    try:
        return json.dumps(value, default=_json_default, ensure_ascii=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"attrs[{key!r}] cannot be stored: {exc}") from None


def _normalise_attrs(attrs: Mapping[str, Any] | None, label: str) -> dict[str, Any]:
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise ValueError(f"attrs of {label} must be a mapping, got {type(attrs).__name__}")
    out = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key or not key.isascii() or key == "_json_attrs":
            raise ValueError(f"attrs key {key!r} of {label} must be a non-empty ASCII string (not '_json_attrs')")
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        _dumps(value, key)  # fail early on unserialisable values
        out[key] = value
    return out


def _is_native_h5(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size > 0


def _h5_write_attrs(obj, attrs: Mapping[str, Any]) -> None:
    json_keys = []
    for key, value in attrs.items():
        if _is_native_h5(value):
            obj.attrs[key] = value
        else:
            obj.attrs[key] = _dumps(value, key)
            json_keys.append(key)
    obj.attrs["_json_attrs"] = json.dumps(json_keys)


def _h5_read_attrs(obj) -> dict[str, Any]:
    raw = dict(obj.attrs)
    json_keys = set(json.loads(raw.pop("_json_attrs", "[]")))
    out = {}
    for key, value in raw.items():
        if isinstance(value, bytes):
            value = value.decode()
        if key in json_keys:
            value = json.loads(value, object_hook=_json_hook)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _fits_header(attrs: Mapping[str, Any]):
    from astropy.io import fits

    header = fits.Header()
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        scalar = isinstance(value, (bool, int, float)) or (isinstance(value, str) and value.isprintable() and value.isascii())
        if not scalar or "=" in key or not key.isprintable() or (isinstance(value, float) and not np.isfinite(value)):
            continue
        card = fits.Card(f"HIERARCH {key}", value)
        try:
            if len(card.image) == 80:  # one card only (no CONTINUE) for readability by other tools
                header.append(card)
        except (ValueError, fits.VerifyError):
            continue
    header["PROVENAN"] = (_dumps(dict(attrs), "PROVENAN"), "JSON attrs (authoritative)")
    return header


def _fits_attrs(header) -> dict[str, Any]:
    text = header.get("PROVENAN")
    return {} if text is None else json.loads(text, object_hook=_json_hook)


# ---------------------------------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------------------------------
def _write_hdf5_columns(group, arrays: Mapping[str, np.ndarray], units: Mapping[str, str]) -> None:
    for name, arr in arrays.items():
        dset = group.create_dataset(name, data=arr)
        dset.attrs["units"] = units[name]


def _fits_table_hdu(name: str | None, arrays, units, attrs):
    from astropy.io import fits

    cols = []
    for col, arr in arrays.items():
        code = _fits_code(arr.dtype)
        if arr.ndim == 1:
            cols.append(fits.Column(name=col, format=code, array=arr, unit=units[col] or None))
        else:  # vector column; TDIM keeps an (N, 1) column two-dimensional on reading
            fmt, dim = f"{arr.shape[1]}{code}", f"({arr.shape[1]})"
            cols.append(fits.Column(name=col, format=fmt, dim=dim, array=arr, unit=units[col] or None))
    hdu = fits.BinTableHDU.from_columns(cols, header=_fits_header(attrs))
    hdu.name = SINGLE_FITS_NAME if name is None else name.upper()
    hdu.header["CATNAME"] = ("" if name is None else name, "catalogue name (case preserved)")
    return hdu


def _write(path, catalogs: dict[str | None, tuple], file_attrs: dict[str, Any], fmt: str) -> None:
    file_attrs = {**file_attrs, "catalog_format": FORMAT_NAME, "catalog_format_version": FORMAT_VERSION}
    with atomic_path(path) as tmp:
        if fmt == "hdf5":
            import h5py

            with h5py.File(tmp, "w", track_order=True) as fh:
                _h5_write_attrs(fh, file_attrs)
                for name, (arrays, units, attrs) in catalogs.items():
                    group = fh if name is None else fh.create_group(name, track_order=True)
                    if name is not None:
                        _h5_write_attrs(group, attrs)
                    _write_hdf5_columns(group, arrays, units)
        else:
            from astropy.io import fits

            primary = fits.PrimaryHDU(header=_fits_header(file_attrs))
            hdus = [primary] + [_fits_table_hdu(name, *entry) for name, entry in catalogs.items()]
            fits.HDUList(hdus).writeto(tmp, overwrite=True)


def write_catalog(
    path: str | os.PathLike,
    columns: Mapping[str, Any],
    attrs: Mapping[str, Any] | None = None,
    format: str = "hdf5",
    units: Mapping[str, str] | None = None,
) -> None:
    """Write one catalogue atomically.

    Parameters
    ----------
    path : str or PathLike
        Output file; its directory must exist. An existing file is replaced only when the write succeeds.
    columns : mapping
        ``name -> array`` with a common first dimension ``N`` (numpy or torch; shapes ``(N,)`` or ``(N, k)``,
        numeric or boolean, floating values finite). A :class:`Catalog` contributes its ``attrs`` and ``units``.
    attrs : mapping, optional
        Provenance (cosmology, redshift, BoxSize, seed, tracer settings, model name and checksum, version, ...);
        overrides the catalogue's own ``attrs`` on equal keys.
    format : {"hdf5", "fits"}
        File format (see module docstring).
    units : mapping, optional
        ``column -> unit string``, overriding :data:`DEFAULT_UNITS` and the catalogue's ``units``.
    """
    fmt = _check_format(format)
    path = _check_path(path)
    arrays, col_units = _prepare(columns, units, fmt, "the catalogue")
    merged = {**_normalise_attrs(getattr(columns, "attrs", None), "the catalogue"), **_normalise_attrs(attrs, "the file")}
    _write(path, {None: (arrays, col_units, {})}, merged, fmt)


def write_catalogs(
    path: str | os.PathLike,
    catalogs: Mapping[str, Mapping[str, Any]],
    attrs: Mapping[str, Any] | None = None,
    format: str = "hdf5",
    units: Mapping[str, str] | None = None,
) -> None:
    """Write several catalogues (e.g. ``{"data": ..., "randoms": ...}``) into one file, atomically.

    HDF5: one group per catalogue, holding its columns and (for a :class:`Catalog`) its ``attrs``; FITS: one
    binary-table extension per catalogue. ``attrs`` go to the file level; ``units`` apply to every catalogue.
    See :func:`write_catalog` for the other parameters.
    """
    fmt = _check_format(format)
    path = _check_path(path)
    if not isinstance(catalogs, Mapping) or not catalogs:
        raise ValueError("catalogs must be a non-empty mapping name -> columns")
    prepared: dict[str | None, tuple] = {}
    upper: set[str] = set()
    for name, columns in catalogs.items():
        _check_name(name, "catalogue name")
        if fmt == "fits" and (name.upper() in upper or name.upper() == "PRIMARY"):
            raise ValueError(f"catalogue name {name!r} clashes with another FITS EXTNAME (case-insensitive)")
        upper.add(name.upper())
        arrays, col_units = _prepare(columns, units, fmt, f"catalogue {name!r}")
        prepared[name] = (arrays, col_units, _normalise_attrs(getattr(columns, "attrs", None), f"catalogue {name!r}"))
    _write(path, prepared, _normalise_attrs(attrs, "the file"), fmt)


# ---------------------------------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------------------------------
def _detect(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except FileNotFoundError:
        raise ValueError(f"catalogue file {path!r} does not exist") from None
    if head[:8] == _HDF5_MAGIC:
        return "hdf5"
    if head == b"SIMPLE  =":
        return "fits"
    raise ValueError(f"catalogue file {path!r} is neither HDF5 nor FITS")


def list_catalogs(path: str | os.PathLike) -> list[str | None]:
    """Names of the catalogues in a file; ``[None]`` for a single catalogue written by :func:`write_catalog`."""
    path = os.fspath(path)
    if _detect(path) == "hdf5":
        import h5py

        with h5py.File(path, "r") as fh:
            if any(isinstance(v, h5py.Dataset) for v in fh.values()):
                return [None]
            return [k for k, v in fh.items() if isinstance(v, h5py.Group)]
    from astropy.io import fits

    with fits.open(path) as hdul:
        return [(h.header.get("CATNAME") or None) for h in hdul[1:] if isinstance(h, fits.BinTableHDU)]


def read_catalog(path: str | os.PathLike, name: str | None = None) -> Catalog:
    """Read one catalogue written by :func:`write_catalog` or :func:`write_catalogs`.

    Parameters
    ----------
    path : str or PathLike
        HDF5 or FITS file (detected from its signature).
    name : str, optional
        Catalogue (group / extension) name; may be omitted when the file holds a single catalogue.

    Returns
    -------
    Catalog
        Native-byte-order numpy columns, ``units``, and ``attrs`` = file attrs updated by the catalogue's attrs.
    """
    path = os.fspath(path)
    fmt = _detect(path)
    names = list_catalogs(path)
    if name is None:
        if len(names) != 1:
            raise ValueError(f"{path!r} holds catalogues {names}: pass name=")
        name = names[0]
    elif name not in names and not (fmt == "fits" and name.upper() in [str(n).upper() for n in names]):
        raise ValueError(f"{path!r} has no catalogue {name!r}; it holds {names}")
    if fmt == "hdf5":
        import h5py

        with h5py.File(path, "r") as fh:
            attrs = _h5_read_attrs(fh)
            group = fh if name is None else fh[name]
            if name is not None:
                attrs.update(_h5_read_attrs(group))
            cols = {k: v[...] for k, v in group.items() if isinstance(v, h5py.Dataset)}
            units = {k: _decode(group[k].attrs.get("units", "")) for k in cols}
        return Catalog(cols, attrs=attrs, units=units)
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        attrs = _fits_attrs(hdul[0].header)
        hdu = hdul[SINGLE_FITS_NAME if name is None else name.upper()]
        attrs.update(_fits_attrs(hdu.header))
        cols, units = {}, {}
        for col in hdu.columns:
            arr = np.asarray(hdu.data[col.name])
            cols[col.name] = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="), copy=True))
            units[col.name] = col.unit or ""
    return Catalog(cols, attrs=attrs, units=units)


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
