"""The training power term: log-P mismatch over k bins, optionally only up to a fraction of k_Nyq."""

import math

import pytest
import torch

from emulator.core.fourier import k_magnitude, to_fourier, to_real
from emulator.training.losses import power_loss
from emulator.training.module import FieldEmulator


def _fields(seed=0, c=16):
    g = torch.Generator().manual_seed(seed)
    true = torch.randn((2, c, c, c), generator=g, dtype=torch.float64)
    # the prediction differs from the truth only above 0.6 k_Nyq (crop units: k_Nyq = pi)
    kk = k_magnitude(c, float(c), dtype=torch.float64)
    pred = to_real(to_fourier(true) * torch.where(kk > 0.6 * math.pi, 2.0, 1.0), c)
    return pred, true


def test_kmax_fraction_ignores_modes_above_it():
    pred, true = _fields()
    assert power_loss(pred, true) > 0.05  # factor 4 in P above 0.6 k_Nyq: log 4 squared on those bins
    assert power_loss(pred, true, kmax_fraction=0.5) < 1e-20
    assert power_loss(pred, true, kmax_fraction=0.9) > 0.05
    assert power_loss(pred, true, kmax_fraction=1.0) == pytest.approx(float(power_loss(pred, true)), rel=1e-12)


def test_module_passes_the_fraction_to_the_power_term(monkeypatch):
    import emulator.training.module as module

    seen = []
    monkeypatch.setattr(module, "power_loss", lambda p, t, kmax_fraction=None, sample_weights=None:
                        seen.append(kmax_fraction) or torch.zeros(()))
    m = FieldEmulator(network={"base_channels": 4, "depth": 1}, power_kmax_fraction=0.5, periodic=True)
    c = 8
    batch = {"input": torch.zeros(1, 3, c, c, c), "lpt": torch.zeros(1, 6, c, c, c),
             "target": torch.zeros(1, 6, c, c, c), "style": torch.zeros(1, 6)}
    m._step(batch)
    assert seen == [0.5]


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, True])
def test_bad_fraction_is_refused(bad):
    pred, true = _fields()
    with pytest.raises(ValueError, match="kmax_fraction"):
        power_loss(pred, true, kmax_fraction=bad)
    with pytest.raises(ValueError, match="model.power_kmax_fraction"):
        FieldEmulator(network={"base_channels": 4, "depth": 1}, power_kmax_fraction=bad)


def test_fraction_too_small_for_the_crop_names_it():
    pred, true = _fields(c=16)
    with pytest.raises(ValueError, match="kmax_fraction=0.1 leaves no k bin"):
        power_loss(pred, true, kmax_fraction=0.1)
