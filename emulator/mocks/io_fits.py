"""FITS catalogue files (astropy): the layout, and writing and reading it.

Layout
------
An empty primary HDU holds the file attrs; each catalogue is a ``BinTableHDU`` whose ``EXTNAME`` is the
catalogue name in upper case (``CATALOG`` for :func:`~emulator.mocks.io.write_catalog`) and whose ``CATNAME``
keeps its exact name. ``(N, k)`` columns are vector columns (``'3D'`` for float64 positions in Mpc/h), units go in
``TUNITn``. Every header holds its attrs twice: the authoritative copy is a JSON object in the long-string
(``CONTINUE``) card ``PROVENAN`` (numpy arrays as ``{"__ndarray__": list, "dtype": str}``), and, for humans and
other tools, each scalar attr that fits one 80-character card also appears as a ``HIERARCH <name> = value``
keyword (case preserved); attrs whose names are FITS keywords (upper case, at most 8 characters, e.g. the survey
keys ``SEED_HOD``, ``MODELSHA``, ``FOOTPRNT``) are plain cards instead, long strings continued (``CONTINUE``).
Supported FITS column dtypes (:data:`~emulator.mocks.catalog.FITS_CODES`): bool, uint8, int16, int32, int64,
float32, float64.

Units
-----
The FITS standard has no unit for little h, and FITS readers (astropy's ``Table.read`` among them) parse
``TUNITn = 'Mpc/h'`` as megaparsec per *hour*. So each table keeps the project's unit strings three ways:

* ``COLUNITS``: a JSON object ``column -> unit string`` (``"Mpc/h"``, ``"Msun/h"``, ...), which
  :func:`read_fits` returns verbatim (files without it fall back to ``TUNITn``);
* ``TUNITn`` only for units that FITS parses and that mean what they say (``km/s``, ``deg``): none for units
  with little h or that FITS does not know; the unit string is also in the comment of ``TTYPEn`` for humans;
* astropy's serialized-column header (the ``COMMENT --BEGIN-ASTROPY-SERIALIZED-COLUMNS--`` block astropy itself
  writes for a ``QTable``), with little h as ``astropy.cosmology.units.littleh``: ``Position`` is
  ``Mpc / littleh``, ``Mass`` ``solMass / littleh``, ``NZ`` ``littleh3 / Mpc3`` (:func:`astropy_unit`). Read with
  the cosmology units enabled, ``with u.add_enabled_units(astropy.cosmology.units): Table.read(path,
  hdu="CATALOG")`` gives these units without a warning; without them astropy warns that ``littleh`` is not
  enabled and leaves the unit unrecognised (never hours).

Inputs arrive validated (:func:`~emulator.mocks.catalog.prepare_columns`); the atomic write around
:func:`write_fits` is the caller's (:mod:`emulator.mocks.io`).
"""

from __future__ import annotations

import io
import json
import re
import warnings
from typing import Any, Mapping

import numpy as np

from .catalog import Catalog, dumps_attr, fits_code, json_hook

__all__ = ["SINGLE_FITS_NAME", "write_fits", "list_fits", "read_fits", "read_fits_attrs", "astropy_unit"]

#: ``EXTNAME`` of the one catalogue written by :func:`~emulator.mocks.io.write_catalog`.
SINGLE_FITS_NAME = "CATALOG"

#: The project's unit strings as astropy (generic) unit strings, little h as ``littleh``.
_ASTROPY_UNITS = {"Mpc/h": "Mpc / littleh", "Msun/h": "solMass / littleh", "(h/Mpc)^3": "littleh3 / Mpc3",
                  "km/s": "km / s", "deg": "deg"}
_LITTLE_H = re.compile(r"(?<![A-Za-z0-9_])h(?![A-Za-z0-9_])")
#: Attr names written as standard FITS keywords (survey header keys such as ``SEED_HOD``, ``MODELSHA``).
_STANDARD_KEY = re.compile(r"(?!SIMPLE$|BITPIX$|NAXIS|EXTEND$|XTENSION$|PCOUNT$|GCOUNT$|TFIELDS$|EXTNAME$|END$|"
                           r"T(?:TYPE|FORM|UNIT|DIM)\d|CATNAME$|COLUNITS$|PROVENAN$|COMMENT$|HISTORY$)"
                           r"[A-Z][A-Z0-9_-]{0,7}")


def astropy_unit(unit: str):
    """The astropy unit a unit string means, little ``h`` as ``astropy.cosmology.units.littleh``; ``None`` if
    astropy cannot parse it (``""`` included)."""
    from astropy import units as u
    from astropy.cosmology import units as cu

    if not unit:
        return None
    text = _ASTROPY_UNITS.get(unit, _LITTLE_H.sub("littleh", unit))
    with u.add_enabled_units(cu), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return u.Unit(text, parse_strict="raise")
        except (ValueError, TypeError):
            return None


def _tunit(unit: str) -> str | None:
    """``unit`` if FITS readers parse it as meant (no little h, a FITS unit), else ``None`` (no ``TUNITn``)."""
    from astropy import units as u

    if not unit or _LITTLE_H.search(unit):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            u.Unit(unit, format="fits", parse_strict="raise")
        except (ValueError, TypeError):
            return None
    return unit


def _astropy_column_comments(arrays, units) -> list[str]:
    """The ``COMMENT`` cards of astropy's serialized-column block for these columns (their units as astropy
    units), taken from astropy's own writer applied to an empty ``QTable`` of the same columns."""
    from astropy import units as u
    from astropy.cosmology import units as cu
    from astropy.io import fits
    from astropy.table import QTable

    table, quantities = QTable(), 0
    for name, arr in arrays.items():
        empty = np.zeros((0, *arr.shape[1:]), dtype=arr.dtype)
        unit = astropy_unit(units[name]) if arr.dtype.kind == "f" else None
        table[name] = empty if unit is None else u.Quantity(empty, unit, dtype=arr.dtype)
        quantities += unit is not None
    if not quantities:
        return []
    buf = io.BytesIO()
    with u.add_enabled_units(cu), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "unit could not be saved in native FITS format": it is in the block
        table.write(buf, format="fits")
    with fits.open(io.BytesIO(buf.getvalue())) as hdul:
        comments = [str(c.value) for c in hdul[1].header.cards if c.keyword == "COMMENT"]
    start, end = "--BEGIN-ASTROPY-SERIALIZED-COLUMNS--", "--END-ASTROPY-SERIALIZED-COLUMNS--"
    return comments[comments.index(start): comments.index(end) + 1] if start in comments else []


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
        standard = _STANDARD_KEY.fullmatch(key) is not None  # a FITS keyword: plain card, long strings CONTINUE
        card = fits.Card(key if standard else f"HIERARCH {key}", value)
        try:
            with warnings.catch_warnings():  # "Card is too long": such a card is skipped, not truncated
                warnings.simplefilter("ignore", fits.verify.VerifyWarning)
                if standard or len(card.image) == 80:  # else one card only (no CONTINUE), for other tools
                    header.append(card)
        except (ValueError, fits.VerifyError):
            continue
    header["PROVENAN"] = dumps_attr(dict(attrs), "PROVENAN")  # JSON attrs (authoritative); no comment: a
    # comment can make a value that fits one card "too long" and be truncated with a warning
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
            cols.append(fits.Column(name=col, format=code, array=arr, unit=_tunit(units[col])))
        else:  # vector column; TDIM keeps an (N, 1) column two-dimensional on reading
            fmt, dim = f"{arr.shape[1]}{code}", f"({arr.shape[1]})"
            cols.append(fits.Column(name=col, format=fmt, dim=dim, array=arr, unit=_tunit(units[col])))
    hdu = fits.BinTableHDU.from_columns(cols, header=_header(attrs))
    hdu.name = SINGLE_FITS_NAME if name is None else name.upper()
    hdu.header["CATNAME"] = ("" if name is None else name, "catalogue name (case preserved)")
    for i, col in enumerate(arrays, start=1):
        value_end = max(30, 12 + max(len(col) + col.count("'"), 8))  # end of "TTYPEn  = 'name    '"
        if units[col] and value_end + 3 + len(f"unit: {units[col]}") <= 80:  # a comment only where it fits
            hdu.header.comments[f"TTYPE{i}"] = f"unit: {units[col]}"
    hdu.header["COLUNITS"] = json.dumps(dict(units))  # JSON column units (authoritative); no comment, as PROVENAN
    for text in _astropy_column_comments(arrays, units):
        hdu.header.add_comment(text)
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
        stored = json.loads(hdu.header.get("COLUNITS", "{}"))
        cols, units = {}, {}
        for col in hdu.columns:
            arr = np.asarray(hdu.data[col.name])
            cols[col.name] = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("="), copy=True))
            units[col.name] = stored.get(col.name, col.unit or "")
    return Catalog(cols, attrs=attrs, units=units)


def read_fits_attrs(path: str) -> dict[str, Any]:
    """The file-level attrs only (the primary header's ``PROVENAN``; no table is read)."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        return _attrs(hdul[0].header)
