"""``data-prep simulate``: run a Latin-hypercube suite of 2LPT+PM simulations from a YAML config."""

from __future__ import annotations

import argparse

from .suite import load_suite_config, run_suite

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``data-prep simulate``."""
    parser.add_argument("--config", required=True,
                        help="suite YAML (e.g. configs/suite_tiny.yaml for a smoke run, configs/suite_default.yaml)")
    parser.add_argument("--out-dir", default=None, help="override the config's out_dir")
    parser.add_argument("--limit", type=int, default=None, help="run at most this many new simulations, then stop")
    parser.add_argument("--device", default=None, help="override the config's device (cpu, cuda, auto)")
    parser.add_argument("--force", action="store_true",
                        help="redo finished simulations whose recorded inputs (simulator version, box, grid, settings, "
                             "cosmology, seed) differ from the config's; without it such a resume is refused")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the suite and print the manifest path."""
    cfg = load_suite_config(args.config)
    if args.out_dir:
        cfg.out_dir = args.out_dir
    if args.device:
        cfg.device = args.device
    manifest = run_suite(cfg, progress=not args.no_progress, limit=args.limit, force=args.force)
    print(f"manifest: {manifest}")
    return 0
