"""A simulation suite over a Latin hypercube of cosmologies, resumable and with a manifest.

The YAML config (see ``configs/suite_*.yaml``) gives the box, the particle grid, the prior ranges of the five
parameters, the number of cosmologies and seeds, and the simulator settings. Every simulation writes Gadget-4
style HDF5 snapshots (the initial conditions as ``snap_000`` and one per output redshift) and, last, a
``done.json`` marker; a restarted run skips simulations with a marker, and the snapshot writer is atomic, so a
killed run never leaves a half-written file that looks finished. ``manifest.json`` (for ``data-prep build``) is
rewritten atomically after each simulation.

Every marker and manifest entry records the simulation's ``inputs`` (:func:`simulation_inputs`: simulator
version, box, grid, simulator settings with defaults filled in, cosmology, seed) and their hash
``inputs_sha256``. A resumed run compares them with what the config asks for now: if any finished simulation
differs (say ``steps`` or ``box_size`` was edited), it refuses before any work, naming the simulations and keys,
unless ``force=True`` (``--force``), which redoes those simulations. One run at a time may write a suite folder
(lock ``simulate.lock``); temporaries left there by killed runs of this host are removed at the start.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from emulator.core.atomic import atomic_open, remove_stale_temporaries
from emulator.core.checks import check_box_size
from emulator.core.cosmology import PARAMETER_NAMES, Cosmology
from emulator.core.provenance import code_version, utc_now

from ..fingerprint import differing_keys, digest, summarise_keys
from emulator.core.locks import exclusive_lock
from emulator.core.distributed import all_gather_objects, barrier, init_if_needed, rank_device, rank_world, shard
from .explicit import explicit_design
from .run import SIMULATOR_VERSION, check_options, run_simulation

__all__ = [
    "SuiteConfig", "latin_hypercube", "run_suite", "finished_simulations", "load_suite_config", "simulation_inputs",
    "suite_design",
]

_SIM_KEYS = {
    "z_init", "steps", "force_factor", "output_redshifts", "lpt_order", "spacing", "deconvolve", "gradient",
    "mesh_shift", "refine", "integrator",
}


@dataclass
class SuiteConfig:
    """Settings of a suite (units: Mpc/h for ``box_size``)."""

    name: str
    out_dir: str
    box_size: float
    ngrid: int
    n_cosmologies: int
    prior: dict[str, list[float]]
    seeds_per_cosmology: int = 1
    base_seed: int = 1000
    design_seed: int = 0
    simulation: dict[str, Any] = field(default_factory=dict)
    num_files: int = 1
    device: str = "auto"
    cosmologies: list[dict] | None = None  # explicit points with seeds (data_prep.simulate.explicit)

    def __post_init__(self) -> None:
        missing = [k for k in PARAMETER_NAMES if k not in self.prior]
        if missing:
            raise ValueError(f"suite prior lacks parameter(s) {missing}")
        for k, rng in self.prior.items():
            if k not in PARAMETER_NAMES or len(rng) != 2 or not rng[0] <= rng[1]:
                raise ValueError(f"suite prior.{k} must be [low, high] for a known parameter, got {rng!r}")
        check_box_size(self.box_size)
        if isinstance(self.ngrid, bool) or not isinstance(self.ngrid, int) or self.ngrid < 1:
            raise ValueError(f"ngrid must be a positive integer (particles per side), got {self.ngrid!r}")
        if self.n_cosmologies < (0 if self.cosmologies else 1) or self.seeds_per_cosmology < 1:
            raise ValueError("n_cosmologies and seeds_per_cosmology must be >= 1 (n_cosmologies 0 with cosmologies)")
        if self.cosmologies is not None:
            explicit_design(self.cosmologies)  # validates: one-line error naming the entry
        if not isinstance(self.simulation, dict):
            raise ValueError(f"simulation must be a mapping of options, got {self.simulation!r}")
        unknown = set(self.simulation) - _SIM_KEYS
        if unknown:
            raise ValueError(f"unknown simulation option(s) {sorted(unknown)}; known: {sorted(_SIM_KEYS)}")
        try:  # every value, now: a bad one must not wait for the first simulation (and leave its folder)
            check_options(**{k: value for k, (value, _) in _simulation_options(self.simulation).items()})
        except ValueError as exc:
            raise ValueError(f"simulation.{exc}") from None

    @property
    def low(self) -> np.ndarray:
        return np.array([self.prior[k][0] for k in PARAMETER_NAMES], dtype=np.float64)

    @property
    def high(self) -> np.ndarray:
        return np.array([self.prior[k][1] for k in PARAMETER_NAMES], dtype=np.float64)


def _simulation_options(simulation: dict) -> dict[str, tuple[Any, Any]]:
    """``option -> (value, run_simulation's default)`` for every suite-settable option, the YAML's value where it
    gives one, in sorted order."""
    params = inspect.signature(run_simulation).parameters
    return {k: (simulation.get(k, params[k].default), params[k].default) for k in sorted(_SIM_KEYS)}


def load_suite_config(path: str | Path) -> SuiteConfig:
    """Read a suite YAML config; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"suite config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
        return SuiteConfig(**raw)
    except (TypeError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: invalid suite config: {exc}") from None


def latin_hypercube(n: int, low: np.ndarray, high: np.ndarray, seed: int) -> np.ndarray:
    """``n`` points of a (scrambled, centred-free) Latin hypercube in the box ``[low, high]``, shape ``(n, d)``."""
    from scipy.stats import qmc

    unit = qmc.LatinHypercube(d=len(low), seed=seed).random(n)
    return qmc.scale(unit, low, high) if np.all(high > low) else low + unit * (high - low)


def suite_design(cfg: SuiteConfig) -> list[dict]:
    """The suite's simulations in order: ``{"sim_id", "cosmology", "seed"}`` of the Latin hypercube, then the
    explicit cosmologies."""
    points = latin_hypercube(cfg.n_cosmologies, cfg.low, cfg.high, cfg.design_seed) if cfg.n_cosmologies else []
    sims = []
    for i, p in enumerate(points):
        cosmo = Cosmology.from_array(p)
        for s in range(cfg.seeds_per_cosmology):
            sid = f"sim_{i:04d}" if cfg.seeds_per_cosmology == 1 else f"sim_{i:04d}_s{s}"
            sims.append({"sim_id": sid, "cosmology": cosmo.to_dict(), "seed": cfg.base_seed + len(sims)})
    return sims + explicit_design(cfg.cosmologies or [])


def simulation_inputs(cfg: SuiteConfig, sim: dict) -> dict:
    """Everything that determines one simulation's snapshots, as a JSON-compatible dict.

    ``simulator_version`` (:data:`data_prep.simulate.run.SIMULATOR_VERSION`, not the git commit), ``box_size``
    (Mpc/h), ``ngrid``, ``simulation`` (every suite-settable option of :func:`run_simulation`, defaults filled
    in, integers given for float options written as floats), ``cosmology`` and ``seed``. Left out, as they do not
    change the particles: the suite's name and folder, ``num_files`` (file layout only) and ``device`` (CPU and
    CUDA agree to float rounding).
    """
    options = {}
    for key, (value, default) in _simulation_options(cfg.simulation).items():
        if (key, value) in (("refine", 1), ("integrator", "fastpm")):
            continue  # such runs keep the fingerprint of suites made before refinement and COLA existed
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if key == "output_redshifts" and isinstance(value, (list, tuple)):
            value = [float(z) if isinstance(z, int) and not isinstance(z, bool) else z for z in value]
        options[key] = value
    return {"simulator_version": SIMULATOR_VERSION, "box_size": float(cfg.box_size), "ngrid": int(cfg.ngrid),
            "simulation": options, "cosmology": dict(sim["cosmology"]), "seed": int(sim["seed"])}


def _write_manifest(cfg: SuiteConfig, out: Path, done: list[dict]) -> None:
    manifest = {
        "suite": cfg.name,
        "box_size": float(cfg.box_size),
        "ngrid": cfg.ngrid,
        "param_names": list(PARAMETER_NAMES),
        "prior_low": cfg.low.tolist(),
        "prior_high": cfg.high.tolist(),
        "simulation": cfg.simulation,
        "simulator_version": SIMULATOR_VERSION,
        "code_version": code_version(),
        "updated": utc_now(),
        "simulations": done,
    }
    with atomic_open(out / "manifest.json", "w") as fh:
        json.dump(manifest, fh, indent=1)


def _finished(out: Path, design: list[dict], expected: dict[str, dict]) -> tuple[dict, dict]:
    """Markers found: ``(records whose inputs match, {sim_id: differing keys} for the others)``."""
    done, stale = {}, {}
    for sim in design:
        sid = sim["sim_id"]
        marker = out / sid / "done.json"
        if not marker.is_file():
            continue
        try:
            record = json.loads(marker.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{marker}: not valid JSON; delete it to redo {sid}") from None
        if "inputs" not in record:
            stale[sid] = ["inputs (not recorded: run by an older data-prep)"]
        elif record.get("inputs_sha256") != digest(expected[sid]):
            stale[sid] = differing_keys(record["inputs"], expected[sid]) or ["inputs_sha256"]
        else:
            done[sid] = record
    return done, stale


def finished_simulations(cfg: SuiteConfig) -> list[dict] | None:
    """The records of the suite's simulations, in design order, when every one is finished from this config's
    inputs; None when anything is missing or was made from other inputs.

    Read from each simulation's own marker (``done.json``, checked against this config's inputs), never from the
    manifest, which a killed multi-process run may leave behind its markers. Takes no lock: a reader that must
    not see a writer at work holds a shared lock on the suite's ``simulate.lock`` around this call and its reads
    (as :func:`benchmarks.suite_truth.suite_truth` does); :func:`run_suite` holds it exclusively.
    """
    records, stale = finished_records(cfg)
    return None if stale or len(records) != len(suite_design(cfg)) else records


def finished_records(cfg: SuiteConfig) -> tuple[list[dict], dict[str, list[str]]]:
    """The suite's simulations finished so far from this config's inputs (records, in design order), and
    ``{sim_id: differing input keys}`` of those finished from other inputs; read from the ``done.json`` markers as
    :func:`finished_simulations` does, for readers that can use a partial suite."""
    design = suite_design(cfg)
    done, stale = _finished(Path(cfg.out_dir), design, {sim["sim_id"]: simulation_inputs(cfg, sim) for sim in design})
    return [done[sim["sim_id"]] for sim in design if sim["sim_id"] in done], stale


def _redo(sdir: Path) -> None:
    """Forget a finished simulation made from other inputs: its marker first, then its snapshots."""
    (sdir / "done.json").unlink(missing_ok=True)
    for f in sdir.glob("snap_[0-9][0-9][0-9]*"):
        if f.is_file():
            f.unlink()


def _simulate(cfg: SuiteConfig, out: Path, sim: dict, inputs: dict, device: str) -> dict:
    """Run one simulation, write its snapshots and, last, its marker; return the marker's record."""
    from emulator.core.cosmology import particle_mass_from_cosmology

    from ..writers import write_gadget4_hdf5

    sdir = out / sim["sim_id"]
    sdir.mkdir(exist_ok=True)
    cosmo = Cosmology.from_mapping(sim["cosmology"])
    t0 = time.perf_counter()
    res = run_simulation(cosmo, sim["seed"], cfg.ngrid, cfg.box_size, device=device, **cfg.simulation)
    mass = particle_mass_from_cosmology(cosmo.Omega_m, cfg.box_size, cfg.ngrid**3)
    prov = {"seed": sim["seed"], "code_version": code_version(), "suite": cfg.name, "sim_id": sim["sim_id"],
            "simulation": cfg.simulation, "ngrid": cfg.ngrid, "simulator_version": SIMULATOR_VERSION,
            "recipe": {k: res.config[k] for k in ("refine", "steps", "force_factor", "z_init", "integrator")
                       if k in res.config}}
    snaps = []
    for k, state in enumerate([res.ic, *res.outputs]):
        write_gadget4_hdf5(
            sdir / f"snap_{k:03d}.hdf5", state.positions.cpu().numpy(), state.velocities.cpu().numpy(),
            state.ids.cpu().numpy(), cfg.box_size, state.redshift, cosmo.to_dict(), mass, num_files=cfg.num_files,
            extra_attrs=prov,
        )
        snaps.append(f"{sim['sim_id']}/snap_{k:03d}" + (".hdf5" if cfg.num_files == 1 else ""))
    record = {**sim, "ic": snaps[0], "snapshots": snaps[1:], "inputs": inputs, "inputs_sha256": digest(inputs),
              "wall_seconds": time.perf_counter() - t0, "device": device}
    with atomic_open(sdir / "done.json", "w") as fh:
        json.dump(record, fh, indent=1)
    return record


def run_suite(cfg: SuiteConfig, *, progress: bool = True, limit: int | None = None, force: bool = False) -> Path:
    """Run (or resume) every simulation of the suite; return the manifest path.

    Parameters
    ----------
    cfg : SuiteConfig
        The suite.
    progress : bool
        Show a progress bar over the simulations this run will do (its title says how many were done before).
    limit : int, optional
        Stop after that many new simulations (for smoke tests and time-sliced jobs). 0: none, only write the
        manifest of the finished ones (a multi-process run writes it at its end, so a killed one leaves none).
    force : bool
        Redo finished simulations whose recorded inputs differ from the config's. Without it such a resume
        raises ``ValueError`` before any work, naming the simulations and the differing keys.

    Raises
    ------
    emulator.core.locks.BusyError
        Another run holds the suite folder's lock.
    """
    from tqdm.auto import tqdm

    from emulator.core.device import resolve_device  # imports torch: here, not at start-up

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
    out = Path(cfg.out_dir)
    design = suite_design(cfg)
    expected = {sim["sim_id"]: simulation_inputs(cfg, sim) for sim in design}
    device = str(resolve_device(cfg.device))
    rank, world = rank_world()  # torchrun: rank 0 holds the lock and checks, each rank runs its shard
    device = rank_device(device)
    init_if_needed(device)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    barrier()
    lock = (exclusive_lock(out / "simulate.lock", f"another process is using {out} (a data-prep simulate "
                                                 "writing it, or a benchmark reading it)") if rank == 0
            else contextlib.nullcontext())
    with lock:
        problem = None
        if rank == 0:
            done, stale = _finished(out, design, expected)
            if stale and not force:
                keys = sorted({k for v in stale.values() for k in v})
                problem = (f"{out}: {len(stale)} finished simulation(s) ({summarise_keys(sorted(stale), 3)}) were "
                           f"made with other inputs than this config (differing: {summarise_keys(keys)}); pass "
                           "--force to redo them, or use another --out-dir")
            else:
                for folder in [out, *(out / sim["sim_id"] for sim in design)]:
                    remove_stale_temporaries(folder)
                for sid in stale:
                    _redo(out / sid)
        problem = all_gather_objects(problem)[0]
        if problem:
            raise ValueError(problem)
        if world > 1:
            done, _ = _finished(out, design, expected)  # after rank 0's clean-up
        todo = [sim for sim in design if sim["sim_id"] not in done][:limit]
        title = f"suite {cfg.name} ({len(done)} of {len(design)} done before)"
        for sim in tqdm(shard(todo, rank, world), desc=title, unit="sim", disable=not progress):
            done[sim["sim_id"]] = _simulate(cfg, out, sim, expected[sim["sim_id"]], device)
            if world == 1:
                _write_manifest(cfg, out, [done[s["sim_id"]] for s in design if s["sim_id"] in done])
        for part in all_gather_objects(done if world > 1 else {}):
            done.update(part)
        if rank == 0:
            _write_manifest(cfg, out, [done[s["sim_id"]] for s in design if s["sim_id"] in done])
        barrier()
    return out / "manifest.json"
