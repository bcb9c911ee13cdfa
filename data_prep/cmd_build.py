"""``data-prep build``: command-line front end of :func:`data_prep.build.build_training_set`."""

from __future__ import annotations

import argparse

from .build import build_training_set

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``data-prep build``."""
    parser.add_argument("--manifest", required=True, help="suite manifest JSON (written by data-prep simulate)")
    parser.add_argument("--out", required=True, help="training-set HDF5 file to write (atomically)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="fraction of cosmologies held out for validation")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="fraction of cosmologies held out for testing")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split by cosmology")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Build the training set and print its path."""
    out = build_training_set(
        args.manifest,
        args.out,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
        progress=not args.no_progress,
    )
    print(f"wrote {out}")
    return 0
