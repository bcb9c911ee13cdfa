"""Benchmark tiers and their YAML configurations (``configs/benchmarks/<tier>.yaml``).

A configuration is a nested mapping; every key has a default here (:data:`DEFAULTS`), so a tier file only states
what differs. Wavenumbers of the bispectrum are in units of the fundamental ``k_f = 2 pi / L`` and smoothing
radii in units of the Lagrangian cell, so one file serves any box size (the box follows from the model's cell
size: ``box_size = ngrid * cell_size`` unless given).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from emulator.core.cosmology import PARAMETER_NAMES, Cosmology, get_preset

__all__ = ["TIERS", "DEFAULTS", "CONTENDERS", "config_path", "load_config", "parse_cosmology", "pm_settings",
           "model_scope", "same_recipe", "speed_threads", "covariance_contenders", "measures_covariance"]

TIERS: tuple[str, ...] = ("smoke", "standard", "full")
CONTENDERS: tuple[str, ...] = ("generator", "2lpt", "za", "pm_few", "lognormal")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "benchmarks"

DEFAULTS: dict[str, Any] = {
    "ngrid": 16,  # particles per side; the statistics mesh has the same size (shared white noise)
    "box_size": None,  # Mpc/h; None: ngrid * model cell size
    "redshift": 0.0,
    "device": "auto",
    "threads": None,  # torch.set_num_threads of the accuracy phases; None: torch's default (speed.threads: timings)
    "contenders": list(CONTENDERS),
    "model": {
        "path": None,  # None: the embedded default model, else the identity fallback below
        "fallback_cell_size": 2.0,  # Mpc/h, cell of the identity-over-2LPT stand-in when no model exists
        "fallback_prior": {  # hull recorded in the stand-in (the default suite's prior)
            "Omega_m": [0.24, 0.40], "Omega_b": [0.040, 0.056], "h": [0.60, 0.76], "n_s": [0.92, 1.00],
            "sigma8": [0.70, 0.90],
        },
        "fallback_redshift_range": [0.0, 1.0],
        "allow_extrapolation": True,  # outside the hull: run anyway and record a note
    },
    "truth": {
        "source": "simulate",  # "simulate" (cosmologies below), "suite" (a suite YAML) or "trainingset" (path)
        "path": None,  # training-set HDF5 for source=trainingset
        "suite": None,  # suite YAML for source=suite (relative paths: to the repository root)
        "processes": 1,  # source=suite on a CPU: torchrun processes for its missing simulations; None: one per CPU
        "split": "test",
        "max_sims": 4,
        "cosmologies": ["planck18"],  # presets or {Omega_m: .., ...} mappings (source=simulate)
        "seeds": [4242],  # one per cosmology (cycled)
        "simulation": {"z_init": 12.0, "steps": 12, "force_factor": 2, "gradient": "fd4", "mesh_shift": 0.5,
                       "deconvolve": 1, "refine": 1},  # refine: mass refinement of the truth (data_prep.simulate)
    },
    "pm_few": {"steps": 4},
    # PM contenders at the model's particle number: name -> settings over pm_base (steps and force mesh at least)
    "pm_base": {"z_init": 12.0, "force_factor": 2, "gradient": "fd4", "mesh_shift": 0.5, "deconvolve": 1},
    "pm": {},
    "statistics": {
        "window": "cic",
        "interlace": True,
        "summary_kmax": 0.5,  # fraction of k_Nyq of the particle grid for the summary numbers
        "xi_rmax": 0.25,  # fraction of the box
        "xi_floor": 0.05,  # xi ratios are masked where |xi_truth| < floor * |xi_truth(first bin)|
        "bispectrum": {"dk": 1.0, "equilateral": [2.0, 3.0, 4.0], "isosceles_k": 4.0,
                       "isosceles_thetas": [0.5, 0.6, 0.7, 0.8, 0.9]},
        "pdf": {"smoothing_cells": [1.5, 3.0], "nbins": 40},
        "halos": {"linking_length": 0.2, "min_members": 20, "min_halos": 20, "mass_bins": 5, "pk_nbins": 5},
        "rsd": {"los": "z"},
        # HOD galaxies of the FoF halos in redshift space (multipoles 0, 2, 4): {"hod": Zheng07 parameters or a
        # preset, "seed": HOD seed shared by every contender}; None: not measured
        "galaxies": None,
    },
    # simulation: truth recipe of the covariance realizations (None: the truth's); contenders: those whose
    # covariance is measured (None: every contender); redshifts: the runs' redshifts that measure it (None: all)
    "covariance": {"cosmology": 0, "realizations": 4, "base_seed": 9000, "nbins": 4, "kmax": 0.5,
                   "simulation": None, "contenders": None, "redshifts": None},
    # threads: torch threads of the timed mocks (fixed, so timings compare); None: the top-level ``threads``
    "speed": {"enabled": True, "isolate": True, "ngrid": 32, "repeats": 2, "threads": None,
              "methods": ["generator", "2lpt", "za", "lognormal", "pm_few", "pm"]},
    "report": {"figures": True},
    # Pass/fail thresholds of the report's targets table (issue 11, section 3; benchmarks.targets)
    "targets": {"pk_worst": 0.03, "pk_median": 0.01, "one_minus_r": 0.005, "halo_count": 0.05, "halo_bias": 0.05,
                "hmf": 0.10, "bispectrum_eq": 0.03, "speedup_vs_truth": 30.0},
}


def _merge(base: dict, override: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in base:
            raise ValueError(f"config: unknown key {where + key!r}")
        if isinstance(base[key], dict) and isinstance(value, dict) and key not in ("fallback_prior", "pm"):
            out[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def config_path(tier: str) -> Path:
    """Path of the YAML file of ``tier``; raise ``ValueError`` for an unknown tier."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    return CONFIG_DIR / f"{tier}.yaml"


def load_config(tier: str, path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Defaults, then the tier's YAML (or ``path``), then ``overrides``; validated.

    Raises ``ValueError`` for an unknown tier, a missing or malformed file, or an unknown key.
    """
    file = Path(path) if path is not None else config_path(tier)
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    if not file.is_file():
        raise ValueError(f"config file {file} does not exist")
    with open(file) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {file} must hold a mapping")
    data.pop("tier", None)
    cfg = _merge(DEFAULTS, data)
    if overrides:
        cfg = _merge(cfg, overrides)
    for name, settings in cfg["pm"].items():
        if name in CONTENDERS or name in ("pm", "truth") or not isinstance(settings, dict) or "steps" not in settings:
            raise ValueError(f"{file}: pm.{name} must be a new name mapping to PM settings with 'steps' "
                             f"(over pm_base), got {settings!r}")
    unknown = [c for c in cfg["contenders"] if c not in CONTENDERS and c not in cfg["pm"]]
    if unknown:
        raise ValueError(f"contenders: unknown {unknown}; choose from {', '.join(CONTENDERS)} or a key of pm")
    source = cfg["truth"]["source"]
    if source not in ("simulate", "suite", "trainingset"):
        raise ValueError(f"{file}: truth.source must be 'simulate', 'suite' or 'trainingset' (no silent fallback "
                         f"between them), got {source!r}")
    if source == "suite" and not cfg["truth"]["suite"]:
        raise ValueError(f"{file}: truth.source=suite needs truth.suite (a suite YAML)")
    if source == "trainingset" and not (cfg["truth"]["path"] and Path(cfg["truth"]["path"]).is_file()):
        raise ValueError(f"{file}: truth.source=trainingset needs truth.path, an existing training-set file; got "
                         f"{cfg['truth']['path']!r}")
    if int(cfg["covariance"]["realizations"]) < 2:
        raise ValueError("covariance.realizations must be at least 2")
    cov_names = cfg["covariance"]["contenders"]
    if cov_names is not None and (not isinstance(cov_names, list) or not cov_names
                                  or set(cov_names) - set(cfg["contenders"])):
        raise ValueError(f"{file}: covariance.contenders must be a non-empty list of contenders "
                         f"({', '.join(cfg['contenders'])}), got {cov_names!r}")
    zs = cfg["covariance"]["redshifts"]
    if zs is not None and (not isinstance(zs, list) or not zs or not all(isinstance(z, (int, float)) for z in zs)):
        raise ValueError(f"{file}: covariance.redshifts must be null or a non-empty list of redshifts, got {zs!r}")
    cfg["tier"] = tier
    cfg["config_file"] = str(file)
    return cfg


def pm_settings(cfg: dict, name: str) -> dict | None:
    """Full ``run_simulation`` settings of the named PM contender ``name`` (``None`` if it is not one)."""
    if name not in cfg["pm"]:
        return None
    return {**cfg["pm_base"], **cfg["pm"][name]}


def model_scope(cfg: dict) -> dict:
    """The ``model`` section less its ``path``: what a resume key holds of it (the file enters by its sha256)."""
    return {k: v for k, v in cfg["model"].items() if k != "path"}


def measures_covariance(cfg: dict) -> bool:
    """Whether a run at ``cfg["redshift"]`` measures the covariance (``covariance.redshifts``; None: every one)."""
    zs = cfg["covariance"]["redshifts"]
    return zs is None or any(abs(float(z) - float(cfg["redshift"])) < 1e-6 for z in zs)


def covariance_contenders(cfg: dict) -> list[str]:
    """The contenders whose P(k) covariance is measured: ``covariance.contenders``, else every contender."""
    names = cfg["covariance"]["contenders"]
    return list(cfg["contenders"]) if names is None else [c for c in cfg["contenders"] if c in names]


def same_recipe(a: dict | None, b: dict | None) -> bool:
    """Whether two ``run_simulation`` settings are the same simulation (omitted keys take the function's defaults).

    The simulator is deterministic in its settings and seed, so a contender with the truth's recipe needs no
    simulation of its own.
    """
    if a is None or b is None:
        return False
    import inspect

    from data_prep.simulate.run import run_simulation

    defaults = {k: p.default for k, p in inspect.signature(run_simulation).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **a} == {**defaults, **b}


def speed_threads(cfg: dict) -> int | None:
    """Torch threads of the timed mocks: ``speed.threads``, else the top-level ``threads``."""
    threads = cfg["speed"].get("threads")
    return cfg["threads"] if threads is None else int(threads)


def resolve_repo_path(path: str | Path) -> Path:
    """``path`` as given when it exists or is absolute, else relative to the repository root."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    return CONFIG_DIR.parent.parent / path


def parse_cosmology(spec: Any) -> Cosmology:
    """A preset name, a mapping of the five parameters, or a 5-sequence -> :class:`Cosmology`."""
    if isinstance(spec, Cosmology):
        return spec
    if isinstance(spec, str):
        return get_preset(spec)
    if isinstance(spec, dict):
        missing = [k for k in PARAMETER_NAMES if k not in spec]
        if missing:
            raise ValueError(f"cosmology mapping lacks {missing}")
        return Cosmology(**{k: float(spec[k]) for k in PARAMETER_NAMES})
    if isinstance(spec, (list, tuple)) and len(spec) == 5:
        return Cosmology(*[float(v) for v in spec])
    raise ValueError(f"cosmology must be a preset name, a parameter mapping or 5 numbers, got {spec!r}")
