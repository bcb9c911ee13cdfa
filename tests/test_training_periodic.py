"""Whole-box periodic training (``model.periodic``): the same losses as the halo path on the same box, at the cost
of the unpadded box, and the data settings it needs are enforced."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from emulator.training.crops import CropDataset
from emulator.training.datamodule import FieldDataModule
from emulator.training.module import FieldEmulator
from emulator.training.trainingset import TrainingSetInfo

TINY_NET = {"base_channels": 8, "depth": 2, "blocks": 1, "style_hidden": 16}

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(item: dict) -> dict:
    return {k: v[None] if torch.is_tensor(v) else v for k, v in item.items()}


def test_periodic_step_equals_the_halo_step_on_a_whole_box(synthetic_training_set):
    """Every loss (Lagrangian, painted Eulerian, P(k)) of a periodic step on a whole 16^3 box equals the halo
    path's on the same box: the periodic network reads circular pads where the halo path reads context cells,
    and the losses do not depend on where the periodic box starts."""
    torch.manual_seed(5)
    halo_model = FieldEmulator(network={**TINY_NET, "out_init_scale": 1.0})
    periodic_model = FieldEmulator(network={**TINY_NET, "out_init_scale": 1.0}, periodic=True)
    periodic_model.load_state_dict(halo_model.state_dict())
    info = TrainingSetInfo.read(synthetic_training_set)
    n = info.ngrid
    with_halo = CropDataset(info, "val", crop=n, halo=halo_model.halo, random_crops=False)
    whole = CropDataset(info, "val", crop=n, halo=0, random_crops=False)
    assert int(halo_model.net.periodic_shift) != 0  # the step must line up its stride-2 grids as inference does
    checked = 0
    with torch.no_grad():
        for i in range(len(whole)):
            want, want_fields = halo_model.eval()._step(_batch(with_halo[i]))
            got, got_fields = periodic_model.eval()._step(_batch(whole[i]))
            torch.testing.assert_close(got_fields["pred"], want_fields["pred"], rtol=1e-4, atol=1e-5)
            assert set(got) == set(want)
            for name in want:
                np.testing.assert_allclose(float(got[name]), float(want[name]), rtol=2e-5, err_msg=name)
            checked += 1
    assert checked == len(whole) >= 2
    assert float(want["displacement"]) > 1e-4  # a non-trivial prediction was compared


@pytest.mark.slow
def test_periodic_training_learns_and_needs_whole_boxes(synthetic_training_set, tmp_path):
    L.seed_everything(0, verbose=False)
    model = FieldEmulator(network=TINY_NET, lr=3e-3, warmup_steps=5, periodic=True)
    dm = FieldDataModule(str(synthetic_training_set), crop=16, halo=0, val_crop=16, batch_size=2,
                         crops_per_sample=2, augment=True)
    losses = []

    class Rec(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        max_steps=100, callbacks=[Rec()], check_val_every_n_epoch=1000, default_root_dir=str(tmp_path))
    trainer.fit(model, datamodule=dm)
    assert len(losses) == 100 and np.mean(losses[-8:]) < 0.5 * np.mean(losses[:4])
    for bad in (dict(crop=8, halo=0, val_crop=16), dict(crop=16, halo=4, val_crop=16)):
        dm_bad = FieldDataModule(str(synthetic_training_set), batch_size=2, **bad)
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, max_steps=1,
                            default_root_dir=str(tmp_path))
        with pytest.raises(ValueError, match="model.periodic trains on whole boxes"):
            trainer.fit(FieldEmulator(network=TINY_NET, periodic=True), datamodule=dm_bad)
