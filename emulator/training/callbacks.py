"""Lightning callbacks that give resumed runs the semantics ``emulator fit`` documents.

* :class:`RunTimer`: ``trainer.max_time`` bounds the wall time of *this* run. Lightning's own ``Timer`` restores
  the elapsed time stored in the checkpoint, so a run resumed with the same ``max_time`` stops at once, and a
  resumed run can never get more than what is left of the first run's budget. ``emulator fit`` turns
  ``trainer.max_time`` into this callback; the total training time is kept by :class:`TrainingHistory`.
* :class:`TrainingHistory`: records every run (segment: steps from -> to, wall time, config, the checkpoint it
  resumed from) in the checkpoints, so an exported model carries its full history
  (:mod:`emulator.training.history`). On resume it also applies one rule: when the checkpoint already completed
  ``trainer.max_epochs`` but ``trainer.max_steps`` was raised above the previous run's (and above the
  checkpoint's step), ``max_epochs`` is lifted so that training continues to ``max_steps`` instead of stopping
  at once with nothing done.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.utilities import rank_zero_info

from ..core.provenance import code_version, utc_now

__all__ = ["RunTimer", "TrainingHistory"]


class RunTimer(Timer):
    """:class:`lightning.pytorch.callbacks.Timer` whose ``duration`` bounds this run only (not earlier runs).

    Parameters are those of ``Timer`` (``duration``: ``"DD:HH:MM:SS"``, a ``timedelta`` or a dict).
    """

    @property
    def state_key(self) -> str:
        """``Timer``, as Lightning's: checkpoints written with either resume with either, without warnings."""
        return "Timer"

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Ignore the time of the runs before the checkpoint (recorded in the training history instead)."""


def _legacy_segment(checkpoint: dict) -> dict:
    """What a checkpoint written before the history existed says about how it was made."""
    timer = next((v for k, v in (checkpoint.get("callbacks") or {}).items() if k.endswith("Timer")), None)
    wall = (timer or {}).get("time_elapsed", {}).get("train")
    return {"step_from": 0, "step_to": int(checkpoint.get("global_step", 0)), "config": None, "config_files": [],
            "resumed_from": None, "checkpoint": None, "wall_time_s": None if wall is None else float(wall),
            "note": "recorded before training histories existed (possibly several runs; wall time from its Timer)"}


class TrainingHistory(L.Callback):
    """Training segments, saved in every checkpoint (state key ``TrainingHistory``); see the module docstring.

    Parameters
    ----------
    config : str or None
        The run's effective config (YAML text); ``emulator fit`` sets it from LightningCLI.
    config_files : sequence of str
        The ``--config`` files of the run, in order.
    """

    def __init__(self, config: str | None = None, config_files: Sequence[str] = ()) -> None:
        self.config = config
        self.config_files = list(config_files)
        self.segments: list[dict] = []  # earlier runs, restored from the checkpoint
        self._current: dict | None = None
        self._t0 = 0.0
        self._trainer: L.Trainer | None = None
        self._resumed_from: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        own = (checkpoint.get("callbacks") or {}).get(self.state_key)
        self.segments = [dict(s) for s in own["segments"]] if own else [_legacy_segment(checkpoint)]
        self._resumed_from = str(trainer.ckpt_path) if trainer.ckpt_path else None
        self._continue_past_reached_max_epochs(trainer, checkpoint)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.segments = [dict(s) for s in state_dict.get("segments", [])]

    def _continue_past_reached_max_epochs(self, trainer: L.Trainer, checkpoint: dict) -> None:
        loop = trainer.fit_loop
        max_epochs, max_steps, step = loop.max_epochs, loop.max_steps, int(checkpoint.get("global_step", 0))
        if max_epochs in (None, -1) or max_steps in (None, -1):
            return
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
        if progress.get("processed", 0) < max_epochs:
            return
        if max_steps > step:
            previous = self.segments[-1].get("max_steps") if self.segments else None
            if previous not in (None, -1) and max_steps <= previous:
                return  # max_steps not raised: the run had finished, and stays finished
            rank_zero_info(f"Resuming at step {step}: the checkpoint completed trainer.max_epochs={max_epochs} and "
                           f"trainer.max_steps was raised to {max_steps}; max_epochs is lifted so training continues.")
        # (max_steps <= step: nothing to train; lifting only spares Lightning's epoch-count error)
        loop.max_epochs = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._trainer = trainer
        self._t0 = time.monotonic()
        self._current = {
            "step_from": int(trainer.global_step), "step_to": int(trainer.global_step),
            "config": self.config, "config_files": list(self.config_files),
            "resumed_from": self._resumed_from, "checkpoint": None, "wall_time_s": 0.0,
            "max_steps": int(trainer.max_steps),
            "max_epochs": -1 if trainer.max_epochs is None else int(trainer.max_epochs),
            "started": utc_now(), "code_version": code_version(),
        }

    def history(self) -> list[dict]:
        """Earlier segments plus the current one, updated to the trainer's present step."""
        out = [dict(s) for s in self.segments]
        if self._current is not None:
            cur = dict(self._current)
            if self._trainer is not None:
                cur["step_to"] = int(self._trainer.global_step)
            cur["wall_time_s"] = round(time.monotonic() - self._t0, 1)
            out.append(cur)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"segments": self.history()}
