"""Helpers of the fit/resume/export tests: a tiny in-process ``emulator fit``, a checkpoint editor, and a DDP
driver run as a script (``python tests/helpers_fit.py ddp-draws --data PATH --out DIR``) that records which
training crops each rank drew."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "configs" / "tiny_cpu.yaml"
TINY_NET = {"base_channels": 4, "depth": 1, "blocks": 1, "style_hidden": 8}


def cli(*argv: str) -> int:
    """``emulator <argv>`` in this process; returns the exit code."""
    from emulator.cli import main

    return main(list(argv))


def cli_fit(data: Path, *extra: str) -> int:
    """``emulator fit`` with the tiny config on ``data`` (2 training batches per epoch), outputs under the cwd."""
    return cli("fit", "--config", str(TINY_CONFIG), "--data.path", str(data), "--data.crops_per_sample", "1",
               "--trainer.limit_train_batches", "2", *extra)


def edit_checkpoint(path: Path, edit) -> None:
    """Load a checkpoint, apply ``edit(ckpt)`` in place, save it back."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)


def _ddp_draws(argv: list[str]) -> int:
    """``ddp-draws --data PATH --out DIR``: 2 training steps with DDP on 2 CPU processes (gloo), no validation;
    each rank saves the ``lpt`` crops and sample indices of its batches to ``DIR/rank<r>.pt``."""
    import lightning as L

    from emulator.training.datamodule import FieldDataModule
    from emulator.training.module import FieldEmulator

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)

    class Record(L.Callback):
        def __init__(self) -> None:
            self.lpt, self.index = [], []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self.lpt.append(batch["lpt"].clone())
            self.index.append(batch["index"].clone())

        def on_train_end(self, trainer, pl_module) -> None:
            torch.save({"lpt": self.lpt, "index": self.index}, out / f"rank{trainer.global_rank}.pt")

    model = FieldEmulator(network=TINY_NET, warmup_steps=1)
    data = FieldDataModule(args.data, crop=8, halo=8, val_crop=16, batch_size=2, crops_per_sample=4, augment=True,
                           num_workers=0)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=2, limit_val_batches=0,
                        num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
                        default_root_dir=str(out))
    trainer.fit(model, datamodule=data)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ddp-draws":
        sys.exit(_ddp_draws(sys.argv[2:]))
    raise SystemExit("usage: python tests/helpers_fit.py ddp-draws --data PATH --out DIR")
