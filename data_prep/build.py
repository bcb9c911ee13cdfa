"""``data-prep build``: turn (initial field, evolved snapshots) pairs into one HDF5 training set.

The manifest (JSON, written by ``data-prep simulate`` or by hand for external suites) lists simulations::

    {"box_size": 128.0, "ngrid": 64, "prior_low": [...5], "prior_high": [...5],
     "simulations": [{"sim_id": "sim_0000", "cosmology": {"Omega_m": ..., ...}, "seed": 12,
                      "snapshots": ["sim_0000/snap_001.hdf5", ...], "ic": "sim_0000/snap_000.hdf5",
                      "length_unit": null, "split": null}]}

Manifests of ``data-prep simulate`` add per simulation ``inputs`` and ``inputs_sha256`` (what determined its
snapshots; checked by :func:`data_prep.manifest.check_simulation_inputs`: one suite, one set of settings).
Relative paths are relative to the manifest's folder. For each simulation the linear density comes from the
seed (our own simulator's phase convention, exact) or, when ``seed`` is null, from the initial-conditions
snapshot: ``delta_L = -div(x_ic - q) / D1(a_ic)`` (first order; the 2LPT term of the ICs is O(D1(a_ic)) smaller
and neglected). Particles are matched to the Lagrangian grid by ID: ``id - id_min = i n^2 + j n + k``
(the convention of N-GenIC/2LPTic/our simulator). The output follows ``docs/architecture.md``.

Resumability: the set is built in ``<out>.partial``; each finished simulation is flagged ``complete`` and is
skipped after a restart; the file is renamed to ``<out>`` only when every simulation is in.

Staleness: the file (and ``<out>.partial`` from its start) records the fingerprint of everything that determines
it (:func:`data_prep.manifest.trainingset_fingerprint`: the manifest's contents with each simulation's recorded
inputs, its source files' identity, the split options, :data:`FORMAT_VERSION` and :data:`BUILDER_VERSION`) as the
JSON dataset ``/fingerprint`` and the root attribute ``fingerprint_sha256``. An existing ``out`` or partial build
made from other inputs is never kept or resumed silently: the build refuses, naming the differing keys, unless
``rebuild=True``. One build at a time may write ``out`` (lock ``<out>.lock``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import torch

from emulator.core.atomic import remove_stale_temporaries
from emulator.core.cosmology import PARAMETER_NAMES
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.fourier import check_mesh_size, gradient_kernels, to_fourier, to_real
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import lagrangian_grid, lpt2_displacement, lpt_velocity, za_displacement
from emulator.core.mesh import paint
from emulator.core.power import LinearPower
from emulator.core.provenance import code_version, sha256_file, utc_now

from .fingerprint import canonical_json, digest
from emulator.core.locks import exclusive_lock
from .manifest import SimulationEntry, check_recorded_fingerprint, load_manifest, trainingset_fingerprint
from .readers import iter_chunks, read_header
from .readers.base import SnapshotError

__all__ = ["SimulationEntry", "load_manifest", "grid_fields", "assign_splits", "build_training_set"]

FORMAT = "cosmo-emulator-trainingset"
FORMAT_VERSION = 1  # the file layout (docs/architecture.md), checked by the readers of training sets
#: Bump when the builder computes something differently from the same inputs (it is part of the fingerprint, so
#: existing training sets are then refused until rebuilt).
BUILDER_VERSION = 1


def grid_fields(path: str, ngrid: int, box_size: float, length_unit=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a snapshot onto the Lagrangian grid by particle ID, streaming in chunks.

    Returns
    -------
    disp : ndarray (3, n, n, n) float32
        ``x - q`` with the periodic minimum image, Mpc/h.
    vel : ndarray (3, n, n, n) float32
        Peculiar velocity, km/s.
    redshift : float
    """
    header = read_header(path, length_unit=length_unit)
    n = check_mesh_size(ngrid, "ngrid")
    if int(header.npart_total[1]) != n**3:
        raise SnapshotError(path, f"has {int(header.npart_total[1])} particles, expected ngrid^3 = {n**3}")
    if abs(header.box_size / box_size - 1) > 1e-6:
        raise SnapshotError(path, f"box size {header.box_size} Mpc/h differs from the manifest's {box_size}")
    # One streaming pass. IDs may start at 0 (our simulator) or 1 (N-GenIC, 2LPTic): slot ``id`` of an
    # (n^3 + 1)-long grid covers both, and the offset is read off at the end.
    size = n**3 + 1
    disp = np.empty((3, size), dtype=np.float32)
    vel = np.empty((3, size), dtype=np.float32)
    seen = np.zeros(size, dtype=bool)
    for chunk in iter_chunks(path, length_unit=length_unit):
        ids = chunk.ids
        if ids.min() < 0 or ids.max() >= size:
            raise SnapshotError(path, f"particle IDs outside [0, {n**3}] cannot map to a {n}^3 Lagrangian grid")
        if seen[ids].any() or len(np.unique(ids)) != len(ids):
            raise SnapshotError(path, "duplicate particle IDs")
        seen[ids] = True
        disp[:, ids] = chunk.positions.T
        vel[:, ids] = chunk.velocities.T
    offset = 0 if seen[0] else 1
    if seen[offset : offset + n**3].sum() != n**3:
        missing = n**3 - int(seen[offset : offset + n**3].sum())
        raise SnapshotError(path, f"{missing} Lagrangian grid points have no particle (missing IDs)")
    disp, vel = disp[:, offset : offset + n**3], vel[:, offset : offset + n**3]
    q = lagrangian_grid(n, box_size, dtype=torch.float64).numpy().T  # (3, n^3), C order of (i, j, k)
    disp = disp.astype(np.float64) - q
    disp -= box_size * np.round(disp / box_size)
    return disp.astype(np.float32).reshape(3, n, n, n), vel.reshape(3, n, n, n), float(header.redshift)


def _linear_delta_k(entry: SimulationEntry, ngrid: int, box_size: float) -> torch.Tensor:
    """Linear density (rfft layout, float64) at D1 = 1 from the seed or from the IC snapshot."""
    if entry.seed is not None:
        noise = white_noise(entry.seed, ngrid, dtype=torch.float64)
        return linear_density_k(noise, box_size, LinearPower(entry.cosmology, 0.0))
    disp, _, z_ic = grid_fields(entry.ic, ngrid, box_size, entry.length_unit)
    d1 = float(GrowthHistory(entry.cosmology).D1(1.0 / (1.0 + z_ic)))
    g = gradient_kernels(ngrid, box_size, dtype=torch.float64)
    psi = torch.from_numpy(disp.astype(np.float64))
    div_k = sum(1j * gi * to_fourier(psi[a]) for a, gi in enumerate(g))
    return -div_k / d1


def assign_splits(entries: list[SimulationEntry], val_fraction: float, test_fraction: float, seed: int) -> dict:
    """Split by cosmology: simulations sharing a cosmology always land in the same split.

    Entries with an explicit ``split`` keep it. The rest are shuffled by cosmology with ``seed``; at least one
    cosmology goes to each of val and test when there are three or more cosmologies and the fraction is > 0.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {frac}")
    fixed = {e.sim_id: e.split for e in entries if e.split}
    free = sorted({e.cosmology.key() for e in entries if not e.split})
    order = np.random.default_rng(seed).permutation(len(free))
    n = len(free)
    n_val = int(round(val_fraction * n)) or (1 if val_fraction > 0 and n >= 3 else 0)
    n_test = int(round(test_fraction * n)) or (1 if test_fraction > 0 and n >= 3 else 0)
    label = {}
    for rank, idx in enumerate(order):
        label[free[idx]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    splits = {"train": [], "val": [], "test": []}
    for e in entries:
        splits[fixed.get(e.sim_id) or label[e.cosmology.key()]].append(e.sim_id)
    by_cosmo: dict = {}
    for e in entries:
        by_cosmo.setdefault(e.cosmology.key(), set()).add(fixed.get(e.sim_id) or label[e.cosmology.key()])
    if any(len(v) > 1 for v in by_cosmo.values()):
        raise ValueError("explicit splits put one cosmology in several splits: held-out cosmologies would leak")
    return splits


def _write_simulation(f: h5py.File, entry: SimulationEntry, ngrid: int, box_size: float, split: str) -> None:
    """Compute and write one simulation group, flagged ``complete`` last."""
    if entry.sim_id in f["sims"]:
        del f["sims"][entry.sim_id]
    grp = f["sims"].create_group(entry.sim_id)
    n, c = ngrid, min(ngrid, 32)
    vec_chunks, sca_chunks = (3, c, c, c), (c, c, c)
    delta_k = _linear_delta_k(entry, n, box_size)
    grp.create_dataset("linear_delta", data=to_real(delta_k, n).float().numpy(), chunks=sca_chunks)
    psi1 = za_displacement(delta_k, box_size)
    psi2 = lpt2_displacement(delta_k, box_size)
    growth = GrowthHistory(entry.cosmology)
    q = lagrangian_grid(n, box_size, dtype=torch.float64)
    sources = list(entry.snapshots) + ([entry.ic] if entry.ic else [])
    for path in entry.snapshots:
        disp, vel, z = grid_fields(path, n, box_size, entry.length_unit)
        a = 1.0 / (1.0 + z)
        d1, d2, f1, f2, e = (float(getattr(growth, name)(a)) for name in ("D1", "D2", "f1", "f2", "E"))
        key = f"z_{z:.4f}"
        if key in grp:
            raise ValueError(f"{path}: two snapshots of {entry.sim_id} share redshift {z:.4f}")
        zg = grp.create_group(key)
        zg.attrs.update(redshift=z, scale_factor=a, D1=d1, D2=d2, f1=f1, f2=f2, E=e, source=os.path.abspath(path))
        zg.create_dataset("lpt_disp", data=(d1 * psi1 + d2 * psi2).float().numpy(), chunks=vec_chunks)
        lpt_v = lpt_velocity(psi1, psi2, a=a, hubble_e=e, d1=d1, f1=f1, d2=d2, f2=f2)
        zg.create_dataset("lpt_vel", data=lpt_v.float().numpy(), chunks=vec_chunks)
        zg.create_dataset("disp", data=disp, chunks=vec_chunks)
        zg.create_dataset("vel", data=vel, chunks=vec_chunks)
        x = q + torch.from_numpy(disp.reshape(3, -1).T.astype(np.float64))
        density = paint(x, n, box_size, window="cic") - 1.0  # one particle per cell on average
        zg.create_dataset("density", data=density.float().numpy(), chunks=sca_chunks)
    attrs = {k: v for k, v in entry.cosmology.to_dict().items()}
    attrs.update(
        seed=-1 if entry.seed is None else entry.seed,
        box_size=box_size,
        ngrid=n,
        split=split,
        source_files=json.dumps([os.path.abspath(p) for p in sources]),
        source_sha256=json.dumps([sha256_file(p) for p in sources]),
        linear_field_from="seed" if entry.seed is not None else "ic",
    )
    grp.attrs.update(attrs)
    grp.attrs["complete"] = True
    f.flush()


def build_training_set(
    manifest: str | Path,
    out: str | Path,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    rebuild: bool = False,
    progress: bool = True,
) -> Path:
    """Build (or complete) the training set ``out`` from a manifest; return its path.

    Parameters
    ----------
    manifest : str or Path
        Suite manifest (JSON, see the module notes).
    out : str or Path
        Training-set HDF5 file; its folder must exist. Written atomically (via ``<out>.partial``).
    val_fraction, test_fraction : float
        Fractions of cosmologies held out, in [0, 1) (see :func:`assign_splits`).
    split_seed : int
        Seed of the split by cosmology.
    rebuild : bool
        Build from scratch even when ``out`` or ``<out>.partial`` exists. Without it, an ``out`` made from the
        same inputs (same fingerprint) is left untouched, a partial build from the same inputs is resumed
        (finished simulations kept), and either one made from other inputs makes the build refuse with a
        ``ValueError`` naming the differing keys, before any work.
    progress : bool
        Show a progress bar over simulations.

    Raises
    ------
    emulator.core.locks.BusyError
        Another build holds ``<out>.lock``.
    """
    meta, entries = load_manifest(manifest)
    ngrid, box_size = check_mesh_size(int(meta["ngrid"]), "ngrid"), float(meta["box_size"])
    for e in entries:
        for p in e.snapshots + ((e.ic,) if e.ic else ()):
            if not Path(p).is_file() and not Path(p + ".0.hdf5").is_file() and not Path(p + ".0").is_file():
                raise FileNotFoundError(f"snapshot {p} (listed for {e.sim_id} in {manifest}) does not exist")
    splits = assign_splits(entries, val_fraction, test_fraction, split_seed)
    fingerprint = trainingset_fingerprint(manifest, meta, val_fraction=val_fraction, test_fraction=test_fraction,
                                          split_seed=split_seed, format_version=FORMAT_VERSION,
                                          builder_version=BUILDER_VERSION)
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} (of --out {out}) does not exist")
    partial = out.with_name(out.name + ".partial")
    with exclusive_lock(out.with_name(out.name + ".lock"), f"another data-prep build is writing {out}"):
        up_to_date = False
        if rebuild:
            partial.unlink(missing_ok=True)
        elif partial.exists():
            check_recorded_fingerprint(partial, fingerprint, "an interrupted build")
        elif out.exists():
            check_recorded_fingerprint(out, fingerprint, "the existing training set")
            up_to_date = True
        remove_stale_temporaries(out.parent)  # left by killed builds (and other atomic writers) of this host
        if not up_to_date:
            _build(partial, manifest, meta, entries, fingerprint, splits, ngrid, box_size, progress)
            os.replace(partial, out)
    return out


def _build(partial, manifest, meta, entries, fingerprint, splits, ngrid, box_size, progress) -> None:
    """Write (or complete) the partial build: fingerprint first, then every unfinished simulation, then attrs."""
    from tqdm.auto import tqdm

    split_of = {sid: name for name, ids in splits.items() for sid in ids}
    params = np.array([e.cosmology.to_array() for e in entries])
    low = np.asarray(meta.get("prior_low", params.min(axis=0)), dtype=np.float64)
    high = np.asarray(meta.get("prior_high", params.max(axis=0)), dtype=np.float64)
    with h5py.File(partial, "a") as f:
        if "fingerprint" not in f:
            f.create_dataset("fingerprint", data=canonical_json(fingerprint))
            f.attrs["fingerprint_sha256"] = digest(fingerprint)
            f.flush()
        f.require_group("sims")
        todo = []
        for e in entries:
            g = f["sims"].get(e.sim_id)
            if g is not None and g.attrs.get("complete") and g.attrs.get("split") == split_of[e.sim_id]:
                continue
            todo.append(e)
        for e in tqdm(todo, desc="build", unit="sim", disable=not progress):
            _write_simulation(f, e, ngrid, box_size, split_of[e.sim_id])
        for stale in set(f["sims"]) - {e.sim_id for e in entries}:
            del f["sims"][stale]
        f.attrs.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            code_version=code_version(),
            created=utc_now(),
            ngrid=ngrid,
            box_size=box_size,
            param_names=json.dumps(list(PARAMETER_NAMES)),
            prior_low=low,
            prior_high=high,
            manifest=os.path.abspath(manifest),
        )
        sp = f.require_group("splits")
        for name, ids in splits.items():
            sp.attrs[name] = json.dumps(sorted(ids))
