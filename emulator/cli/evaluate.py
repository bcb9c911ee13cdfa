"""``emulator evaluate``: held-out P(k) ratio and r(k) of a model against simulations, vs 2LPT
(:mod:`emulator.training.evaluate`)."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``emulator evaluate``."""
    p.add_argument("--data", required=True, help="training-set HDF5 with held-out simulations")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--model", default=None, help="model file (default: the embedded model)")
    p.add_argument("--out", default=None, help="write the full results as JSON here")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    """Print the table (and write JSON)."""
    from ..model.portable import load_model
    from ..training.evaluate import evaluate_model, table

    summary = evaluate_model(load_model(args.model, device=args.device), args.data, args.split, args.device)
    print(table(summary))
    for m in ("2lpt", "emulator"):
        s = summary[m]
        print(f"{m}: max|P ratio-1| {s['max_abs_ratio_minus_1_to_half_nyquist']:.4f}, "
              f"max(1-r) {s['max_one_minus_r_to_half_nyquist']:.4f} up to k_Nyq/2")
    if args.out:
        from ..core.atomic import atomic_open

        with atomic_open(args.out, "w") as fh:
            json.dump(summary, fh, indent=1)
    return 0
