"""Catalogue files: HDF5 (default) or FITS, written atomically, with units and provenance.

This is the public entry point: :func:`write_catalog`, :func:`write_catalogs`, :func:`read_catalog`,
:func:`list_catalogs`, :func:`read_file_attrs`; it re-exports :class:`~emulator.mocks.catalog.Catalog`,
:data:`DEFAULT_UNITS` and :data:`FORMATS`.

Layout
------
Columns are named as in nbodykit (``Position`` (N,3) Mpc/h, ``Velocity`` (N,3) km/s, ``Mass`` Msun/h, ``RA``,
``DEC`` degrees, ``Z``, ...), each with its unit string (see :data:`DEFAULT_UNITS`). :func:`write_catalog`
writes one catalogue; :func:`write_catalogs` several (e.g. ``data`` and ``randoms``), each with its own attrs.
File attributes carry the provenance the caller passes plus ``catalog_format`` (``"cosmo-emulator-catalog"``)
and ``catalog_format_version``. Attribute values that a format cannot hold natively (dicts, lists, ``None``,
dataclasses such as :class:`~emulator.core.cosmology.Cosmology`) are JSON-encoded and decoded again by
:func:`read_catalog` (tuples come back as lists); see :mod:`emulator.mocks.catalog`.

* **HDF5** (:mod:`emulator.mocks.io_hdf5`): one dataset per column with a ``units`` attribute, at the file root
  for a single catalogue, else in one group per catalogue.
* **FITS** (:mod:`emulator.mocks.io_fits`): an empty primary HDU with the file attrs and one ``BinTableHDU``
  per catalogue (``EXTNAME`` the name in upper case, ``CATALOG`` for a single one), units in ``TUNITn``, attrs
  as JSON in the ``PROVENAN`` card.

The format of a file to read is detected from its signature.

Every write validates first (column lengths, finite floating-point values, names, dtypes, format) and raises a
one-line ``ValueError`` before touching the disk; the file is then written through
:func:`emulator.core.atomic.atomic_path`, so a failure leaves neither the file nor a temporary behind.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.atomic import atomic_path
from .catalog import (
    DEFAULT_UNITS,
    FORMATS,
    Catalog,
    check_format,
    check_name,
    check_path,
    normalise_attrs,
    prepare_columns,
)
from .io_fits import list_fits, read_fits, read_fits_attrs, write_fits
from .io_hdf5 import list_hdf5, read_hdf5, read_hdf5_attrs, write_hdf5

__all__ = ["Catalog", "DEFAULT_UNITS", "FORMATS", "write_catalog", "write_catalogs", "read_catalog", "list_catalogs",
           "read_file_attrs", "Companion", "companion_path", "write_mock_files", "hdf5_mock_writer"]

FORMAT_NAME = "cosmo-emulator-catalog"
FORMAT_VERSION = 1

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_FITS_MAGIC = b"SIMPLE  ="


# ---------------------------------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------------------------------
def _with_format(file_attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {**file_attrs, "catalog_format": FORMAT_NAME, "catalog_format_version": FORMAT_VERSION}


def _write(path, catalogs: dict[str | None, tuple], file_attrs: dict[str, Any], fmt: str) -> None:
    file_attrs = _with_format(file_attrs)
    with atomic_path(path) as tmp:
        if fmt == "hdf5":
            write_hdf5(tmp, catalogs, file_attrs)
        else:
            write_fits(tmp, catalogs, file_attrs)


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
        File format (see the module docstring, :mod:`.io_hdf5` and :mod:`.io_fits`).
    units : mapping, optional
        ``column -> unit string``, overriding :data:`DEFAULT_UNITS` and the catalogue's ``units``.
    """
    fmt = check_format(format)
    path = check_path(path)
    arrays, col_units = prepare_columns(columns, units, fmt, "the catalogue")
    merged = {**normalise_attrs(getattr(columns, "attrs", None), "the catalogue"), **normalise_attrs(attrs, "the file")}
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
    fmt = check_format(format)
    path = check_path(path)
    if not isinstance(catalogs, Mapping) or not catalogs:
        raise ValueError("catalogs must be a non-empty mapping name -> columns")
    prepared: dict[str | None, tuple] = {}
    upper: set[str] = set()
    for name, columns in catalogs.items():
        check_name(name, "catalogue name")
        if fmt == "fits" and (name.upper() in upper or name.upper() == "PRIMARY"):
            raise ValueError(f"catalogue name {name!r} clashes with another FITS EXTNAME (case-insensitive)")
        upper.add(name.upper())
        arrays, col_units = prepare_columns(columns, units, fmt, f"catalogue {name!r}")
        prepared[name] = (arrays, col_units, normalise_attrs(getattr(columns, "attrs", None), f"catalogue {name!r}"))
    _write(path, prepared, normalise_attrs(attrs, "the file"), fmt)


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
    if head == _FITS_MAGIC:
        return "fits"
    raise ValueError(f"catalogue file {path!r} is neither HDF5 nor FITS")


def list_catalogs(path: str | os.PathLike) -> list[str | None]:
    """Names of the catalogues in a file; ``[None]`` for a single catalogue written by :func:`write_catalog`."""
    path = os.fspath(path)
    return list_hdf5(path) if _detect(path) == "hdf5" else list_fits(path)


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
    return read_hdf5(path, name) if fmt == "hdf5" else read_fits(path, name)


def read_file_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The file-level attrs of a catalogue file (HDF5 or FITS, detected), without reading any column."""
    path = os.fspath(path)
    return read_hdf5_attrs(path) if _detect(path) == "hdf5" else read_fits_attrs(path)


# ---------------------------------------------------------------------------------------------------------------
# a mock and its companion files (survey randoms, nz.txt: emulator.mocks.survey_files)
# ---------------------------------------------------------------------------------------------------------------
class Companion:
    """A file written next to the mock: ``suffix`` (e.g. ``"_randoms_0"`` or ``"_nz.txt"``) and its contents,
    catalogs (``{name: Catalog}``, same format as the mock) or text, or a function without arguments that makes
    them when the file is written (so that several large random files are held one at a time, not together)."""

    def __init__(self, suffix: str,
                 content: Mapping[str, Catalog] | str | Callable[[], Mapping[str, Catalog] | str]) -> None:
        self.suffix, self.content = suffix, content


def companion_path(path: str | os.PathLike, suffix: str) -> Path:
    """``mock_000001.fits`` + ``_randoms_0`` -> ``mock_000001_randoms_0.fits``; a suffix with a dot replaces the
    extension (``_nz.txt`` -> ``mock_000001_nz.txt``)."""
    path = Path(path)
    return path.with_name(path.stem + suffix + ("" if "." in suffix else path.suffix))


def _mock_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A mock's file attrs plus the short header keys survey pipelines read (``MODELSHA``, ``CODEVER``)."""
    attrs = dict(attrs)
    if "model_sha256" in attrs:
        attrs["MODELSHA"] = attrs["model_sha256"]
    if "package_version" in attrs:
        attrs["CODEVER"] = attrs["package_version"]
    return attrs


@contextmanager
def hdf5_mock_writer(path: str | os.PathLike, attrs: Mapping[str, Any], name: str = "data"):
    """Write an HDF5 mock column by column, for catalogues too large to hold (:mod:`.largebox`): yields the
    h5py group of catalogue ``name``, to be filled with datasets (each with a ``units`` attribute); the file attrs
    and layout are those of :func:`write_mock_files`, and the file appears only when the block succeeds."""
    import h5py

    from .io_hdf5 import create_catalog_group

    path = check_path(path)
    check_name(name, "catalogue name")
    file_attrs = _with_format(normalise_attrs(_mock_attrs(attrs), "the file"))
    with atomic_path(path) as tmp, h5py.File(tmp, "w", track_order=True) as fh:
        yield create_catalog_group(fh, name, file_attrs)


def _write_companion(path: str | os.PathLike, comp: Companion, attrs: Mapping[str, Any], format: str) -> Path:
    """Write one companion of the mock at ``path`` (its content made now if deferred, and released on return)."""
    target = companion_path(path, comp.suffix)
    content = comp.content() if callable(comp.content) else comp.content
    if isinstance(content, str):
        with atomic_path(target) as tmp:
            Path(tmp).write_text(content)
    else:
        own = {k: v for cat in content.values() for k, v in getattr(cat, "attrs", {}).items()}
        write_catalogs(target, dict(content), {**attrs, **own}, format=format)
    return target


def write_mock_files(path: str | os.PathLike, catalogs: Mapping[str, Any], attrs: Mapping[str, Any],
                     format: str = "hdf5") -> list[Path]:
    """Write the companions, then the mock file itself (all atomically); return the companion paths."""
    attrs = _mock_attrs(attrs)
    main = {k: v for k, v in catalogs.items() if not isinstance(v, Companion)}
    written = [_write_companion(path, comp, attrs, format) for comp in catalogs.values()
               if isinstance(comp, Companion)]
    write_catalogs(path, main, attrs, format=format)
    return written
