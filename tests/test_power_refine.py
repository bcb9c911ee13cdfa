"""The refined power term (issue 11 (d)): painting on a mesh finer than the particle grid, and the module option."""

import math

import pytest
import torch

from emulator.core.fourier import k_magnitude, to_fourier, to_real
from emulator.core.spectra import power_spectrum
from emulator.training.losses import painted_overdensity, power_loss
from emulator.training.module import FieldEmulator


def _smooth_displacement(c=16, seed=0, amplitude=0.3, kcut=0.3):
    """Random displacement (cells) with power only below ``kcut`` of the particles' Nyquist wavenumber."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((1, 3, c, c, c), generator=g, dtype=torch.float64)
    kk = k_magnitude(c, float(c), dtype=torch.float64)
    low = to_real(to_fourier(noise) * (kk < kcut * math.pi), c)
    return amplitude * low / low.std()


def test_refine_one_is_the_crop_mesh_and_mass_is_conserved():
    disp = _smooth_displacement()
    c = disp.shape[-1]
    assert torch.equal(painted_overdensity(disp, refine=1), painted_overdensity(disp))
    for refine in (2, 3):
        delta = painted_overdensity(disp, refine=refine)
        assert delta.shape == (1, refine * c, refine * c, refine * c)
        # every particle's unit mass lands on the mesh: (1 + delta) / refine^3 sums to the particle number
        assert float(((delta + 1.0) / refine**3).sum()) == pytest.approx(c**3, rel=1e-12)


def test_refined_mesh_measures_the_same_large_scale_power():
    """After CIC compensation, the power below k_Nyq/4 of a smoothly displaced lattice does not depend on the
    mesh (the particles are the same; only the window and aliasing differ, both small there)."""
    disp = _smooth_displacement(c=32, amplitude=0.5, kcut=0.2)
    c = disp.shape[-1]
    kmax = 0.25 * math.pi  # crop units: particle cell = 1
    p1 = power_spectrum(painted_overdensity(disp)[0], float(c), window="cic", kmax=kmax)
    p2 = power_spectrum(painted_overdensity(disp, refine=2)[0], float(c), window="cic", kmax=kmax)
    assert torch.allclose(p1.k, p2.k)
    good = p1.power > 1e-3 * p1.power.max()
    assert torch.allclose(p2.power[good], p1.power[good], rtol=0.02)


def test_the_refined_power_term_reaches_twice_the_particles_nyquist():
    """On a mesh of 2 points per particle cell, power above the particles' Nyquist wavenumber enters the loss;
    kmax_fraction 0.5 (of the fine mesh's Nyquist) stops the bins at the particles'."""
    c, refine = 8, 2
    n = refine * c
    g = torch.Generator().manual_seed(3)
    true = torch.randn((2, n, n, n), generator=g, dtype=torch.float64)
    kk = k_magnitude(n, float(c), dtype=torch.float64)  # a box of c particle cells: the particles' k_Nyq = pi
    pred = to_real(to_fourier(true) * torch.where(kk > 1.2 * math.pi, 2.0, 1.0), n)  # above the last bin
    assert power_loss(pred, true) > 0.05
    assert power_loss(pred, true, kmax_fraction=0.5) < 1e-20
    disp = _smooth_displacement(c=c)
    bins = power_spectrum(painted_overdensity(disp, refine=2)[0], float(c)).k
    assert bins.numel() == 2 * power_spectrum(painted_overdensity(disp)[0], float(c)).k.numel()
    assert float(bins.max()) == pytest.approx(2 * math.pi, rel=0.05)  # 2 x the particles' k_Nyq (cell units)


def test_module_paints_the_power_term_on_the_refined_mesh(monkeypatch):
    import emulator.training.module as module

    seen = []

    def spy(p, t, kmax_fraction=None, sample_weights=None):
        seen.append((p, t))
        return torch.zeros(())

    monkeypatch.setattr(module, "power_loss", spy)
    c = 8
    g = torch.Generator().manual_seed(5)
    batch = {"input": torch.zeros(1, 3, c, c, c), "lpt": 0.3 * torch.randn(1, 6, c, c, c, generator=g),
             "target": 0.3 * torch.randn(1, 6, c, c, c, generator=g), "style": torch.zeros(1, 6)}
    m = FieldEmulator(network={"base_channels": 4, "depth": 1}, periodic=True, power_refine=2)
    _, fields = m._step(batch)
    p, t = seen.pop()
    assert p.shape == t.shape == (1, 2 * c, 2 * c, 2 * c)
    assert torch.equal(t, painted_overdensity(batch["lpt"][:, :3] + batch["target"][:, :3], refine=2))
    assert fields["delta_pred"].shape == (1, c, c, c)  # the Eulerian term and logged spectra: the crop's mesh
    m1 = FieldEmulator(network={"base_channels": 4, "depth": 1}, periodic=True)  # default: the crop mesh itself
    _, fields1 = m1._step(batch)
    p1, t1 = seen.pop()
    assert p1 is fields1["delta_pred"] and t1 is fields1["delta_true"]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_refine_is_refused(bad):
    with pytest.raises(ValueError, match="model.power_refine"):
        FieldEmulator(network={"base_channels": 4, "depth": 1}, power_refine=bad)
    with pytest.raises(ValueError, match="refine"):
        painted_overdensity(torch.zeros(1, 3, 4, 4, 4), refine=bad)
