"""HDF5 catalogue files (h5py): the layout, and writing and reading it.

Layout
------
One dataset per column, named as in nbodykit (``Position`` (N,3) Mpc/h, ``Velocity`` (N,3) km/s, ``Mass``
Msun/h, ``RA``, ``DEC`` degrees, ``Z``, ...), each with a ``units`` attribute (``""`` means dimensionless or
unspecified; see :data:`~emulator.mocks.catalog.DEFAULT_UNITS`). A single catalogue
(:func:`~emulator.mocks.io.write_catalog`) has its columns at the file root;
:func:`~emulator.mocks.io.write_catalogs` puts each catalogue in a group (e.g. ``/data`` and ``/randoms``) with
its own attrs. File attributes carry the provenance the caller passes plus ``catalog_format`` and
``catalog_format_version``. Attribute values: strings, numbers, booleans and numeric numpy arrays are stored
natively; anything else (dicts, lists, tuples, ``None``, dataclasses such as
:class:`~emulator.core.cosmology.Cosmology`) is JSON-encoded (:func:`~emulator.mocks.catalog.dumps_attr`) and
its key listed in the JSON attribute ``_json_attrs``, so reading decodes it (tuples come back as lists).

Inputs arrive validated (:func:`~emulator.mocks.catalog.prepare_columns`); the atomic write around
:func:`write_hdf5` is the caller's (:mod:`emulator.mocks.io`).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np

from .catalog import Catalog, dumps_attr, json_hook

__all__ = ["write_hdf5", "create_catalog_group", "list_hdf5", "read_hdf5", "read_hdf5_attrs"]


def _is_native(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size > 0


def _write_attrs(obj, attrs: Mapping[str, Any]) -> None:
    json_keys = []
    for key, value in attrs.items():
        if _is_native(value):
            obj.attrs[key] = value
        else:
            obj.attrs[key] = dumps_attr(value, key)
            json_keys.append(key)
    obj.attrs["_json_attrs"] = json.dumps(json_keys)


def _read_attrs(obj) -> dict[str, Any]:
    raw = dict(obj.attrs)
    json_keys = set(json.loads(raw.pop("_json_attrs", "[]")))
    out = {}
    for key, value in raw.items():
        if isinstance(value, bytes):
            value = value.decode()
        if key in json_keys:
            value = json.loads(value, object_hook=json_hook)
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _decode(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _write_columns(group, arrays: Mapping[str, np.ndarray], units: Mapping[str, str]) -> None:
    for name, arr in arrays.items():
        dset = group.create_dataset(name, data=arr)
        dset.attrs["units"] = units[name]


def write_hdf5(path: str, catalogs: dict[str | None, tuple], file_attrs: Mapping[str, Any]) -> None:
    """Write ``{name: (arrays, units, attrs)}`` to ``path``; name ``None`` = the single catalogue at the root."""
    import h5py

    with h5py.File(path, "w", track_order=True) as fh:
        _write_attrs(fh, file_attrs)
        for name, (arrays, units, attrs) in catalogs.items():
            group = fh if name is None else fh.create_group(name, track_order=True)
            if name is not None:
                _write_attrs(group, attrs)
            _write_columns(group, arrays, units)


def create_catalog_group(fh, name: str, file_attrs: Mapping[str, Any], attrs: Mapping[str, Any] | None = None):
    """Write ``file_attrs`` to the open file ``fh`` and return the new group ``name`` (with its ``attrs``), to
    be filled column by column: the layout of :func:`write_hdf5`."""
    _write_attrs(fh, file_attrs)
    group = fh.create_group(name, track_order=True)
    _write_attrs(group, attrs or {})
    return group


def list_hdf5(path: str) -> list[str | None]:
    """Group names of the catalogues, or ``[None]`` if the columns sit at the file root."""
    import h5py

    with h5py.File(path, "r") as fh:
        if any(isinstance(v, h5py.Dataset) for v in fh.values()):
            return [None]
        return [k for k, v in fh.items() if isinstance(v, h5py.Group)]


def read_hdf5(path: str, name: str | None) -> Catalog:
    """Read catalogue ``name`` (``None``: the root); ``attrs`` = file attrs updated by the group's attrs."""
    import h5py

    with h5py.File(path, "r") as fh:
        attrs = _read_attrs(fh)
        group = fh if name is None else fh[name]
        if name is not None:
            attrs.update(_read_attrs(group))
        cols = {k: v[...] for k, v in group.items() if isinstance(v, h5py.Dataset)}
        units = {k: _decode(group[k].attrs.get("units", "")) for k in cols}
    return Catalog(cols, attrs=attrs, units=units)


def read_hdf5_attrs(path: str) -> dict[str, Any]:
    """The file-level attrs only (no column is read)."""
    import h5py

    with h5py.File(path, "r") as fh:
        return _read_attrs(fh)
