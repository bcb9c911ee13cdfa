"""Resuming a fit: mid-epoch resume reproduces the uninterrupted run exactly; ``trainer.max_time`` bounds each run
(``emulator fit``); raising ``trainer.max_steps`` continues a run that had stopped at ``trainer.max_epochs``."""

from __future__ import annotations

import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from emulator.training.datamodule import FieldDataModule
from emulator.training.module import FieldEmulator

try:
    from helpers_fit import TINY_NET, cli_fit, edit_checkpoint
except ImportError:  # pragma: no cover
    from tests.helpers_fit import TINY_NET, cli_fit, edit_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _fit(root, data, *, max_epochs, workers, seed, ckpt_path=None, callbacks=()):
    L.seed_everything(seed, verbose=False)
    model = FieldEmulator(network=TINY_NET, lr=3e-3, warmup_steps=2)
    dm = FieldDataModule(str(data), crop=8, halo=8, val_crop=16, batch_size=2, crops_per_sample=1, augment=True,
                         num_workers=workers)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=9, max_epochs=max_epochs, limit_val_batches=0,
                        num_sanity_val_steps=0, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=list(callbacks), default_root_dir=str(root))
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return model, trainer


@pytest.mark.parametrize("max_epochs, workers", [(-1, 0), (4, 0), (-1, 2)])
def test_resume_mid_epoch_reproduces_the_uninterrupted_run(synthetic_training_set, tmp_path, max_epochs, workers):
    """9 steps, 6 batches per epoch: the run resumed from the step-4 checkpoint (written mid-epoch, as the last
    checkpoint of a killed run is) ends with bit-identical weights. ``max_epochs=4`` takes Lightning's path that
    builds the training loader before the checkpoint is restored; ``workers=2`` draws crops in worker processes."""
    every4 = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=4, save_top_k=-1)
    straight, trainer = _fit(tmp_path, synthetic_training_set, max_epochs=max_epochs, workers=workers, seed=7,
                             callbacks=[every4])
    assert trainer.global_step == 9 and trainer.num_training_batches == 6
    mid = tmp_path / "ckpt" / "step=4.ckpt"
    assert torch.load(mid, weights_only=True)["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"] == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed, trainer = _fit(tmp_path, synthetic_training_set, max_epochs=max_epochs, workers=workers, seed=99,
                                ckpt_path=str(mid), callbacks=[ModelCheckpoint(dirpath=tmp_path / "other")])
    assert trainer.global_step == 9
    assert not [str(w.message) for w in caught if "not resumable" in str(w.message)]
    want = straight.state_dict()
    for key, value in resumed.state_dict().items():
        assert torch.equal(value, want[key]), key


def _set_timer_state(ckpt: dict, seconds: float) -> None:
    """Pretend the runs before the checkpoint trained for ``seconds`` (Lightning's Timer, or RunTimer, state)."""
    callbacks = ckpt.setdefault("callbacks", {})
    callbacks.setdefault("Timer", {})
    for key in [k for k in callbacks if k.endswith("Timer")]:
        callbacks[key] = {"time_elapsed": {"train": seconds, "validate": 0.0, "test": 0.0, "predict": 0.0}}


def test_max_time_bounds_this_run_not_the_earlier_ones(synthetic_training_set, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_fit(synthetic_training_set, "--trainer.max_steps", "2", "--trainer.max_epochs", "10",
                   "--trainer.max_time", "00:00:10:00") == 0
    last = tmp_path / "runs" / "tiny_cpu" / "checkpoints" / "last.ckpt"
    edit_checkpoint(last, lambda c: _set_timer_state(c, 10 * 3600.0))  # 10 h already spent, max_time is 10 min
    assert cli_fit(synthetic_training_set, "--trainer.max_steps", "4", "--trainer.max_epochs", "10",
                   "--trainer.max_time", "00:00:10:00", "--ckpt_path", "last") == 0
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 4
    segments = ckpt["callbacks"]["TrainingHistory"]["segments"]
    assert [(s["step_from"], s["step_to"]) for s in segments] == [(0, 2), (2, 4)]
    assert all(0 < s["wall_time_s"] < 600 for s in segments)


def test_raising_max_steps_continues_past_a_reached_max_epochs(synthetic_training_set, tmp_path, monkeypatch):
    """The first run stops at max_epochs=1 (step 2, end of epoch); resuming with the same max_epochs and a raised
    max_steps trains to max_steps; resuming again without raising anything trains nothing."""
    monkeypatch.chdir(tmp_path)
    last = tmp_path / "runs" / "tiny_cpu" / "checkpoints" / "last.ckpt"
    assert cli_fit(synthetic_training_set, "--trainer.max_epochs", "1") == 0
    assert torch.load(last, weights_only=True)["global_step"] == 2
    assert cli_fit(synthetic_training_set, "--trainer.max_epochs", "1", "--ckpt_path", "last") == 0
    assert torch.load(last, weights_only=True)["global_step"] == 2  # nothing raised: nothing to do
    assert cli_fit(synthetic_training_set, "--trainer.max_epochs", "1", "--trainer.max_steps", "5",
                   "--ckpt_path", "last") == 0
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["global_step"] == 5
    assert cli_fit(synthetic_training_set, "--trainer.max_epochs", "1", "--trainer.max_steps", "5",
                   "--ckpt_path", "last") == 0
    assert torch.load(last, weights_only=True)["global_step"] == 5
