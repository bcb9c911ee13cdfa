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
from emulator.core.device import resolve_device
from emulator.core.fourier import check_mesh_size
from emulator.core.locks import exclusive_lock
from emulator.core.base_recipe import LPT_BASE, BaseRecipe
from emulator.core.provenance import code_version, utc_now

from .build_fields import grid_fields, simulation_fields
from .simulate.run import SIMULATOR_VERSION
from .fingerprint import canonical_json, digest
from .manifest import SimulationEntry, check_recorded_fingerprint, load_manifest, trainingset_fingerprint

__all__ = ["SimulationEntry", "load_manifest", "grid_fields", "assign_splits", "build_training_set"]

FORMAT = "cosmo-emulator-trainingset"
FORMAT_VERSION = 1  # the file layout (docs/architecture.md), checked by the readers of training sets
#: Bump when the builder computes something differently from the same inputs (it is part of the fingerprint, so
#: existing training sets are then refused until rebuilt).
BUILDER_VERSION = 1


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


def _write_simulation(f: h5py.File, fields: dict, split: str) -> None:
    """Write one simulation group from :func:`data_prep.build_fields.simulation_fields`, flagged ``complete`` last."""
    sid = fields["sim_id"]
    if sid in f["sims"]:
        del f["sims"][sid]
    grp = f["sims"].create_group(sid)
    c = min(fields["ngrid"], 32)
    vec_chunks, sca_chunks = (3, c, c, c), (c, c, c)
    grp.create_dataset("linear_delta", data=fields["linear_delta"], chunks=sca_chunks)
    for key, attrs, arrays in fields["redshifts"]:
        zg = grp.create_group(key)
        zg.attrs.update(attrs)
        for name in ("lpt_disp", "lpt_vel", "base_disp", "base_vel", "disp", "vel"):
            if name in arrays:
                zg.create_dataset(name, data=arrays[name], chunks=vec_chunks)
        zg.create_dataset("density", data=arrays["density"], chunks=sca_chunks)
    grp.attrs.update(fields["attrs"])
    grp.attrs["split"] = split
    grp.attrs["complete"] = True
    f.flush()


def _fields_in_order(todo, ngrid, box_size, device, workers, base):
    """Yield ``(entry, fields)`` in ``todo``'s order, computed here or by ``workers`` processes (a bounded window)."""
    if workers <= 1 or len(todo) <= 1:
        for e in todo:
            yield e, simulation_fields(e, ngrid, box_size, device, base)
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no forked torch/h5py state in the workers
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_one_thread)
    try:
        window: deque = deque()
        entries = iter(todo)
        for e in entries:
            window.append((e, pool.submit(simulation_fields, e, ngrid, box_size, "cpu", base)))
            if len(window) >= 2 * workers:
                break
        while window:
            e, fut = window.popleft()
            nxt = next(entries, None)
            if nxt is not None:
                window.append((nxt, pool.submit(simulation_fields, nxt, ngrid, box_size, "cpu", base)))
            yield e, fut.result()
    finally:  # also on an error here or in the writer (generator closed): queued simulations are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def _one_thread() -> None:
    torch.set_num_threads(1)


def build_training_set(
    manifest: str | Path,
    out: str | Path,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    rebuild: bool = False,
    progress: bool = True,
    device: str = "cpu",
    workers: int = 1,
    base: BaseRecipe = LPT_BASE,
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
    device : str
        Where the 2LPT fields and painted densities are computed (``"cpu"``, ``"cuda"``, ``"auto"``); snapshots
        are read and the file is written on the CPU. A GPU agrees with the CPU to float rounding (atomic painting).
    workers : int
        With ``workers > 1`` (CPU only), that many processes (one thread each) compute simulations while this one
        writes them in manifest order; the file is identical to a one-process build.
    base : BaseRecipe
        The fields the generator will correct (:mod:`emulator.core.pm_base`): 2LPT (default; every training set
        holds ``lpt_disp`` / ``lpt_vel``) or a few-step PM run, then also written as ``base_disp`` / ``base_vel``
        for every snapshot and recorded in the file's ``base`` attribute and fingerprint.

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
    if not isinstance(base, BaseRecipe):
        raise ValueError(f"base must be a BaseRecipe, got {type(base).__name__}")
    if not base.is_lpt:  # 2LPT sets keep the fingerprint they always had; a PM base also names the PM code
        fingerprint["base"] = {**base.to_dict(), "simulator_version": SIMULATOR_VERSION}
    device = resolve_device(device)  # bad options are refused before anything is removed or written
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if workers > 1 and device.type != "cpu":
        raise ValueError(f"workers > 1 computes on the CPU; got device {str(device)!r} with workers={workers}")
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
            _build(partial, manifest, meta, entries, fingerprint, splits, ngrid, box_size, progress, device, workers,
                   base)
            os.replace(partial, out)
    return out


def _build(partial, manifest, meta, entries, fingerprint, splits, ngrid, box_size, progress, device, workers,
           base) -> None:
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
        stream = _fields_in_order(todo, ngrid, box_size, device, workers, base)
        try:
            for e, fields in tqdm(stream, total=len(todo), desc="build", unit="sim", disable=not progress):
                _write_simulation(f, fields, split_of[e.sim_id])
        finally:
            stream.close()  # stops the worker pool before the lock is released
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
            base=base.to_json(),
        )
        sp = f.require_group("splits")
        for name, ids in splits.items():
            sp.attrs[name] = json.dumps(sorted(ids))
