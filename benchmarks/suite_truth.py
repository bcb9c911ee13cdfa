"""Held-out truth from a simulation-suite config: made by ``data-prep simulate``'s own code, or reused.

``truth.source: suite`` names a suite YAML (e.g. ``configs/suite_converged_test.yaml``: explicit test cosmologies,
their seeds and the converged recipe). :func:`suite_truth` runs :func:`data_prep.simulate.suite.run_suite` on it,
which simulates only what is missing in the suite's ``out_dir`` and reuses finished simulations whose recorded
inputs (cosmology, seed, box, particle number, every recipe option and the simulator version) match the config, and
refuses (one-line error) simulations made with other inputs. That folder is the benchmark's cache, keyed by
config and simulator version; nothing else is read. With ``processes > 1`` the missing simulations are run by
that many ``torchrun`` processes of ``data-prep simulate`` (one thread each; the suite code shards its work over
ranks), then read here. The snapshot at the benchmark's redshift of each simulation is
returned as a :class:`~benchmarks.truth.Mock` in Lagrangian (particle-ID) order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from data_prep.fingerprint import digest
from data_prep.readers import read_header, read_snapshot
from data_prep.simulate.run import wrap_positions
from data_prep.simulate.suite import (SuiteConfig, finished_records, finished_simulations, load_suite_config,
                                     run_suite, suite_design)
from emulator.core.locks import release_lock, take_lock
from emulator.core.cosmology import Cosmology

from .env import write_json
from .truth import Mock, file_identity

__all__ = ["suite_truth", "suite_recipe", "run_suite_parallel", "finished_snapshots", "add_suite_arguments"]


def suite_recipe(cfg: SuiteConfig) -> dict:
    """The suite's simulation options without its output redshifts (what ``truth.simulation`` would hold)."""
    return {k: v for k, v in cfg.simulation.items() if k != "output_redshifts"}


def _check(cfg: SuiteConfig, path: Path, redshift: float, ngrid: int | None, box_size: float | None) -> None:
    zs = [float(z) for z in cfg.simulation.get("output_redshifts", [])]
    if not any(abs(z - redshift) < 1e-6 for z in zs):
        raise ValueError(f"truth.suite {path}: no output at the benchmark redshift {redshift:g} "
                         f"(simulation.output_redshifts = {zs})")
    if ngrid is not None and int(ngrid) != cfg.ngrid:
        raise ValueError(f"truth.suite {path}: ngrid {cfg.ngrid} differs from the benchmark's ngrid {ngrid}")
    if box_size is not None and abs(float(box_size) - cfg.box_size) > 1e-9 * cfg.box_size:
        raise ValueError(f"truth.suite {path}: box_size {cfg.box_size:g} Mpc/h differs from the benchmark's "
                         f"{box_size:g} Mpc/h")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_suite_parallel(path: Path, cfg: SuiteConfig, processes: int | None, log: Callable[[str], None]) -> None:
    """Run the suite's missing simulations on the CPU in ``processes`` ``torchrun`` processes of one thread each
    (``None``: one per CPU); their output goes to this process's stderr.

    A first pass in this process checks the finished simulations against the config (a mismatch is the suite's
    one-line error) and counts what is missing; nothing is spawned when that is at most one simulation, or with
    one process, or inside a ``torchrun`` job already.
    """
    manifest = Path(run_suite(cfg, progress=False, limit=0))
    missing = len(suite_design(cfg)) - len(json.loads(manifest.read_text())["simulations"])
    nproc = min(available_cpus() if processes is None else int(processes), missing)
    if nproc < 2 or os.environ.get("WORLD_SIZE", "") not in ("", "1"):
        return
    log(f"truth: {missing} simulations of suite {cfg.name} in {nproc} torchrun processes")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "data_prep.cli", "simulate", "--config", str(path), "--device", "cpu"]
    res = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=sys.stderr, stderr=sys.stderr)
    if res.returncode != 0:
        raise ValueError(f"truth.suite {path}: data-prep simulate under torchrun failed (exit {res.returncode}, its "
                         "output above); finished simulations are kept, rerun to resume")


def suite_truth(
    path: str | Path, redshift: float, *, ngrid: int | None = None, box_size: float | None = None,
    device: str | torch.device = "cpu", log: Callable[[str], None] = print, processes: int | None = 1,
) -> tuple[list[Mock], SuiteConfig, list[str]]:
    """Make or reuse the suite's simulations; return its snapshots at ``redshift`` as truth mocks.

    Parameters
    ----------
    path : str or Path
        Suite YAML (``data_prep.simulate.suite`` format); relative ``out_dir`` resolves against the working
        directory, as for ``data-prep simulate``.
    redshift : float
        One of the suite's ``output_redshifts``.
    ngrid, box_size : optional
        The benchmark's particles per side and box (Mpc/h), checked against the suite's.
    processes : int or None
        Processes for the missing simulations (``None``: one per CPU); 1 runs them here, one after another.

    Returns
    -------
    mocks : list of Mock
        One per simulation, in the suite's design order (``seed``, ``cosmology`` from the suite's record).
    cfg : SuiteConfig
    notes : list of str
    """
    path = Path(path)
    cfg = load_suite_config(path)
    _check(cfg, path, float(redshift), ngrid, box_size)
    if finished_simulations(cfg) is None:  # what is missing is made under the writers' exclusive lock
        if processes != 1 and str(device).startswith("cpu"):
            run_suite_parallel(path, cfg, processes, log)
        run_suite(cfg, progress=True)
    out = Path(cfg.out_dir)
    lock = out / "simulate.lock"  # read under a shared lock: benchmark runs side by side, no writer meanwhile
    fd = take_lock(lock, f"another data-prep simulate is writing {out} (lock {lock})", shared=True)
    try:
        return _read(cfg, path, out, redshift, device, log)
    finally:
        release_lock(lock, fd)


def _read(cfg: SuiteConfig, path: Path, out: Path, redshift: float, device, log: Callable[[str], None]):
    records = finished_simulations(cfg)
    if records is None:
        raise ValueError(f"{out}: suite {cfg.name} is not finished from {path}'s inputs (changed by another run?)")
    mocks, notes = [], [f"truth: suite {cfg.name} ({path}), {len(records)} simulations in {out}, "
                        f"recipe {suite_recipe(cfg)}"]
    for rec in records:
        at_z = [name for name in rec["snapshots"] if abs(read_header(out / name).redshift - float(redshift)) < 1e-4]
        if not at_z:
            raise ValueError(f"{out / rec['sim_id']}: no snapshot at z = {redshift:g}")
        snap = read_snapshot(out / at_z[0])  # only that one is read in full
        order = np.argsort(snap.ids, kind="stable")  # Lagrangian C order, as the contenders' particles
        positions = torch.as_tensor(snap.positions[order], dtype=torch.float32, device=device)
        mock = Mock(name="truth", cosmology=Cosmology.from_mapping(rec["cosmology"]), redshift=float(snap.redshift),
                    box_size=cfg.box_size, ngrid=cfg.ngrid, seed=int(rec["seed"]), label=str(rec["sim_id"]),
                    positions=wrap_positions(positions, cfg.box_size),
                    velocities=torch.as_tensor(snap.velocities[order], dtype=torch.float32, device=device))
        mock.notes.append(f"truth from {out / rec['sim_id']} (z = {snap.redshift:g})")
        mock.source = file_identity(out / at_z[0], digest(rec))
        mocks.append(mock)
        log(f"truth: {rec['sim_id']} seed {rec['seed']} read")
    return mocks, cfg, notes


@dataclass(frozen=True)
class ManifestGrid:
    """Box and grid of a manifest's simulations (what the readers of :func:`finished_snapshots` use of a suite)."""

    name: str
    ngrid: int
    box_size: float


def _suite_records(suite: str | Path, log: Callable[[str], None]):
    """(suite config, records with snapshot paths) of a suite YAML's simulations finished from its inputs."""
    from .config import resolve_repo_path

    cfg = load_suite_config(resolve_repo_path(str(suite)))
    out_dir = Path(cfg.out_dir)  # relative to the working directory, as for data-prep simulate
    records, stale = finished_records(cfg)
    if not records:
        raise FileNotFoundError(f"{out_dir}: no finished simulation of suite {suite} made from its inputs (run "
                                f"data-prep simulate first)")
    if stale:
        log(f"{len(stale)} simulation(s) in {out_dir} made from other inputs are skipped: {sorted(stale)}")
    return cfg, [{**rec, "snapshots": [out_dir / name for name in rec["snapshots"]]} for rec in records]


def _manifest_records(path: str | Path, log: Callable[[str], None]):
    """(grid, records) of every simulation a manifest lists but those it marks ``val`` or ``test``."""
    from data_prep.manifest import load_manifest

    meta, entries = load_manifest(path)
    held = [e.sim_id for e in entries if e.split in ("val", "test")]
    if held:
        log(f"{len(held)} simulation(s) of {path} marked val or test are skipped: {held}")
    unsplit = [e.sim_id for e in entries if e.split is None]
    if unsplit:
        log(f"{len(unsplit)} simulation(s) of {path} carry no split and are used; data-prep build may hold some of "
            "them out for validation")
    records = []
    for e in entries:
        if e.split in ("val", "test"):
            continue
        if e.seed is None:
            raise ValueError(f"{path}: simulation {e.sim_id} has no seed (the generator remakes its initial noise "
                             "from the seed)")
        missing = [s for s in e.snapshots if not Path(s).is_file()]
        if missing:
            raise FileNotFoundError(f"{path}: simulation {e.sim_id}: snapshot {missing[0]} does not exist")
        for snap in e.snapshots:  # the box and particle number the generator will be run at
            head = read_header(snap, length_unit=e.length_unit)
            n_part = int(head.npart_total[1])
            if abs(head.box_size / float(meta["box_size"]) - 1) > 1e-6 or n_part != int(meta["ngrid"]) ** 3:
                raise ValueError(f"{path}: simulation {e.sim_id}: snapshot {snap} holds {n_part} "
                                 f"particles in {head.box_size:g} Mpc/h, not the manifest's {meta['ngrid']}^3 in "
                                 f"{meta['box_size']:g} Mpc/h")
        records.append({"sim_id": e.sim_id, "seed": e.seed, "cosmology": e.cosmology.to_dict(),
                        "snapshots": [Path(s) for s in e.snapshots], "length_unit": e.length_unit})
    if not records:
        raise ValueError(f"{path}: every simulation is marked val or test; nothing to fit or grade on")
    return ManifestGrid(str(meta.get("suite", Path(path).parent.name)), int(meta["ngrid"]),
                        float(meta["box_size"])), records


def finished_snapshots(suite: str | Path, redshifts, log: Callable[[str], None] = print):
    """``(grid, record, cosmology, redshift, snapshot)`` for every snapshot at one of ``redshifts`` of every
    simulation of ``suite``: a suite YAML (its simulations finished from its inputs; those made from other inputs
    are skipped, with a line; ``grid`` is the :class:`SuiteConfig`) or a ``manifest.json`` (``data-prep simulate``'s
    or ``data-prep merge``'s: every simulation it lists but those marked ``val`` or ``test``; ``grid`` a
    :class:`ManifestGrid`). Headers are read first, only the snapshots asked for in full. Raises
    FileNotFoundError when nothing is finished or a listed snapshot is missing, and ValueError (one line naming the
    manifest) for an entry without a seed, a snapshot of another box or particle number than the manifest's, a
    manifest whose every simulation is held out, or no snapshot at the redshifts."""
    from .config import resolve_repo_path

    if Path(suite).suffix.lower() == ".json":
        grid, records = _manifest_records(resolve_repo_path(str(suite)), log)
    else:
        grid, records = _suite_records(suite, log)
    found = False
    for rec in records:
        cosmo = Cosmology.from_mapping(rec["cosmology"])
        unit = rec.get("length_unit")  # a manifest entry's; suite snapshots record theirs
        for path in rec["snapshots"]:
            z = float(read_header(path, length_unit=unit).redshift)
            if any(abs(z - float(want)) < 1e-4 for want in redshifts):
                found = True
                yield grid, rec, cosmo, round(z, 4), read_snapshot(path, length_unit=unit)
    if not found:
        raise ValueError(f"suite {suite} has no snapshot at redshifts {list(redshifts)}")


def add_fit_grade_arguments(parser, what: str, option: str, fit_help: str, kmax_help: str) -> None:
    """The options of a command that fits a model's ``what`` file on a suite or grades it: ``--fit FILE``,
    ``--kmax-fraction``, ``--grade``, ``--<option> FILE`` (a candidate file to grade instead) and ``--out``."""
    parser.add_argument("--fit", metavar="FILE", help=fit_help)
    parser.add_argument("--kmax-fraction", type=float, default=0.5, help=kmax_help)
    parser.add_argument("--grade", action="store_true", help=f"grade the model's {what} file on the suite")
    parser.add_argument(f"--{option}", metavar="FILE", help=f"--grade this {what} file (fitted for the model) instead")
    parser.add_argument("--out", help="write the grade as JSON here")


def write_fitted(table, fit: str | Path, reads: Path, say: Callable[[str], None]) -> bool:
    """Write a fitted model file (``table.to_dict()``) to ``fit``, print ``table.describe()``, and say so when
    generation reads the model's file from ``reads`` instead; returns whether ``fit`` is that file."""
    write_json(Path(fit), table.to_dict())
    print(table.describe())
    if Path(fit).resolve() != Path(reads).resolve():
        say(f"note: generation reads {reads}, not {fit}")
        return False
    return True


def check_fit_grade(args, option: str) -> None:
    """ValueError unless the options of :func:`add_fit_grade_arguments` ask for something possible."""
    if not (args.fit or args.grade):
        raise ValueError("nothing to do: give --fit FILE and/or --grade")
    if not 0 < args.kmax_fraction <= 1:
        raise ValueError(f"--kmax-fraction must be in (0, 1], got {args.kmax_fraction}")
    if getattr(args, option) and args.fit:
        raise ValueError(f"--{option} grades a given file; --fit makes one: give one of them")


def add_suite_arguments(parser) -> None:
    """The options of a command that grades or fits a model on a suite's finished simulations
    (:func:`finished_snapshots`): ``--suite``, ``--model`` and ``--redshifts``."""
    parser.add_argument("--suite", required=True, help="the truth: a suite YAML (its finished simulations) or a "
                        "manifest.json of data-prep simulate or merge (its simulations but those marked val or test)")
    parser.add_argument("--model", default="hybrid_pm4", help="model file or embedded model name")
    parser.add_argument("--redshifts", type=float, nargs="+", default=[0.0, 0.5, 1.0])
