"""The velocity forms of the quadrupole diagnostic (benchmarks.velocity_dispersion_forms): the oracle noise restores
the truth's variance, its Gamma-scaled variant has the excess kurtosis 3 / m it is drawn with, and the infall form
adds the PGD pull in velocity units, then tops up the variance still missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.velocity_dispersion_forms import INFALL_BAND, form_velocities, kurtosis_by_density
from emulator.core.pgd import pgd_shift
from emulator.core.velocity_noise import log_density_at_particles

N, BOX = 32, 64.0


def _particles(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((N**3, 3), generator=g, dtype=torch.float64) * BOX
    v_t = torch.randn((N**3, 3), generator=g, dtype=torch.float64) * 50.0
    return x, v_t


@pytest.mark.parametrize("form, kurt, tol", [("gaussian", 3.0, 0.1), ("tails 2", 4.5, 0.4), ("tails 1", 6.0, 0.7)])
def test_oracle_noise_has_the_truths_variance_and_the_kurtosis_it_is_drawn_with(form, kurt, tol):
    x, v_t = _particles()
    v = form_velocities(form, torch.zeros_like(v_t), v_t, x, N, BOX, 100.0, seed=3)
    # the mean of s g^2 over 32^3 particles scatters by 0.84% for m = 1 (one s per particle): 5 sigma
    assert float(v.pow(2).mean()) == pytest.approx(float(v_t.pow(2).mean()), rel=0.04)
    given = log_density_at_particles(x, N, BOX).double()  # a caller's own density: the same draws
    assert torch.equal(form_velocities(form, torch.zeros_like(v_t), v_t, x, N, BOX, 100.0, 3, log_density=given), v)
    lnd = torch.zeros(N**3, dtype=torch.float64)  # one bin: the kurtosis of the whole set
    assert np.nanmax(kurtosis_by_density(lnd, v)) == pytest.approx(kurt, abs=tol)


def test_network_and_truth_forms_are_the_inputs_and_unknown_forms_are_refused():
    x, v_t = _particles()
    v_net = 0.5 * v_t
    assert form_velocities("network", v_net, v_t, x, N, BOX, 1.0, 0) is v_net
    assert form_velocities("truth", v_net, v_t, x, N, BOX, 1.0, 0) is v_t
    for bad in ("laplace", "tails", "tails 0", "tails x", "infall -1", "infall nan", "gaussian 2"):
        with pytest.raises(ValueError, match="unknown form"):
            form_velocities(bad, v_net, v_t, x, N, BOX, 1.0, 0)


def _clump():
    g = torch.Generator().manual_seed(1)
    x = torch.rand((N**3, 3), generator=g, dtype=torch.float64) * BOX
    centre = torch.full((3,), BOX / 2, dtype=torch.float64)
    x[: N**3 // 4] = centre + 1.5 * torch.randn((N**3 // 4, 3), generator=g, dtype=torch.float64)
    return x, centre


def test_infall_is_the_pgd_pull_in_velocity_units_towards_a_clump():
    x, centre = _clump()
    cold = torch.zeros_like(x)  # a cold truth: no noise to add
    v = form_velocities("infall 0.1", cold, cold, x, N, BOX, 100.0, seed=0)
    torch.testing.assert_close(v, 0.1 * 100.0 * pgd_shift(x, N, BOX, 1.0, *INFALL_BAND))
    ring = ((x - centre).norm(dim=1) > 4.0) & ((x - centre).norm(dim=1) < 10.0)
    radial = ((v * (x - centre)).sum(dim=1) / (x - centre).norm(dim=1))[ring]
    assert float((radial < 0).double().mean()) > 0.9  # towards the clump


def test_infall_tops_up_the_variance_the_pull_leaves_missing():
    x, _ = _clump()
    g = torch.Generator().manual_seed(2)
    v_t = torch.randn((N**3, 3), generator=g, dtype=torch.float64) * 200.0  # hotter than the pull everywhere
    v = form_velocities("infall 0.01", torch.zeros_like(x), v_t, x, N, BOX, 100.0, seed=0)
    pull = 0.01 * 100.0 * pgd_shift(x, N, BOX, 1.0, *INFALL_BAND)
    assert float(pull.pow(2).mean()) > 0.01 * float(v_t.pow(2).mean())  # the pull is not negligible here
    assert float(v.pow(2).mean()) == pytest.approx(float(v_t.pow(2).mean()), rel=0.03)
    assert float((v - pull).pow(2).mean()) < float(v_t.pow(2).mean())  # the noise made up only the rest
