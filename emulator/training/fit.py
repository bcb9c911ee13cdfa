"""``emulator fit|validate|test``: training through LightningCLI with the YAML configs in ``configs/``.

Examples
--------
``emulator fit --config configs/tiny_cpu.yaml``; resume an interrupted run with
``emulator fit --config configs/tiny_cpu.yaml --ckpt_path last``.

Logging defaults to Weights & Biases in offline mode (``WANDB_MODE=offline`` unless already set) plus a CSV
logger; without wandb installed only the CSV logger is used. The resolved config is written beside the
checkpoints (``<checkpoint dir>/config.yaml``) so every checkpoint can be traced to its settings, and every
checkpoint carries the training history (:class:`emulator.training.callbacks.TrainingHistory`).

Resuming (``--ckpt_path``): the checkpoint is checked first (a truncated or damaged file is a one-line error);
``trainer.max_time`` bounds the wall time of this run, not of all runs together
(:class:`emulator.training.callbacks.RunTimer`); raising ``trainer.max_steps`` continues a run that had stopped at
``trainer.max_epochs``; a run resumed mid-epoch continues the same stream of crops
(:mod:`emulator.training.sampling`), so it reproduces the uninterrupted run.

User errors (a file that is not a training set, a bad checkpoint, a bad setting) print one line,
``emulator fit: error: ...``, and return exit code 2. Known noise is filtered by exact message: Lightning's
litlogger/litmodels tips, torch's ``LeafSpec`` deprecation raised inside Lightning, and, on resume only,
"checkpoint directory ... exists and is not empty"; wandb's "anonymous setting" and "git root" warnings are avoided
at their cause (Lightning passes ``anonymous=None``; the save directory did not exist yet).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator, Optional, Sequence

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from .callbacks import RunTimer, TrainingHistory
from .checkpoints import check_checkpoint
from .critic import adopt_trainer_clipping
from .datamodule import FieldDataModule
from .module import FieldEmulator

__all__ = ["main", "EmulatorCLI", "default_loggers"]

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # emulator/
NOISE_WARNINGS = (  # (message regex, category): matched at the start of the message
    (r"LightningCLI's args parameter is intended", UserWarning),
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


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
    loggers.append({"class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": save_dir, "name": name}})
    return loggers


class ConfigBesideCheckpoints(SaveConfigCallback):
    """Also writes the resolved config into every checkpoint directory (rank zero only), and hands it to the
    :class:`TrainingHistory` callback.

    This happens when training starts rather than in ``setup``: a ``ModelCheckpoint`` without ``dirpath`` only
    resolves its directory (under the logger's folder) in its own ``setup``, which runs after this callback's, and
    writing earlier would also trip its "directory not empty" warning.
    """

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        text = self.parser.dump(self.config, skip_none=False)
        files = [str(getattr(p, "relative", p)) for p in (self.config.get("config") or [])]
        for cb in trainer.callbacks:
            if isinstance(cb, TrainingHistory):
                cb.config, cb.config_files = text, files

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        dirs = {cb.dirpath for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath}
        for d in sorted(dirs):
            Path(d).mkdir(parents=True, exist_ok=True)
            self.parser.save(self.config, os.path.join(d, "config.yaml"), skip_none=False, overwrite=True)


def _is_checkpoint_file(ckpt_path) -> bool:
    """Whether ``ckpt_path`` names a file (not one of Lightning's keywords ``last``, ``best``, ``hpc``, registry)."""
    return bool(ckpt_path) and ckpt_path not in ("last", "best", "hpc") and not str(ckpt_path).startswith("registry")


def _last_checkpoint(trainer) -> str | None:
    """The file ``ckpt_path=last`` resumes from: the newest ``last*.ckpt`` of the checkpoint callbacks' folders
    (Lightning's rule), or None."""
    found = [p for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None) and Path(cb.dirpath).is_dir()
             for p in Path(cb.dirpath).glob("last*.ckpt")]
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None


class EmulatorCLI(LightningCLI):
    """LightningCLI for :class:`FieldEmulator` and :class:`FieldDataModule` with the resume semantics above.

    Adds ``--torch_threads N``: intra-op CPU threads (``torch.set_num_threads``). On a shared or small CPU,
    1 thread per process is often much faster for the grouped 3D convolutions than oversubscribed cores.
    """

    _resuming = False  # set once the checkpoint to resume from is known and checked

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--torch_threads", type=Optional[int], default=None, help="CPU intra-op threads")
        # a derivative-velocity network reads the base velocity and the style's rate: one setting, model.velocity
        parser.link_arguments("model.velocity", "data.velocity_input", compute_fn=lambda v: v == "derivative")

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        threads = cfg.get("torch_threads")
        if threads is not None:
            if threads < 1:
                raise ValueError(f"torch_threads must be >= 1, got {threads}")
            import torch

            torch.set_num_threads(int(threads))

    def parse_arguments(self, parser, args) -> None:
        """Parse, then check an explicit ``ckpt_path`` before LightningCLI reads hyperparameters from it."""
        super().parse_arguments(parser, args)
        sub = self.config.get("subcommand")
        ckpt_path = self.config[sub].get("ckpt_path") if sub else None
        if _is_checkpoint_file(ckpt_path):
            check_checkpoint(ckpt_path, "ckpt_path")
            self._resuming = True

    def instantiate_trainer(self, **kwargs):
        """The trainer, with ``max_time`` as a :class:`RunTimer` and a :class:`TrainingHistory` callback."""
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        max_time = kwargs.pop("max_time", trainer_cfg.get("max_time"))
        callbacks = kwargs.pop("callbacks", trainer_cfg.get("callbacks"))
        callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks] if callbacks else []
        if max_time is not None:
            callbacks.append(RunTimer(duration=max_time, interval="step"))
        callbacks.append(TrainingHistory())
        if getattr(self.model, "critic", None) is not None:  # manual optimisation: the module clips by norm
            adopt_trainer_clipping(self.model.critic_settings,
                                   kwargs.pop("gradient_clip_val", trainer_cfg.get("gradient_clip_val")),
                                   kwargs.pop("gradient_clip_algorithm", trainer_cfg.get("gradient_clip_algorithm")))
            kwargs.update(gradient_clip_val=None, gradient_clip_algorithm=None)
        return super().instantiate_trainer(max_time=None, callbacks=callbacks, **kwargs)

    def _before_run(self) -> None:
        if self._get(self.config_init, "ckpt_path") == "last":
            last = _last_checkpoint(self.trainer)
            if last is not None:
                check_checkpoint(last, "ckpt_path=last")
                self._resuming = True
        if self._resuming:  # the folder of the checkpoint being resumed is not empty, of course
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        self.datamodule.read_info()
        for logger in self.trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                Path(logger.save_dir or ".").mkdir(parents=True, exist_ok=True)  # wandb looks for a git root there
                init = getattr(logger, "_wandb_init", None)
                if isinstance(init, dict) and init.get("anonymous", False) is None:
                    del init["anonymous"]  # deprecated in wandb; passing None still warns

    before_fit = before_validate = before_test = _before_run


class _DropLightningTips(logging.Filter):
    """Drops Lightning's advertising tips (litlogger, litmodels); every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("\U0001f4a1 Tip:") and ("litlogger" in msg or "litmodels" in msg))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Message-specific filters for the known noise, removed again on exit."""
    from lightning_utilities.core import rank_zero

    tips = _DropLightningTips()
    loggers = {rank_zero.log, logging.getLogger("lightning.pytorch.utilities.rank_zero")}
    with warnings.catch_warnings():
        for message, category in NOISE_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        for lg in loggers:
            lg.addFilter(tips)
        try:
            yield
        finally:
            for lg in loggers:
                lg.removeFilter(tips)


def _raised_by_the_emulator(exc: BaseException) -> bool:
    """Whether the innermost frame of ``exc`` is in this package (a deliberate, one-line user error)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a LightningCLI subcommand (``fit``, ``validate``, ``test``) with ``argv`` (without the program name)."""
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    with _quiet():
        try:
            EmulatorCLI(
                FieldEmulator,
                FieldDataModule,
                save_config_callback=ConfigBesideCheckpoints,
                save_config_kwargs={"overwrite": True},
                trainer_defaults={"logger": default_loggers(), "default_root_dir": "runs"},
                args=args,
            )
        except (ValueError, FileNotFoundError, FileExistsError) as exc:
            if not _raised_by_the_emulator(exc) or "\n" in str(exc):
                raise
            print(f"emulator {args[0] if args else 'fit'}: error: {exc}", file=sys.stderr)
            return 2
    return 0
