"""The power term weighted by redshift (issue 11 (d): put the small-scale term where the deficit is, z = 0)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from emulator.model.style import normalise_style
from emulator.training.losses import check_redshift_weights, power_loss, redshift_weights
from emulator.training.module import FieldEmulator

try:
    from helpers_fit import cli_fit
except ImportError:  # pragma: no cover - when tests/ is imported as a package
    from tests.helpers_fit import cli_fit

NET = {"base_channels": 4, "depth": 1}


def _meshes(seed: int = 1, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    true = torch.randn((3, n, n, n), generator=g, dtype=torch.float64)
    pred = true * (1.0 + 0.3 * torch.randn((3, 1, 1, 1), generator=g, dtype=torch.float64))  # per-mesh bias
    return pred, true


def test_weighted_power_term_is_the_weighted_mean_of_each_meshs_term():
    pred, true = _meshes()
    each = torch.stack([power_loss(pred[i:i + 1], true[i:i + 1]) for i in range(3)])  # one mesh at a time
    assert each.min() > 1e-3 and not torch.allclose(each, each[0].expand(3))
    w = torch.tensor([3.0, 0.5, 0.0], dtype=torch.float64)
    assert power_loss(pred, true, sample_weights=w) == pytest.approx(float((w * each).mean()), rel=1e-12)
    assert power_loss(pred, true, sample_weights=torch.ones(3)) == pytest.approx(float(power_loss(pred, true)),
                                                                                  rel=1e-12)
    with pytest.raises(ValueError, match="one weight per mesh of the batch"):
        power_loss(pred, true, sample_weights=torch.ones(2))


def test_redshift_weights_interpolate_linearly_and_hold_beyond_the_ends():
    table = check_redshift_weights({1: 1.0, 0.0: 3.0, "0.5": 2.0})  # any order, numbers as text too
    assert table == ((0.0, 3.0), (0.5, 2.0), (1.0, 1.0))
    z = torch.tensor([0.0, 0.25, 0.5, 0.9, 1.0, 2.0, 7.0], dtype=torch.float64)
    assert torch.allclose(redshift_weights(z, table), torch.tensor([3.0, 2.5, 2.0, 1.2, 1.0, 1.0, 1.0],
                                                                  dtype=torch.float64))
    assert redshift_weights(z, ((0.5, 2.0),)).tolist() == [2.0] * 7  # one point: one weight everywhere
    assert check_redshift_weights(None) is None


@pytest.mark.parametrize("bad, message", [
    ([1.0], "must be a mapping"), ({}, "must be a mapping"), ({0.0: -1.0}, "finite and >= 0"),
    ({-0.5: 1.0}, "finite and >= 0"), ({0.0: float("nan")}, "finite and >= 0"), ({0: "x"}, "not a redshift"),
    ({0.0: 0.0, 1.0: 0.0}, "every weight is 0"), ({0: 1.0, "0.0": 2.0}, "given twice")])
def test_bad_redshift_weights_are_refused_naming_the_option(bad, message):
    with pytest.raises(ValueError, match=message) as err:
        FieldEmulator(network=NET, power_redshift_weights=bad)
    assert str(err.value).startswith("model.power_redshift_weights") and "\n" not in str(err.value)


def test_module_weights_each_samples_power_term_by_its_redshift(monkeypatch):
    """The sample's redshift comes back from its style (the training set's range) and sets its weight."""
    import emulator.training.module as module

    seen = []

    def spy(p, t, kmax_fraction=None, sample_weights=None):
        seen.append(sample_weights)
        return torch.zeros(())

    monkeypatch.setattr(module, "power_loss", spy)
    c, zs = 8, [0.0, 0.5, 2.0]
    low, high = [0.24, 0.04, 0.6, 0.92, 0.7, 0.0], [0.4, 0.056, 0.76, 1.0, 0.9, 2.0]
    style = torch.tensor(np.stack([normalise_style([0.32, 0.048, 0.68, 0.96, 0.8], z, low, high) for z in zs]),
                         dtype=torch.float32)
    g = torch.Generator().manual_seed(5)
    batch = {"input": torch.zeros(3, 3, c, c, c), "lpt": 0.3 * torch.randn(3, 6, c, c, c, generator=g),
             "target": 0.3 * torch.randn(3, 6, c, c, c, generator=g), "style": style}
    m = FieldEmulator(network=NET, periodic=True, power_redshift_weights={0.0: 3.0, 1.0: 1.0})
    m.style_low.copy_(torch.tensor(low, dtype=torch.float64))
    m.style_high.copy_(torch.tensor(high, dtype=torch.float64))
    m._step(batch)
    assert torch.allclose(seen.pop(), torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64), atol=1e-6)
    FieldEmulator(network=NET, periodic=True)._step(batch)  # default: no weights at all
    assert seen.pop() is None


def test_fit_takes_the_option_from_the_command_line_and_keeps_it_in_the_checkpoint(synthetic_training_set,
                                                                                    tmp_path, one_thread):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert cli_fit(synthetic_training_set, "--trainer.max_steps", "1", "--trainer.max_epochs", "1",
                       "--model.power_redshift_weights", "{0.0: 2.5, 1.0: 1.0}") == 0
    finally:
        os.chdir(cwd)
    ckpt = torch.load(tmp_path / "runs" / "tiny_cpu" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)
    assert check_redshift_weights(ckpt["hyper_parameters"]["power_redshift_weights"]) == ((0.0, 2.5), (1.0, 1.0))
