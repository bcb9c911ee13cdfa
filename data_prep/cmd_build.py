"""``data-prep build``: command-line front end of :func:`data_prep.build.build_training_set`."""

from __future__ import annotations

import argparse
import os

from emulator.core.base_recipe import LPT_BASE, BaseRecipe

from .build import build_training_set

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``data-prep build``."""
    parser.add_argument("--manifest", required=True, help="suite manifest JSON (written by data-prep simulate)")
    parser.add_argument("--out", required=True, help="training-set HDF5 file to write (atomically)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="fraction of cosmologies held out for validation")
    parser.add_argument("--test-fraction", type=float, default=0.1,
                        help="fraction of cosmologies held out for testing")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split by cosmology")
    parser.add_argument("--rebuild", action="store_true",
                        help="build from scratch even if --out (or its interrupted <out>.partial) exists; needed "
                             "when the manifest, its simulations' files or the split options changed since")
    parser.add_argument("--device", default="cpu",
                        help="where 2LPT fields and densities are computed: cpu, cuda, cuda:N or auto (a GPU agrees "
                             "with the CPU to float rounding)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes computing simulations in parallel on the CPU (one thread each); the file "
                             "is identical to a one-process build")
    parser.add_argument("--base", choices=("2lpt", "pm", "cola"), default="2lpt",
                        help="fields the generator corrects: 2LPT, or a few-step PM or COLA (PM steps in the 2LPT "
                             "frame) run from the same seed (the hybrid design; then also written as base_disp / "
                             "base_vel)")
    parser.add_argument("--base-steps", type=int, default=None,
                        help="PM or COLA base: steps from --base-z-init to each snapshot's redshift (default 4)")
    parser.add_argument("--base-force-factor", type=int, default=None,
                        help="PM or COLA base: force mesh points per particle per axis (default 2)")
    parser.add_argument("--base-z-init", type=float, default=None,
                        help="PM or COLA base: redshift of its 2LPT start (default 12)")
    parser.add_argument("--base-spacing", choices=("linear", "log"), default=None,
                        help="PM or COLA base: steps even in a or in ln a (default linear)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def run(args: argparse.Namespace) -> int:
    """Build the training set and print its path (or that it was already up to date)."""
    given = [(flag, key, value) for flag, key, value in (
        ("--base-steps", "steps", args.base_steps), ("--base-force-factor", "force_factor", args.base_force_factor),
        ("--base-z-init", "z_init", args.base_z_init), ("--base-spacing", "spacing", args.base_spacing))
        if value is not None]
    if args.base == "2lpt" and given:
        raise ValueError(f"{given[0][0]} sets a PM base: add --base pm (or cola)")
    base = LPT_BASE if args.base == "2lpt" else BaseRecipe(args.base, **{key: value for _, key, value in given})
    before = _identity(args.out)
    out = build_training_set(
        args.manifest,
        args.out,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
        rebuild=args.rebuild,
        progress=not args.no_progress,
        device=args.device,
        workers=args.workers,
        base=base,
    )
    if before is not None and _identity(str(out)) == before:
        print(f"{out} is up to date (built from the same manifest, files and options)")
    else:
        print(f"wrote {out}")
    return 0
