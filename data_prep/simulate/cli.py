"""``data-prep simulate``: run a suite of 2LPT+PM simulations from a YAML config, or one explicit cosmology.

A suite config holds a Latin hypercube (``n_cosmologies``) and/or an explicit list (``cosmologies``, see
:mod:`data_prep.simulate.explicit`). Without ``--config``, the cosmology flags run one simulation (a one-entry
suite in ``--out``, same files, manifest and resumption), by default with the converged recipe of
``configs/suite_converged.yaml`` (``--refine 2 --steps 40 --pm-factor 2 --z-init 12``); ``--seed`` follows
``emulator generate --seed``.
"""

from __future__ import annotations

import argparse

from .run import INTEGRATORS
from .suite import SuiteConfig, load_suite_config, run_suite

__all__ = ["add_arguments", "run", "single_run_config"]

_COSMO_FLAGS = {"omega_m": "Omega_m", "omega_b": "Omega_b", "h": "h", "n_s": "n_s", "sigma8": "sigma8"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``data-prep simulate``."""
    parser.add_argument("--config", default=None,
                        help="suite YAML (e.g. configs/suite_tiny.yaml for a smoke run, configs/suite_converged.yaml); "
                             "omit it to run one cosmology given by the flags below")
    parser.add_argument("--out-dir", default=None, help="override the config's out_dir")
    parser.add_argument("--limit", type=int, default=None,
                        help="run at most this many new simulations, then stop (0: only write the manifest of the "
                             "finished ones, e.g. after a killed multi-process run, which writes it at its end)")
    parser.add_argument("--device", default=None, help="override the config's device (cpu, cuda, auto)")
    parser.add_argument("--force", action="store_true",
                        help="redo finished simulations whose recorded inputs (simulator version, box, grid, settings, "
                             "cosmology, seed) differ from the config's; without it such a resume is refused")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    one = parser.add_argument_group("one explicit cosmology (without --config)")
    for flag, key in _COSMO_FLAGS.items():
        one.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=float, default=None, help=f"{key}")
    one.add_argument("--seed", type=int, default=None, help="white-noise seed (the convention of emulator generate)")
    one.add_argument("--redshifts", type=float, nargs="+", default=[0.0], help="output redshifts (default 0)")
    one.add_argument("--out", default=None, help="output folder (snapshots in OUT/NAME/, manifest in OUT/)")
    one.add_argument("--name", default="single", help="simulation folder name (default %(default)s)")
    one.add_argument("--ngrid", type=int, default=64, help="output particles per side (default %(default)s)")
    one.add_argument("--box-size", type=float, default=128.0, help="box side in Mpc/h (default %(default)s)")
    one.add_argument("--refine", type=int, default=2,
                     help="simulated particles per axis per output particle (default %(default)s; 1: no refinement)")
    one.add_argument("--steps", type=int, default=40, help="PM steps from z_init to the lowest output redshift")
    one.add_argument("--pm-factor", type=int, default=2,
                     help="force mesh per axis = pm-factor x refine x ngrid (default %(default)s)")
    one.add_argument("--z-init", type=float, default=12.0, help="2LPT starting redshift (default %(default)s)")
    one.add_argument("--integrator", choices=INTEGRATORS, default="fastpm",
                     help="time stepping: FastPM kick-drift-kick, or the same steps in the 2LPT frame (COLA: large "
                          "scales right with a few steps); default %(default)s")


# The suite option each single-run flag sets, as SuiteConfig's errors name it.
_FLAG_OF_OPTION = {"simulation.z_init": "--z-init", "simulation.steps": "--steps",
                   "simulation.force_factor": "--pm-factor", "simulation.refine": "--refine",
                   "simulation.output_redshifts": "--redshifts", "box_size": "--box-size", "ngrid": "--ngrid"}


def single_run_config(args: argparse.Namespace) -> SuiteConfig:
    """The one-entry :class:`SuiteConfig` of the cosmology flags; one-line ``ValueError`` naming a missing flag."""
    missing = [f"--{f.replace('_', '-')}" for f in _COSMO_FLAGS if getattr(args, f) is None]
    missing += [flag for flag, value in (("--seed", args.seed), ("--out", args.out)) if value is None]
    if missing:
        raise ValueError(f"data-prep simulate needs --config, or all of the single-run flags; missing: {missing}")
    point = {key: getattr(args, flag) for flag, key in _COSMO_FLAGS.items()}
    simulation = {"z_init": args.z_init, "steps": args.steps, "force_factor": args.pm_factor, "refine": args.refine,
                  "output_redshifts": sorted({float(z) for z in args.redshifts}, reverse=True)}
    if args.integrator != "fastpm":
        simulation["integrator"] = args.integrator
    try:
        return SuiteConfig(name=args.name, out_dir=args.out, box_size=args.box_size, ngrid=args.ngrid,
                           n_cosmologies=0, prior={k: [v, v] for k, v in point.items()},
                           cosmologies=[{**point, "seed": args.seed, "name": args.name}], simulation=simulation)
    except ValueError as exc:  # the config's words for a value the user typed as a flag: name the flag
        message = str(exc)
        for key, flag in _FLAG_OF_OPTION.items():
            if message.startswith(key + " "):
                raise ValueError(flag + message[len(key):]) from None
        raise


def run(args: argparse.Namespace) -> int:
    """Run the suite (or the single simulation) and print the manifest path."""
    if args.config is not None:
        given = [f"--{f.replace('_', '-')}" for f in [*_COSMO_FLAGS, "seed", "out"] if getattr(args, f) is not None]
        if given:
            raise ValueError(f"--config runs the config's cosmologies; drop {given} or drop --config")
        cfg = load_suite_config(args.config)
        if args.out_dir:
            cfg.out_dir = args.out_dir
    else:
        cfg = single_run_config(args)
    if args.device:
        cfg.device = args.device
    manifest = run_suite(cfg, progress=not args.no_progress, limit=args.limit, force=args.force)
    from emulator.core.distributed import rank_world

    if rank_world()[0] == 0:  # under torchrun every rank returns the same manifest: print it once
        print(f"manifest: {manifest}")
    return 0
