"""``emulator export``: package a training checkpoint as a portable model file, with held-out accuracy."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``emulator export``."""
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint (e.g. runs/<name>/checkpoints/last.ckpt)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    p.add_argument("--name", default=None, help="model name shown by emulator info")
    p.add_argument("--description", default="", help="free text stored in the metadata")
    p.add_argument("--data", default=None, help="training set whose test split is evaluated into the metadata")
    p.add_argument("--config", default=None, help="training config YAML to store in the metadata")


def run(args: argparse.Namespace) -> int:
    """Export, then (optionally) evaluate on the held-out split and store the numbers in the file."""
    from pathlib import Path

    import torch

    from ..training.evaluate import evaluate_model, table
    from ..model.portable import export_checkpoint, load_model

    meta = {"name": args.name or Path(args.out).stem, "description": args.description}
    if args.config:
        meta["training"] = {"config": Path(args.config).read_text()}
    out = export_checkpoint(args.ckpt, args.out, meta)
    if args.data:
        summary = evaluate_model(load_model(out), args.data, "test")
        payload = torch.load(out, map_location="cpu", weights_only=True)
        payload["metadata"]["validation"] = {
            "split": "test",
            "n_samples": summary["n_samples"],
            "k": summary["k"],
            "k_nyquist": summary["k_nyquist"],
            **{m: {k: v for k, v in summary[m].items()} for m in ("emulator", "2lpt")},
        }
        from ..core.atomic import atomic_path

        with atomic_path(out) as tmp:
            torch.save(payload, tmp)
        print(table(summary))
    print(f"wrote {out}")
    return 0
