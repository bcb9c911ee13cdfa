"""A persistent on-disk cache of CAMB power tables, so that a cosmology's CAMB run happens once per machine.

Location: the folder named by the environment variable ``COSMO_EMULATOR_CACHE``; if unset,
``$XDG_CACHE_HOME/cosmo_emulator/camb``, else ``~/.cache/cosmo_emulator/camb``. Each entry is one ``.npz`` file
of float64 arrays named by a SHA-256 key of everything the table depends on: the kind of table, the cosmology
(:meth:`~emulator.core.cosmology.Cosmology.key`, 10 significant digits), any extra inputs (redshift), the
installed CAMB version and :data:`TABLE_VERSION` (bumped whenever the code that builds a table changes).

Entries are written atomically (temporary file + ``os.replace``, :mod:`emulator.core.atomic`), so concurrent
processes computing the same table at worst both run CAMB and one replaces the other's identical file; a reader
never sees a partial file. A file that cannot be read (corrupted, truncated, wrong arrays) is reported with a
warning, removed, and the table is recomputed. ``emulator cache info`` and ``emulator cache clear`` inspect and
empty the cache; setting ``COSMO_EMULATOR_CACHE=off`` disables it.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["ENV_VAR", "TABLE_VERSION", "cache_dir", "cache_key", "camb_version", "cached_arrays", "clear_cache",
           "cache_info"]

ENV_VAR = "COSMO_EMULATOR_CACHE"
#: Version of the code that turns CAMB's output into a table (emulator.core.power); part of every key.
TABLE_VERSION = 1
_SUFFIX = ".npz"
_DISABLED = ("off", "0", "none", "false")


def cache_dir() -> Path | None:
    """The cache folder (created on first write), or ``None`` when ``COSMO_EMULATOR_CACHE`` disables it."""
    env = os.environ.get(ENV_VAR, "").strip()
    if env.lower() in _DISABLED:
        return None
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cosmo_emulator" / "camb"


def camb_version() -> str:
    """Installed CAMB version (without importing CAMB), or ``"none"``."""
    from importlib import metadata

    try:
        return metadata.version("camb")
    except metadata.PackageNotFoundError:
        return "none"


def cache_key(kind: str, cosmo_key: tuple[float, ...], **extra: Any) -> str:
    """SHA-256 hex key of a table: ``kind``, the cosmology key, ``extra`` inputs, CAMB and table versions."""
    payload = {
        "kind": kind,
        "cosmology": [float(v) for v in cosmo_key],
        "extra": {name: extra[name] for name in sorted(extra)},
        "camb": camb_version(),
        "table_version": TABLE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {name: np.array(data[name], dtype=np.float64) for name in names}
    except FileNotFoundError:
        return None
    except Exception as exc:  # corrupted, truncated or foreign file: drop it and recompute
        warnings.warn(f"ignoring unreadable CAMB cache file {path} ({type(exc).__name__}: {exc}); recomputing",
                      RuntimeWarning, stacklevel=3)
        try:
            path.unlink()
        except OSError:
            pass
        return None
    return out


def _write(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    from .atomic import atomic_open

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb", fsync=False) as fh:
            np.savez(fh, **{name: np.asarray(a, dtype=np.float64) for name, a in arrays.items()})
    except OSError as exc:  # a read-only or full disk must not stop a run: the table is still returned
        warnings.warn(f"could not write CAMB cache file {path} ({exc})", RuntimeWarning, stacklevel=3)


def cached_arrays(key: str, names: tuple[str, ...],
                  compute: Callable[[], Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The float64 arrays ``names`` stored under ``key``, or ``compute()``'s, which are then stored.

    Parameters
    ----------
    key : str
        From :func:`cache_key`.
    names : tuple of str
        Arrays the entry must hold (scalars are stored as 0-d arrays).
    compute : callable
        Returns a mapping with (at least) ``names``; called only on a miss.
    """
    folder = cache_dir()
    path = None if folder is None else folder / f"{key}{_SUFFIX}"
    if path is not None:
        hit = _read(path, names)
        if hit is not None:
            return hit
    computed = compute()
    arrays = {name: np.array(computed[name], dtype=np.float64) for name in names}
    if path is not None:
        _write(path, arrays)
    return arrays


def cache_info() -> tuple[Path | None, int, int]:
    """``(folder, number of entries, total bytes)`` of the cache (``folder`` is ``None`` when disabled)."""
    folder = cache_dir()
    if folder is None or not folder.is_dir():
        return folder, 0, 0
    files = [p for p in folder.iterdir() if p.suffix == _SUFFIX and p.is_file()]
    return folder, len(files), sum(p.stat().st_size for p in files)


def clear_cache() -> int:
    """Remove every cache entry (and temporaries left by dead writers); returns the number of entries removed."""
    from .atomic import remove_stale_temporaries

    folder = cache_dir()
    if folder is None or not folder.is_dir():
        return 0
    removed = 0
    for p in folder.iterdir():
        if p.is_file() and p.suffix == _SUFFIX:
            try:
                p.unlink()
            except FileNotFoundError:
                continue
            removed += 1
    remove_stale_temporaries(folder)
    return removed
