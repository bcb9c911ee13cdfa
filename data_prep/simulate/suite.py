"""A simulation suite over a Latin hypercube of cosmologies, resumable and with a manifest.

The YAML config (see ``configs/suite_*.yaml``) gives the box, the particle grid, the prior ranges of the five
parameters, the number of cosmologies and seeds, and the simulator settings. Every simulation writes Gadget-4
style HDF5 snapshots (the initial conditions as ``snap_000`` and one per output redshift) and, last, a
``done.json`` marker; a restarted run skips simulations with a marker, and the snapshot writer is atomic, so a
killed run never leaves a half-written file that looks finished. ``manifest.json`` (for ``data-prep build``) is
rewritten atomically after each simulation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from emulator.core.cosmology import PARAMETER_NAMES, Cosmology
from emulator.core.provenance import code_version, utc_now

from emulator.core.atomic import atomic_open

__all__ = ["SuiteConfig", "latin_hypercube", "run_suite", "load_suite_config"]

_SIM_KEYS = {
    "z_init", "steps", "force_factor", "output_redshifts", "lpt_order", "spacing", "deconvolve", "gradient", "mesh_shift",
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

    def __post_init__(self) -> None:
        missing = [k for k in PARAMETER_NAMES if k not in self.prior]
        if missing:
            raise ValueError(f"suite prior lacks parameter(s) {missing}")
        for k, rng in self.prior.items():
            if k not in PARAMETER_NAMES or len(rng) != 2 or not rng[0] <= rng[1]:
                raise ValueError(f"suite prior.{k} must be [low, high] for a known parameter, got {rng!r}")
        if self.n_cosmologies < 1 or self.seeds_per_cosmology < 1:
            raise ValueError("n_cosmologies and seeds_per_cosmology must be >= 1")
        unknown = set(self.simulation) - _SIM_KEYS
        if unknown:
            raise ValueError(f"unknown simulation option(s) {sorted(unknown)}; known: {sorted(_SIM_KEYS)}")

    @property
    def low(self) -> np.ndarray:
        return np.array([self.prior[k][0] for k in PARAMETER_NAMES], dtype=np.float64)

    @property
    def high(self) -> np.ndarray:
        return np.array([self.prior[k][1] for k in PARAMETER_NAMES], dtype=np.float64)


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


def _design(cfg: SuiteConfig) -> list[dict]:
    points = latin_hypercube(cfg.n_cosmologies, cfg.low, cfg.high, cfg.design_seed)
    sims = []
    for i, p in enumerate(points):
        cosmo = Cosmology.from_array(p)
        for s in range(cfg.seeds_per_cosmology):
            sid = f"sim_{i:04d}" if cfg.seeds_per_cosmology == 1 else f"sim_{i:04d}_s{s}"
            sims.append({"sim_id": sid, "cosmology": cosmo.to_dict(), "seed": cfg.base_seed + len(sims)})
    return sims


def _write_manifest(cfg: SuiteConfig, out: Path, done: list[dict]) -> None:
    manifest = {
        "suite": cfg.name,
        "box_size": cfg.box_size,
        "ngrid": cfg.ngrid,
        "param_names": list(PARAMETER_NAMES),
        "prior_low": cfg.low.tolist(),
        "prior_high": cfg.high.tolist(),
        "simulation": cfg.simulation,
        "code_version": code_version(),
        "updated": utc_now(),
        "simulations": done,
    }
    with atomic_open(out / "manifest.json", "w") as fh:
        json.dump(manifest, fh, indent=1)


def run_suite(cfg: SuiteConfig, *, progress: bool = True, limit: int | None = None) -> Path:
    """Run (or resume) every simulation of the suite; return the manifest path.

    ``limit`` stops after that many new simulations (for smoke tests and time-sliced jobs).
    """
    import torch
    from tqdm.auto import tqdm

    from emulator.core.cosmology import particle_mass_from_cosmology

    from ..writers import write_gadget4_hdf5
    from .run import run_simulation

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    design = _design(cfg)
    done, new = [], 0
    bar = tqdm(design, desc=f"suite {cfg.name}", unit="sim", disable=not progress)
    for sim in bar:
        sdir = out / sim["sim_id"]
        marker = sdir / "done.json"
        if marker.is_file():
            done.append(json.loads(marker.read_text()))
            continue
        if limit is not None and new >= limit:
            continue
        sdir.mkdir(exist_ok=True)
        cosmo = Cosmology.from_mapping(sim["cosmology"])
        t0 = time.perf_counter()
        res = run_simulation(cosmo, sim["seed"], cfg.ngrid, cfg.box_size, device=device, **cfg.simulation)
        mass = particle_mass_from_cosmology(cosmo.Omega_m, cfg.box_size, cfg.ngrid**3)
        prov = {"seed": sim["seed"], "code_version": code_version(), "suite": cfg.name, "sim_id": sim["sim_id"],
                "simulation": cfg.simulation, "ngrid": cfg.ngrid}
        snaps = []
        for k, state in enumerate([res.ic, *res.outputs]):
            name = sdir / f"snap_{k:03d}.hdf5"
            write_gadget4_hdf5(
                name, state.positions.cpu().numpy(), state.velocities.cpu().numpy(), state.ids.cpu().numpy(),
                cfg.box_size, state.redshift, cosmo.to_dict(), mass, num_files=cfg.num_files, extra_attrs=prov,
            )
            snaps.append(f"{sim['sim_id']}/snap_{k:03d}" + (".hdf5" if cfg.num_files == 1 else ""))
        record = {**sim, "ic": snaps[0], "snapshots": snaps[1:], "wall_seconds": time.perf_counter() - t0,
                  "device": device}
        with atomic_open(marker, "w") as fh:
            json.dump(record, fh, indent=1)
        done.append(record)
        new += 1
        _write_manifest(cfg, out, done)
    _write_manifest(cfg, out, done)
    return out / "manifest.json"
