"""``emulator fit|validate|test``: training through LightningCLI with the YAML configs in ``configs/``.

Examples
--------
``emulator fit --config configs/tiny_cpu.yaml``; resume an interrupted run with
``emulator fit --config configs/tiny_cpu.yaml --ckpt_path last``.

Logging defaults to Weights & Biases in offline mode (``WANDB_MODE=offline`` unless already set) plus a CSV
logger; without wandb installed only the CSV logger is used. The resolved config is written beside the
checkpoints (``<checkpoint dir>/config.yaml``) so every checkpoint can be traced to its settings.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Optional, Sequence

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from .datamodule import FieldDataModule
from .module import FieldEmulator

__all__ = ["main", "EmulatorCLI", "default_loggers"]


def default_loggers(save_dir: str = "runs", name: str = "emulator") -> list[dict]:
    """Logger specs used when the config names none: wandb (offline) when importable, and CSV always."""
    loggers = []
    if importlib.util.find_spec("wandb") is not None:
        loggers.append(
            {
                "class_path": "lightning.pytorch.loggers.WandbLogger",
                "init_args": {"save_dir": save_dir, "project": "cosmo-emulator", "name": name, "offline": True},
            }
        )
    loggers.append({"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": save_dir, "name": name}})
    return loggers


class ConfigBesideCheckpoints(SaveConfigCallback):
    """Also writes the resolved config into every checkpoint directory (rank zero only).

    This happens when training starts rather than in ``setup``: a ``ModelCheckpoint`` without ``dirpath`` only
    resolves its directory (under the logger's folder) in its own ``setup``, which runs after this callback's, and
    writing earlier would also trip its "directory not empty" warning.
    """

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        dirs = {cb.dirpath for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath}
        for d in sorted(dirs):
            Path(d).mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, os.path.join(d, "config.yaml"), skip_none=False, overwrite=True)


class EmulatorCLI(LightningCLI):
    """LightningCLI for :class:`FieldEmulator` and :class:`FieldDataModule`.

    Adds ``--torch_threads N``: intra-op CPU threads (``torch.set_num_threads``). On a shared or small CPU,
    1 thread per process is often much faster for the grouped 3D convolutions than oversubscribed cores.
    """

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--torch_threads", type=Optional[int], default=None, help="CPU intra-op threads")

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        threads = cfg.get("torch_threads")
        if threads is not None:
            if threads < 1:
                raise ValueError(f"torch_threads must be >= 1, got {threads}")
            import torch

            torch.set_num_threads(int(threads))


def main(argv: Sequence[str] | None = None) -> int:
    """Run a LightningCLI subcommand (``fit``, ``validate``, ``test``) with ``argv`` (without the program name)."""
    os.environ.setdefault("WANDB_MODE", "offline")
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    EmulatorCLI(
        FieldEmulator,
        FieldDataModule,
        save_config_callback=ConfigBesideCheckpoints,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"logger": default_loggers(), "default_root_dir": "runs"},
        args=list(argv) if argv is not None else None,
    )
    return 0
