"""``emulator export``: package a training checkpoint as a portable model file, with held-out accuracy and the
full training history (every run that made the checkpoint: steps from -> to, config, wall time, checkpoints).

Where the history comes from, first match wins:

1. ``--history FILE.json``: a list of segments (format in :mod:`emulator.training.history`);
2. ``--config A.yaml [--config B.yaml ...]``: one file per run, in order, each layered on the earlier ones (as
   ``emulator fit --config A --config B`` reads them); a run ends at its ``trainer.max_steps``, the last one at
   the checkpoint's ``global_step``;
3. the history recorded in the checkpoint by ``emulator fit`` (every checkpoint written by this version);
4. ``config.yaml`` beside the checkpoint, as a single run (a note says it was assumed).

A history that cannot have produced the checkpoint (steps not contiguous from 0 to its ``global_step``) is an
error.
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run", "training_history"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``emulator export``."""
    p.add_argument("--ckpt", required=True, help="Lightning checkpoint (e.g. runs/<name>/checkpoints/last.ckpt)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    p.add_argument("--name", default=None, help="model name shown by emulator info")
    p.add_argument("--description", default="", help="free text stored in the metadata")
    p.add_argument("--data", default=None, help="training set whose test split is evaluated into the metadata")
    p.add_argument("--config", action="append", default=None,
                   help="training config YAML of one run; repeat in run order for a resumed training (later files "
                        "layered on earlier ones, as emulator fit reads repeated --config)")
    p.add_argument("--history", default=None, help="JSON list of training segments (overrides --config)")


def training_history(ckpt: dict, ckpt_path: str, configs: list[str] | None = None,
                     history_json: str | None = None) -> list[dict]:
    """The checkpoint's training history (see the module docstring), validated against its ``global_step``."""
    from pathlib import Path

    from ..training.history import check_history, history_from_configs, link_checkpoints, read_history_json

    step = int(ckpt["global_step"])
    recorded = (ckpt.get("callbacks") or {}).get("TrainingHistory")
    beside = Path(ckpt_path).parent / "config.yaml"
    if history_json:
        history, source = read_history_json(history_json), f"--history {history_json}"
    elif configs:
        history, source = history_from_configs(configs, step), "--config"
    elif recorded:
        history, source = [dict(s) for s in recorded["segments"]], f"the checkpoint {ckpt_path}"
    elif beside.is_file():
        history, source = history_from_configs([str(beside)], step, "config beside the checkpoint"), f"{beside}"
        history[0]["note"] = "single run assumed: the checkpoint records no history; config.yaml beside it"
    else:
        history, source = [{"step_from": 0, "step_to": step, "config": None, "config_files": [],
                            "wall_time_s": None, "note": "no history recorded and no config given"}], "--ckpt"
    return link_checkpoints(check_history(history, step, source), ckpt_path)


def run(args: argparse.Namespace) -> int:
    """Export, then (optionally) evaluate on the held-out split and store the numbers in the file."""
    from pathlib import Path

    import torch

    from ..core.atomic import atomic_path
    from ..model.portable import export_checkpoint, load_model
    from ..training.checkpoints import read_checkpoint
    from ..training.evaluate import evaluate_model, table
    from ..training.history import format_history

    ckpt = read_checkpoint(args.ckpt, "--ckpt")
    history = training_history(ckpt, args.ckpt, args.config, args.history)
    del ckpt
    meta = {"name": args.name or Path(args.out).stem, "description": args.description, "history": history}
    if history[-1].get("config"):
        meta["training"] = {"config": history[-1]["config"]}
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
        with atomic_path(out) as tmp:
            torch.save(payload, tmp)
        print(table(summary))
    print(format_history(history))
    print(f"wrote {out}")
    return 0
