"""Output files of :func:`emulator.mocks.api.generate_mocks`: a writable folder, one lock per file, and what is
done with files that are already there. Everything here runs before the first mock is computed.

Folder
------
``out_dir`` is created if missing (its new folders are removed again if the run fails before writing a file) and
must accept a new file: a folder that is read-only, on a read-only file system, or that is a file fails at once
with a one-line ``ValueError`` naming it.

Locks
-----
Runs into one folder exclude each other per file, with advisory, non-blocking ``fcntl.flock`` locks taken before
anything is computed and held to the end of the run:

* every run holds the folder lock, the hidden file ``<out_dir>/.emulator-generate.lock``, shared;
* and each of its targets ``mock_<seed>.<ext>`` exclusively, on the hidden file ``.mock_<seed>.<ext>.lock``.

A second run that wants any file of a running one stops at once, naming the file; runs writing different seeds
into one folder (e.g. the jobs of an array) proceed side by side. A run of more files than it can keep open
(:func:`max_file_locks`, half the open-file limit) takes the folder lock exclusively instead, so it excludes
every other run into that folder, and they it. The last run to release a lock file deletes it (so none is left
behind); a lock is only trusted if it is on the file still at its path, so the deletion cannot let two writers
in (:mod:`emulator.core.locks`). The locks exclude other ``generate_mocks`` runs, not other programs; they need a
file system with ``flock`` (local disks; NFS on Linux emulates it); without ``fcntl`` (Windows) there are none.

Files already there
-------------------
A target that exists is compared with the request by the attrs that determine its contents
(:data:`IDENTITY_ATTRS`: cosmology, redshift, box, mesh, seed, tracer and tracer options, model checksum and
those of the halo-mass calibration and the PGD sharpening applied).

* Same values: the file is complete (files are written atomically, so one that exists is whole and readable) and
  is kept, not computed again; ``generate_mocks`` lists it in ``paths.skipped``.
* Other values, or not a readable catalog: the run stops, naming the file and the differing attrs, unless
  ``overwrite=True`` (``--overwrite``), which replaces it.

``package_version``, ``generation_seconds`` and the extrapolation warning are not compared: a rerun with a newer
version of the package keeps the files it finds (pass ``overwrite=True`` to regenerate them).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..core.locks import LOCKS_AVAILABLE, release_lock, take_lock
from .io import read_file_attrs

__all__ = ["IDENTITY_ATTRS", "FOLDER_LOCK", "MANIFEST", "Target", "reserve_outputs", "lock_path", "max_file_locks",
           "write_manifest"]

#: The folder lock (held shared by every run, exclusively by runs of more than :func:`max_file_locks` files).
FOLDER_LOCK = ".emulator-generate.lock"

#: The manifest of a ``torchrun`` run, in ``out_dir`` (:func:`write_manifest`).
MANIFEST = "manifest.json"

#: File attrs that must match for an existing file to count as the requested one.
IDENTITY_ATTRS = ("Omega_m", "Omega_b", "h", "n_s", "sigma8", "redshift", "BoxSize", "Nmesh", "seed", "tracer",
                  "tracer_options", "model_sha256", "halo_mass_calibration_sha256", "pgd_sha256",
                  "velocity_dispersion_sha256")


@dataclass
class Target:
    """One output file: its ``path``, the ``identity`` attrs it must have, and whether to compute it."""

    path: Path
    identity: dict[str, Any]
    compute: bool = True
    lock_fd: int | None = field(default=None, repr=False)


def lock_path(path: Path) -> Path:
    """The hidden lock file of ``path``: ``.<name>.lock`` in the same folder."""
    return path.with_name(f".{path.name}.lock")


def _make_dirs(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` and missing parents; return the folders created, outermost first."""
    missing = []
    p = out_dir
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    if p.exists() and not p.is_dir():
        raise ValueError(f"out_dir (--out) {out_dir}: {p} is a file, not a folder")
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:  # made meanwhile by another rank of a torchrun run: not ours to remove
            continue
        except OSError as exc:
            _remove_dirs(created)
            raise ValueError(f"out_dir (--out) {out_dir}: cannot create folder {d} ({exc.strerror or exc})") from None
        created.append(d)
    return created


def _remove_dirs(created: list[Path]) -> None:
    for d in reversed(created):
        with contextlib.suppress(OSError):
            d.rmdir()  # only if empty


def _check_writable(out_dir: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise ValueError(f"out_dir (--out) {out_dir}: cannot write files there ({exc.strerror or exc})") from None


def max_file_locks() -> int:
    """How many per-file locks a run may hold: half the soft open-file limit, less a margin (0 without
    ``resource``)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    soft = 1 << 20 if soft == resource.RLIM_INFINITY else soft
    return max(0, soft // 2 - 64)


def _lock_folder(out_dir: Path, exclusive: bool) -> int | None:
    if not LOCKS_AVAILABLE:
        return None
    if exclusive:
        busy = (f"out_dir (--out) {out_dir}: another emulator generate run is writing into this folder, and a run "
                f"of more than {max_file_locks()} files needs it alone; wait for it or choose another out_dir")
    else:
        busy = (f"out_dir (--out) {out_dir}: another emulator generate run holds this whole folder (a run of more "
                f"than {max_file_locks()} files); wait for it or choose another out_dir")
    return take_lock(out_dir / FOLDER_LOCK, busy, shared=not exclusive)


def _acquire(target: Path) -> int | None:
    """Take the lock of ``target``; ``ValueError`` naming the file if another run holds it."""
    if not LOCKS_AVAILABLE:
        return None
    lock = lock_path(target)
    return take_lock(lock, f"{target}: another emulator generate run is writing this file (lock "
                                      f"{lock.name} is held); wait for it to finish or choose another out_dir")


def _release(target: Target) -> None:
    release_lock(lock_path(target.path), target.lock_fd)
    target.lock_fd = None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _differences(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    out = []
    for key, new in wanted.items():
        old = found.get(key, "<none>")
        if key == "tracer_options" and isinstance(old, str) and isinstance(new, str):
            try:
                old_opts, new_opts = json.loads(old), json.loads(new)
            except ValueError:
                old_opts, new_opts = old, new
            if isinstance(old_opts, dict) and isinstance(new_opts, dict):
                out += [f"tracer_options.{k}: {_show(old_opts.get(k, '<none>'))} in the file, "
                        f"{_show(new_opts.get(k, '<none>'))} now"
                        for k in sorted(set(old_opts) | set(new_opts))
                        if old_opts.get(k) != new_opts.get(k) and k != "tracer"]  # tracer: its own attr
                continue
        if old != new:
            out.append(f"{key}: {_show(old)} in the file, {_show(new)} now")
    return out


def _decide(target: Target, overwrite: bool) -> bool:
    """Whether ``target`` must be computed; ``ValueError`` if it exists with other parameters."""
    path = target.path
    if not os.path.lexists(path):
        return True
    if path.is_dir():
        raise ValueError(f"{path} is a folder: remove it or choose another out_dir")
    if overwrite:
        return True
    try:
        found = read_file_attrs(path)
    except Exception:  # noqa: BLE001 - anything unreadable is "not our catalog"
        found = None
    if not isinstance(found, dict) or "catalog_format" not in found:
        raise ValueError(f"{path} exists and is not a catalog file written by emulator generate: remove it or "
                         "pass overwrite=True (--overwrite) to replace it")
    diffs = _differences(found, target.identity)
    if diffs:
        raise ValueError(f"{path} exists with other parameters ({'; '.join(diffs)}): pass overwrite=True "
                         "(--overwrite) to replace it, or choose another out_dir")
    return False


@contextlib.contextmanager
def reserve_outputs(out_dir: str | os.PathLike, targets: list[Target], overwrite: bool = False
                    ) -> Iterator[list[Target]]:
    """Create and check ``out_dir``, lock every target and decide which to compute (``Target.compute``).

    Parameters
    ----------
    out_dir : str or PathLike
        Output folder (created if missing).
    targets : list of Target
        The files of the run (distinct paths in ``out_dir``).
    overwrite : bool
        Replace existing files whatever their attrs (else: keep identical ones, refuse others).

    Yields
    ------
    list of Target
        ``targets``, with ``compute`` set; the locks are held until the block ends.

    Raises
    ------
    ValueError
        One line naming the folder or file, before the block runs; new folders are then removed again.
    """
    out_dir = Path(out_dir)
    created = _make_dirs(out_dir)
    folder_fd = None
    try:
        _check_writable(out_dir)
        exclusive = len(targets) > max_file_locks()
        folder_fd = _lock_folder(out_dir, exclusive)
        for t in targets:
            t.lock_fd = None if exclusive else _acquire(t.path)
        for t in targets:
            t.compute = _decide(t, overwrite)
        yield targets
    except BaseException:
        for t in targets:
            _release(t)
        release_lock(out_dir / FOLDER_LOCK, folder_fd)
        folder_fd = None
        _remove_dirs(created)
        raise
    finally:
        for t in targets:
            _release(t)
        release_lock(out_dir / FOLDER_LOCK, folder_fd)


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(out_dir: str | os.PathLike, targets: list[Target]) -> Path:
    """Write ``<out_dir>/manifest.json`` (atomically): one entry per target, in the given (seed) order.

    Each entry has the file name, ``seed``, ``size`` (bytes), ``sha256`` and ``kept`` (true when the file was
    already there and not recomputed); ``identity`` holds the attrs shared by every file (:data:`IDENTITY_ATTRS`
    less the seed). Used by ``torchrun`` runs of :func:`emulator.mocks.api.generate_mocks` (rank 0, after every
    rank has written its files).
    """
    from ..core.atomic import atomic_open

    out_dir = Path(out_dir)
    files = [{"file": t.path.name, "seed": t.identity.get("seed"), "size": t.path.stat().st_size,
              "sha256": _sha256(t.path), "kept": not t.compute} for t in targets]
    shared = {k: v for k, v in (targets[0].identity.items() if targets else ()) if k != "seed"}
    text = json.dumps({"identity": shared, "n_files": len(files), "files": files}, indent=1, default=str)
    path = out_dir / MANIFEST
    with atomic_open(path, "w") as fh:
        fh.write(text + "\n")
    return path
