"""Tests of the training stack (emulator.training.module, emulator.training.datamodule, emulator.training.fit) on
the synthetic training set of ``tests/helpers_trainingset.py``, whose N-body target is a known local nonlinear
map of 2LPT: learning,
validation spectra against a direct computation, tiled inference, DDP sharding, resuming, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import lightning as L
import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint

from emulator.core.lpt import lagrangian_grid, vector_field_to_particles
from emulator.core.mesh import paint
from emulator.core.stats import power_spectrum
from emulator.training.crops import CropDataset
from emulator.training.trainingset import TrainingSetInfo
from emulator.training.datamodule import FieldDataModule
from emulator.model import predict_box
from emulator.training.module import FieldEmulator

try:
    from helpers_trainingset import write_index_training_set
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.helpers_trainingset import write_index_training_set

REPO = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).resolve().parent / "helpers_trainingset.py"
TINY_NET = {"base_channels": 8, "depth": 1, "blocks": 1, "style_hidden": 16}


pytestmark = pytest.mark.usefixtures("one_thread")


def _trainer(tmp_path, **kw) -> L.Trainer:
    opts = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    opts.update(kw)
    return L.Trainer(**opts)


class _LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _direct_val_spectra(path: Path):
    """Whole-box P(k) of the painted 2LPT and N-body particles of every val sample, summed (the module's val
    crops are the whole 16^3 boxes when val_crop = 16)."""
    info = TrainingSetInfo.read(path)
    n, box = info.ngrid, info.box_size
    q = lagrangian_grid(n, box, dtype=torch.float64)
    sums = {"lpt": 0.0, "true": 0.0, "cross": 0.0}
    with h5py.File(path, "r") as f:
        for s in info.samples("val"):
            g = f["sims"][s.sim_id][s.zgroup]
            dens = {}
            for key, name in (("lpt", "lpt_disp"), ("true", "disp")):
                disp = torch.from_numpy(g[name][()].astype(np.float64))
                dens[key] = paint(q + vector_field_to_particles(disp), n, box) - 1.0
            pk = power_spectrum(dens["true"], box)
            sums["true"] = sums["true"] + pk.power
            sums["lpt"] = sums["lpt"] + power_spectrum(dens["lpt"], box).power
            sums["cross"] = sums["cross"] + power_spectrum(dens["lpt"], box, dens["true"]).power
    return pk.k, sums["lpt"] / sums["true"], sums["cross"] / (sums["lpt"] * sums["true"]).sqrt()


def test_validation_spectra_match_direct_computation(synthetic_training_set, tmp_path):
    """SpectrumSums (ratio of summed spectra over val crops) equals a whole-box computation with the core stats."""
    torch.manual_seed(0)
    model = FieldEmulator(network=TINY_NET)
    dm = FieldDataModule(str(synthetic_training_set), crop=8, halo=8, val_crop=16, batch_size=2)
    _trainer(tmp_path).validate(model, datamodule=dm, verbose=False)
    res = model.last_validation
    k, ratio_lpt, r_lpt = _direct_val_spectra(synthetic_training_set)
    assert sorted(res["indices"]) == [0, 1, 2]
    assert np.allclose(res["k_h_mpc"], k.numpy(), rtol=1e-6)
    assert np.allclose(res["ratio_lpt"], ratio_lpt.numpy(), rtol=1e-4)
    assert np.allclose(res["r_lpt"], r_lpt.numpy(), rtol=1e-4, atol=1e-5)
    assert max(abs(np.log(ratio_lpt.numpy()))) > 0.5  # the synthetic target really differs from 2LPT
    # a fresh network predicts a ~1e-2 residual: its painted density is close to the 2LPT one
    assert np.allclose(res["ratio_model"], res["ratio_lpt"], rtol=0.1)


def test_tiny_model_learns_the_synthetic_residual(synthetic_training_set, tmp_path):
    """The training loss halves (it falls ~6x) and the validation P(k) ratio to the N-body target moves from the
    2LPT one (up to 3x off) to within ~25% of 1 (held-out cosmology; the residual map is local, so it generalises)."""
    L.seed_everything(0, verbose=False)
    model = FieldEmulator(network=TINY_NET, lr=3e-3, warmup_steps=5)
    dm = FieldDataModule(str(synthetic_training_set), crop=8, halo=8, val_crop=16, batch_size=2, crops_per_sample=4,
                         augment=True)
    rec = _LossRecorder()
    trainer = _trainer(tmp_path, max_steps=100, callbacks=[rec], check_val_every_n_epoch=1000)
    trainer.fit(model, datamodule=dm)
    trainer.validate(model, datamodule=dm, verbose=False)
    res = model.last_validation
    first, last = np.mean(rec.losses[:5]), np.mean(rec.losses[-10:])
    log_model = np.abs(np.log(res["ratio_model"]))
    log_lpt = np.abs(np.log(res["ratio_lpt"]))
    print(f"loss {first:.3f} -> {last:.3f}; mean |ln P ratio| lpt {log_lpt.mean():.3f} model {log_model.mean():.3f}")
    assert len(rec.losses) == 100 and last < 0.5 * first
    assert log_model.mean() < 0.3 * log_lpt.mean()
    assert np.all(log_model[1:] < log_lpt[1:])  # every bin but the first (1.09 -> 0.99) improves
    assert np.all(np.array(res["r_model"]) >= np.array(res["r_lpt"]) - 1e-3)
    assert sorted(res["indices"]) == [0, 1, 2]


def _origin_of(crop_lpt: np.ndarray, box: np.ndarray, c: int) -> tuple[int, int, int]:
    n = box.shape[-1]
    for o in ((x, y, z) for x in range(0, n, c) for y in range(0, n, c) for z in range(0, n, c)):
        if np.allclose(box[:, o[0]:o[0] + c, o[1]:o[1] + c, o[2]:o[2] + c], crop_lpt, atol=1e-6):
            return o
    raise AssertionError("crop not found in the box")


def test_tiled_inference_equals_whole_box_and_training_crops(synthetic_training_set):
    """The module's net on a whole val box (style normalised as in training) equals tiled inference, and equals
    the net applied to each training-style crop read by CropDataset (also with a wider data halo)."""
    torch.manual_seed(3)
    model = FieldEmulator(network={**TINY_NET, "out_init_scale": 1.0}).eval()
    info = TrainingSetInfo.read(synthetic_training_set)
    ds = CropDataset(info, "val", crop=8, halo=model.halo + 2, random_crops=False)
    s = info.samples("val")[1]
    with h5py.File(synthetic_training_set, "r") as f:
        box = f["sims"][s.sim_id][s.zgroup]["lpt_disp"][()] / info.cell
    item0 = ds[ds.crops_per_sample]  # first crop of sample 1
    style = item0["style"][None]
    x = torch.from_numpy(box)[None].float()
    whole = predict_box(model.net, x, style)
    assert whole.shape == (1, 6, 16, 16, 16) and whole.abs().max() > 1e-2
    for tile, tb in ((8, 1), (4, 3), (2, 8)):
        assert torch.allclose(predict_box(model.net, x, style, tile=tile, tile_batch=tb), whole, atol=1e-5)
    with torch.no_grad():
        for j in range(ds.crops_per_sample, 2 * ds.crops_per_sample):
            item = ds[j]
            o = _origin_of(item["lpt"][:3].numpy(), box, 8)
            pred = model(model._centre(item["input"][None], 8), item["style"][None])
            want = whole[..., o[0]:o[0] + 8, o[1]:o[1] + 8, o[2]:o[2] + 8]
            assert torch.allclose(pred, want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_two_processes_validate_each_crop_once(synthetic_training_set, tmp_path):
    """DDP (gloo, 2 CPU processes): each rank validates a disjoint shard, and the gathered sample indices hold
    every val crop exactly once (3 crops on 2 ranks: a padding sampler would count crop 0 twice)."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(HELPER), "ddp-fit", "--data", str(synthetic_training_set),
                           "--out", str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(out.glob("rank*_step2.json"))]
    assert [r["rank"] for r in records] == [0, 1] and all(r["world_size"] == 2 for r in records)
    seen = [r["seen"] for r in records]
    assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == [0, 1, 2]
    for r in records:
        assert sorted(r["gathered"]) == [0, 1, 2] and len(r["gathered"]) == 3
    assert np.allclose(records[0]["ratio_model"], records[1]["ratio_model"], rtol=1e-6)
    assert records[0]["val_total"] == pytest.approx(records[1]["val_total"], rel=1e-6)


class _StateAtStart(L.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.global_step = trainer.global_step
        opt = trainer.optimizers[0]
        self.exp_avg = [opt.state[p]["exp_avg"].clone() for p in pl_module.parameters()]
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}
        self.sched_epoch = trainer.lr_scheduler_configs[0].scheduler.last_epoch


def test_resume_continues_step_and_optimizer_state(synthetic_training_set, tmp_path):
    dm_kw = dict(crop=8, halo=8, val_crop=16, batch_size=2, crops_per_sample=1)
    L.seed_everything(1, verbose=False)
    ckpt_dir = tmp_path / "ckpt"
    model = FieldEmulator(network=TINY_NET, warmup_steps=2)
    ckpt_cb = ModelCheckpoint(dirpath=ckpt_dir, save_last=True)
    _trainer(tmp_path, max_steps=4, callbacks=[ckpt_cb], enable_checkpointing=True).fit(
        model, datamodule=FieldDataModule(str(synthetic_training_set), **dm_kw))
    last = ckpt_dir / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == 4
    saved_state = saved["optimizer_states"][0]["state"]
    assert len(saved_state) == len(list(model.parameters()))

    torch.manual_seed(99)  # a different initialisation, overwritten by the checkpoint
    resumed = FieldEmulator(network=TINY_NET, warmup_steps=2)
    probe = _StateAtStart()
    trainer = _trainer(tmp_path, max_steps=7, callbacks=[probe])
    trainer.fit(resumed, datamodule=FieldDataModule(str(synthetic_training_set), **dm_kw), ckpt_path=str(last))
    assert probe.global_step == 4 and trainer.global_step == 7
    assert probe.sched_epoch == 4
    for i, exp_avg in enumerate(probe.exp_avg):
        assert torch.equal(exp_avg, saved_state[i]["exp_avg"])
        assert float(exp_avg.abs().max()) > 0
    for k, v in saved["state_dict"].items():
        assert torch.equal(probe.weights[k], v), k
    assert torch.isfinite(resumed.style_low).all() and torch.equal(resumed.style_low, saved["state_dict"]["style_low"])


def _cli_fit(config: Path, data: Path, *extra: str) -> int:
    from emulator.cli import main

    return main(["fit", "--config", str(config), "--data.path", str(data), "--data.crops_per_sample", "1",
                 "--trainer.limit_train_batches", "2", *extra])


def test_cli_fit_with_tiny_config(synthetic_training_set, tmp_path, monkeypatch):
    """``emulator fit --config configs/tiny_cpu.yaml`` (relative output paths land in the cwd = tmp_path): the
    resolved config is saved beside the checkpoints, the checkpoint loads with ``weights_only=True``, last.ckpt is
    the latest state even when validation does not improve (lr = 0 keeps val/total constant), and
    ``--ckpt_path last`` resumes from it."""
    config = REPO / "configs" / "tiny_cpu.yaml"
    assert yaml.safe_load(config.read_text())["data"]["path"] == "runs/tiny_train.h5"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert _cli_fit(config, synthetic_training_set, "--trainer.max_steps", "4", "--trainer.max_epochs", "2",
                    "--model.lr", "0.0") == 0
    ckpt_dir = tmp_path / "runs" / "tiny_cpu" / "checkpoints"
    saved = yaml.safe_load((ckpt_dir / "config.yaml").read_text())
    assert saved["data"]["path"] == str(synthetic_training_set) and saved["trainer"]["max_steps"] == 4
    assert saved["model"]["network"]["base_channels"] == 8
    ckpt = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert (ckpt["global_step"], ckpt["epoch"]) == (4, 1)
    assert ckpt["hyper_parameters"]["network"]["base_channels"] == 8
    best = sorted(ckpt_dir.glob("best-*.ckpt"))
    assert [p.name for p in best] == ["best-epoch=0-step=2.ckpt"]
    assert torch.load(best[0], weights_only=True)["global_step"] == 2
    info = TrainingSetInfo.read(synthetic_training_set)
    assert np.allclose(ckpt["state_dict"]["style_low"].numpy(), info.style_low)
    assert float(ckpt["state_dict"]["cell_size"]) == pytest.approx(info.cell)
    model = FieldEmulator.load_from_checkpoint(ckpt_dir / "last.ckpt", map_location="cpu")
    assert torch.equal(model.style_high, ckpt["state_dict"]["style_high"])
    metrics = (tmp_path / "runs" / "tiny_cpu" / "logs" / "version_0" / "metrics.csv").read_text()
    assert "val/total" in metrics.splitlines()[0]

    assert _cli_fit(config, synthetic_training_set, "--trainer.max_epochs", "3", "--ckpt_path", "last") == 0
    resumed = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert (resumed["global_step"], resumed["epoch"]) == (6, 2)


def test_cli_saves_config_beside_default_checkpoint_dir(synthetic_training_set, tmp_path, monkeypatch):
    """Without an explicit ModelCheckpoint the checkpoint folder is only known once training is set up (under the
    logger's version folder); the config must still land beside the checkpoints."""
    config = REPO / "configs" / "tiny_cpu.yaml"
    (tmp_path / "over.yaml").write_text("trainer:\n  callbacks: []\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert _cli_fit(config, synthetic_training_set, "--config", "over.yaml", "--trainer.max_steps", "2",
                    "--trainer.max_epochs", "1") == 0
    ckpts = list((tmp_path / "runs").rglob("*.ckpt"))
    assert len(ckpts) == 1
    assert (ckpts[0].parent / "config.yaml").is_file()
    assert torch.load(ckpts[0], weights_only=True)["global_step"] == 2


def test_checkpoint_refuses_a_training_set_with_other_normalisation(synthetic_training_set, tmp_path):
    """Style bounds and cell size are fixed by the first training set; data normalised differently (here a
    different redshift range and cell size, same parameter prior) must be refused, not silently mis-scaled."""
    torch.manual_seed(0)
    model = FieldEmulator(network=TINY_NET)
    _trainer(tmp_path).validate(model, datamodule=FieldDataModule(str(synthetic_training_set), crop=8, halo=8,
                                                                  val_crop=16), verbose=False)
    low, high, cell = model.style_low.clone(), model.style_high.clone(), float(model.cell_size)
    assert cell == 4.0 and float(high[-1]) == 1.0
    other = write_index_training_set(tmp_path / "other.h5", n=16, box=32.0, redshifts=(0.0, 2.0))
    with pytest.raises(ValueError, match="data.path"):
        _trainer(tmp_path).validate(model, datamodule=FieldDataModule(str(other), crop=8, halo=8, val_crop=16),
                                    verbose=False)
    assert torch.equal(model.style_low, low) and torch.equal(model.style_high, high)
    # the same training set again is accepted
    _trainer(tmp_path).validate(model, datamodule=FieldDataModule(str(synthetic_training_set), crop=8, halo=8,
                                                                  val_crop=16), verbose=False)
