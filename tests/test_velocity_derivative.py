"""Velocities as the time derivative of the displacement output (emulator.model.velocity_derivative, issue 11 §2
(b)), held against independent truths: finite differences of the growth factor (the style's rate), central finite
differences of the network along its tangent, and, end to end, finite differences in redshift of the generated
displacements (the velocity a generator returns must be the derivative of what it returns at neighbouring times).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.core.cosmology import Cosmology
from emulator.core.growth import GrowthHistory
from emulator.model.emulate import emulate_fields
from emulator.model.portable import EmulatorModel
from emulator.model.style import normalise_style
from emulator.model.tiling import periodic_forward, predict_box
from emulator.model.unet import StyledUNet
from emulator.model.velocity_derivative import DerivativeVelocityNet, build_network, style_rate
from emulator.training.crops import CropDataset
from emulator.training.trainingset import TrainingSetInfo

COSMO = Cosmology(Omega_m=0.30, Omega_b=0.048, h=0.68, n_s=0.965, sigma8=0.82)
SMOOTH_NET = {"base_channels": 4, "depth": 1, "blocks": 1, "style_hidden": 8, "activation": "gelu"}


def _ln_d1(z: float) -> float:
    return math.log(float(GrowthHistory(COSMO).D1(1.0 / (1.0 + z))))


def test_style_rate_is_the_redshift_entry_s_derivative_along_ln_d1():
    lo, hi = 0.0, 2.0
    growth = GrowthHistory(COSMO)
    for z in (0.0, 0.5, 1.7):
        h = 1e-4
        dlnd_dz = (_ln_d1(z + h) - _ln_d1(z - h)) / (2 * h)  # D1 itself, not f1: an independent route
        s_plus = normalise_style(COSMO.to_array(), z + h, [0] * 5 + [lo], [1] * 5 + [hi])[5]
        s_minus = normalise_style(COSMO.to_array(), z - h, [0] * 5 + [lo], [1] * 5 + [hi])[5]
        want = (s_plus - s_minus) / (2 * h) / dlnd_dz
        f1 = float(growth.f1(1.0 / (1.0 + z)))
        assert style_rate(z, f1, lo, hi) == pytest.approx(want, rel=1e-5)
    assert style_rate(0.5, 0.7, 1.0, 1.0) == 0.0  # one training redshift: the style does not move
    with pytest.raises(ValueError, match="f1 must be positive"):
        style_rate(0.5, 0.0, 0.0, 2.0)


def _wrapped(seed: int = 0, scale: float = 1.0) -> DerivativeVelocityNet:
    torch.manual_seed(seed)
    net = build_network({"in_channels": 3, "out_channels": 3, "style_dim": 6, "out_init_scale": scale,
                         **SMOOTH_NET}, "derivative")
    assert isinstance(net, DerivativeVelocityNet)
    return net.double().eval()


def test_the_velocity_channels_are_the_directional_derivative_of_the_displacement_channels():
    net = _wrapped()
    gen = torch.Generator().manual_seed(1)
    n = 16
    disp, tangent = (torch.randn((2, 3, n, n, n), generator=gen, dtype=torch.float64) for _ in range(2))
    style, rate = torch.rand((2, 6), generator=gen, dtype=torch.float64), torch.randn((2, 6), generator=gen,
                                                                                        dtype=torch.float64)
    with torch.no_grad():
        out = periodic_forward(net, torch.cat([disp, tangent], 1), torch.cat([style, rate], 1))
    assert out.shape == (2, 6, n, n, n)
    inner = lambda x, s: periodic_forward(net.net, x, s)  # noqa: E731
    assert torch.allclose(out[:, :3], inner(disp, style), atol=1e-12)
    eps = 1e-4
    fd = (inner(disp + eps * tangent, style + eps * rate) - inner(disp - eps * tangent, style - eps * rate)) / (2 * eps)
    assert float(out[:, 3:].abs().max()) > 1e-2  # a network that moves
    assert torch.allclose(out[:, 3:], fd, rtol=1e-5, atol=1e-7)
    # the halo path (crops with context) gives the periodic pass's numbers, tangent included
    via_halo = predict_box(net, torch.cat([disp, tangent], 1), torch.cat([style, rate], 1), periodic=False)
    assert torch.allclose(via_halo, out, atol=1e-10)


def test_shapes_are_checked():
    net = _wrapped()
    with pytest.raises(ValueError, match=r"x must have shape \(B, 6"):
        net(torch.zeros((1, 3, 16, 16, 16), dtype=torch.float64), torch.zeros((1, 12), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"style must have shape \(B, 12\)"):
        net(torch.zeros((1, 6, 16, 16, 16), dtype=torch.float64), torch.zeros((1, 6), dtype=torch.float64))
    with pytest.raises(ValueError, match="out_channels must equal in_channels"):
        DerivativeVelocityNet(StyledUNet(out_channels=6, **SMOOTH_NET))
    with pytest.raises(ValueError, match="velocity must be one of head, derivative"):
        build_network({"out_channels": 3, **SMOOTH_NET}, "both")


def _model(net: torch.nn.Module, n: int = 16, box: float = 64.0) -> EmulatorModel:
    return EmulatorModel(net=net.float(), style_low=np.array([0.25, 0.04, 0.6, 0.9, 0.7, 0.0]),
                         style_high=np.array([0.35, 0.06, 0.76, 1.0, 0.9, 2.0]), cell_size=box / n,
                         metadata={"name": "derivative_test"}, path="", velocity="derivative")


def test_generated_velocities_are_the_time_derivative_of_the_generated_displacements(one_thread):
    """End to end through emulate_fields (2LPT base): the velocity it returns, in displacement units
    v / (100 a E f1), equals the central difference in ln D1 of the displacements it returns at z -/+ dz, for the
    network's part as for 2LPT's; the network's part is a sizeable share of the velocity."""
    model = _model(_wrapped(scale=3.0))
    z, dz, box = 0.5, 5e-3, 64.0
    fields = {zz: emulate_fields(COSMO, zz, box, 7, model=model) for zz in (z - dz, z, z + dz)}
    lpt = emulate_fields(COSMO, z, box, 7, method="2lpt", ngrid=16)
    growth = GrowthHistory(COSMO)
    a = 1.0 / (1.0 + z)
    unit = 100.0 * a * float(growth.E(a)) * float(growth.f1(a))
    vel = fields[z].velocities.double() / unit
    fd = (fields[z + dz].displacement.double() - fields[z - dz].displacement.double()) / (
        _ln_d1(z + dz) - _ln_d1(z - dz))
    from emulator.core.lpt import vector_field_to_particles

    fd = vector_field_to_particles(fd)
    net_part = vel - lpt.velocities.double() / unit
    assert float(net_part.norm()) > 0.05 * float(vel.norm())
    assert float((vel - fd).norm()) < 0.01 * float(net_part.norm())


def test_velocity_input_crops_carry_the_base_velocity_and_the_style_rate(synthetic_training_set):
    info = TrainingSetInfo.read(synthetic_training_set)
    halo = 4
    plain = CropDataset(info, "train", crop=8, halo=halo, random_crops=True, augment=True)
    ds = CropDataset(info, "train", crop=8, halo=halo, random_crops=True, augment=True, velocity_input=True)
    for key in [(0, 5), (3, 11), (7, 2)]:
        item, ref = ds[key], plain[key]
        assert item["input"].shape == (6, 16, 16, 16)
        centre = item["input"][:, halo:-halo, halo:-halo, halo:-halo]
        assert torch.allclose(centre, item["lpt"], atol=1e-6)  # displacement and velocity, rotated alike
        assert torch.equal(item["input"][:3], ref["input"]) and torch.equal(item["target"], ref["target"])
        sample = ds.samples[key[0] // ds.crops_per_sample]
        assert torch.equal(item["style"][:6], ref["style"])
        rate = style_rate(sample.redshift, sample.f1, info.style_low[5], info.style_high[5])
        assert item["style"][11].item() == pytest.approx(rate, rel=1e-6) and not item["style"][6:11].any()


def test_fit_export_and_generate_with_a_derivative_velocity_model(synthetic_training_set, tmp_path, monkeypatch,
                                                                  one_thread, capsys):
    """``emulator fit --model.velocity derivative`` trains (the data follow through the link), the checkpoint
    exports to a model file that loads as a derivative-velocity model, and that model generates particles."""
    from helpers_fit import cli, cli_fit

    from emulator.model.portable import load_model

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert cli_fit(synthetic_training_set, "--trainer.max_steps", "2", "--trainer.max_epochs", "1",
                   "--model.velocity", "derivative") == 0
    ckpt_dir = tmp_path / "runs" / "tiny_cpu" / "checkpoints"
    ckpt = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["velocity"] == "derivative"
    assert ckpt["state_dict"]["net.net.head.weight"].shape[0] == 3  # no velocity head
    out = tmp_path / "dvel.pt"
    assert cli("export", "--ckpt", str(ckpt_dir / "last.ckpt"), "--out", str(out)) == 0
    model = load_model(out)
    assert model.velocity == "derivative" and isinstance(model.net, DerivativeVelocityNet)
    assert model.style(COSMO, 0.5).shape == (12,)
    capsys.readouterr()
    assert cli("info", "--model", str(out)) == 0
    assert "velocities: the displacement's derivative with respect to ln D1" in capsys.readouterr().out
    info = TrainingSetInfo.read(synthetic_training_set)
    cosmo = Cosmology.from_array((np.asarray(info.style_low[:5]) + np.asarray(info.style_high[:5])) / 2)
    fields = emulate_fields(cosmo, 0.5, info.box_size, 3, model=model)
    assert fields.velocities.shape == (info.ngrid**3, 3) and torch.isfinite(fields.velocities).all()


def test_a_model_and_data_that_disagree_on_the_velocity_input_are_refused(synthetic_training_set, tmp_path):
    import lightning as L

    from emulator.training.datamodule import FieldDataModule
    from emulator.training.module import FieldEmulator

    model = FieldEmulator(network={"base_channels": 4, "depth": 1, "blocks": 1, "style_hidden": 8},
                          velocity="derivative")
    dm = FieldDataModule(str(synthetic_training_set), crop=8, halo=8, val_crop=16, batch_size=2)
    trainer = L.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match="model.velocity=derivative needs data.velocity_input=True"):
        trainer.fit(model, datamodule=dm)
    with pytest.raises(ValueError, match="model.velocity must be one of head, derivative"):
        FieldEmulator(velocity="time")


def test_streamed_slabs_equal_the_in_memory_path_for_a_derivative_model(tmp_path, one_thread):
    """``--max-memory`` (slabs of 16 planes, the base velocity read with its halo) gives the in-memory particles."""
    import h5py

    from emulator.model.streaming import stream_fields

    model = _model(_wrapped(scale=3.0), n=32, box=64.0)
    with h5py.File(tmp_path / "s.h5", "w") as fh:
        stream_fields(COSMO, 0.5, 64.0, 5, fh, tmp_path / "scratch.h5", model=model, tile=16)
    whole = emulate_fields(COSMO, 0.5, 64.0, 5, model=model, tile=16)
    with h5py.File(tmp_path / "s.h5", "r") as fh:
        pos, vel = torch.from_numpy(fh["Position"][:]), torch.from_numpy(fh["Velocity"][:])
    assert torch.allclose(vel, whole.velocities, rtol=1e-5, atol=1e-3)
    d = (pos - whole.positions).abs()
    assert float(torch.minimum(d, 64.0 - d).max()) < 1e-4
