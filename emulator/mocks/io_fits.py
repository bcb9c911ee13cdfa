"""FITS catalogue files (astropy): the layout, and writing and reading it.

Layout
------
An empty primary HDU holds the file attrs; each catalogue is a ``BinTableHDU`` whose ``EXTNAME`` is the
catalogue name in upper case (``CATALOG`` for :func:`~emulator.mocks.io.write_catalog`) and whose ``CATNAME``
keeps its exact name. ``(N, k)`` columns are vector columns (``'3D'`` for float64 positions in Mpc/h), units go in
``TUNITn``. Every header holds its attrs twice: the authoritative copy is a JSON object in the long-string
(``CONTINUE``) card ``PROVENAN`` (numpy arrays as ``{"__ndarray__": list, "dtype": str}``), and, for humans and
other tools, each scalar attr that fits one 80-character card also appears as a ``HIERARCH <name> = value``
keyword (case preserved). Supported FITS column dtypes (:data:`~emulator.mocks.catalog.FITS_CODES`): bool,
uint8, int16, int32, int64, float32, float64. ``TUNITn`` holds the project's unit strings verbatim
(``"Mpc/h"``, ``"Msun/h"``, ``"km/s"``): FITS has no unit for little h, so generic parsers such as
``astropy.units`` misread ``h`` as the hour; read the strings, do not parse them.

Inputs arrive validated (:func:`~emulator.mocks.catalog.prepare_columns`); the atomic write around
:func:`write_fits` is the caller's (:mod:`emulator.mocks.io`).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np

from .catalog import Catalog, dumps_attr, fits_code, json_hook

__all__ = ["SINGLE_FITS_NAME", "write_fits", "list_fits", "read_fits"]

#: ``EXTNAME`` of the one catalogue written by :func:`~emulator.mocks.io.write_catalog`.
SINGLE_FITS_NAME = "CATALOG"


def _header(attrs: Mapping[str, Any]):
    from astropy.io import fits

    header = fits.Header()
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        scalar = isinstance(value, (bool, int, float)) or (
            isinstance(value, str) and value.isprintable() and value.isascii()
        )
        if not scalar or "=" in key or not key.isprintable() or (isinstance(value, float) and not np.isfinite(value)):
            continue
        card = fits.Card(f"HIERARCH {key}", value)
        try:
            if len(card.image) == 80:  # one card only (no CONTINUE) for readability by other tools
                header.append(card)
        except (ValueError, fits.VerifyError):
            continue
    header["PROVENAN"] = (dumps_attr(dict(attrs), "PROVENAN"), "JSON attrs (authoritative)")
    return header


def _attrs(header) -> dict[str, Any]:
    text = header.get("PROVENAN")
    return {} if text is None else json.loads(text, object_hook=json_hook)


def _table_hdu(name: str | None, arrays, units, attrs):
    from astropy.io import fits

    cols = []
    for col, arr in arrays.items():
        code = fits_code(arr.dtype)
        if arr.ndim == 1:
            cols.append(fits.Column(name=col, format=code, array=arr, unit=units[col] or None))
        else:  # vector column; TDIM keeps an (N, 1) column two-dimensional on reading
            fmt, dim = f"{arr.shape[1]}{code}", f"({arr.shape[1]})"
            cols.append(fits.Column(name=col, format=fmt, dim=dim, array=arr, unit=units[col] or None))
    hdu = fits.BinTableHDU.from_columns(cols, header=_header(attrs))
    hdu.name = SINGLE_FITS_NAME if name is None else name.upper()
    hdu.header["CATNAME"] = ("" if name is None else name, "catalogue name (case preserved)")
    return hdu


def write_fits(path: str, catalogs: dict[str | None, tuple], file_attrs: Mapping[str, Any]) -> None:
    """Write ``{name: (arrays, units, attrs)}`` to ``path``; name ``None`` = the single ``CATALOG`` extension."""
    from astropy.io import fits

    primary = fits.PrimaryHDU(header=_header(file_attrs))
    hdus = [primary] + [_table_hdu(name, *entry) for name, entry in catalogs.items()]
    fits.HDUList(hdus).writeto(path, overwrite=True)


def list_fits(path: str) -> list[str | None]:
    """``CATNAME`` of each binary table (``None`` for the single catalogue)."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        return [(h.header.get("CATNAME") or None) for h in hdul[1:] if isinstance(h, fits.BinTableHDU)]


def read_fits(path: str, name: str | None) -> Catalog:
    """Read catalogue ``name`` (case-insensitive; ``None``: ``CATALOG``); attrs = primary updated by table's."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        attrs = _attrs(hdul[0].header)
        hdu = hdul[SINGLE_FITS_NAME if name is None else name.upper()]
        attrs.update(_attrs(hdu.header))
        cols, units = {}, {}
        for col in hdu.columns:
            arr = np.asarray(hdu.data[col.name])
            cols[col.name] = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="), copy=True))
            units[col.name] = col.unit or ""
    return Catalog(cols, attrs=attrs, units=units)
