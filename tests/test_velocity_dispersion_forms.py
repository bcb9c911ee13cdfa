"""The velocity forms of the quadrupole diagnostic (benchmarks.velocity_dispersion_forms): the oracle noise restores
the truth's variance, its Gamma-scaled variant has the excess kurtosis 3 / k it is drawn with, and the infall form
pulls particles' velocities towards a clump."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.velocity_dispersion_forms import FORMS, form_velocities, kurtosis_by_density

N, BOX = 32, 64.0


def _particles(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((N**3, 3), generator=g, dtype=torch.float64) * BOX
    v_t = torch.randn((N**3, 3), generator=g, dtype=torch.float64) * 50.0
    return x, v_t


@pytest.mark.parametrize("form, kurt", [("gaussian", 3.0), ("tails 2", 4.5), ("tails 1", 6.0)])
def test_oracle_noise_has_the_truths_variance_and_the_kurtosis_it_is_drawn_with(form, kurt):
    x, v_t = _particles()
    v = form_velocities(form, torch.zeros_like(v_t), v_t, x, N, BOX, 100.0, seed=3)
    # the mean of s g^2 over 32^3 particles scatters by 0.84% for k = 1 (one s per particle): 5 sigma
    assert float(v.pow(2).mean()) == pytest.approx(float(v_t.pow(2).mean()), rel=0.04)
    lnd = torch.zeros(N**3, dtype=torch.float64)  # one bin: the kurtosis of the whole set
    assert np.nanmax(kurtosis_by_density(lnd, v)) == pytest.approx(kurt, rel=0.12)
    assert np.nanmax(kurtosis_by_density(lnd, v_t)) == pytest.approx(3.0, rel=0.05)


def test_network_and_truth_forms_are_the_inputs_and_an_unknown_form_is_refused():
    x, v_t = _particles()
    v_net = 0.5 * v_t
    assert torch.equal(form_velocities("network", v_net, v_t, x, N, BOX, 1.0, 0), v_net)
    assert torch.equal(form_velocities("truth", v_net, v_t, x, N, BOX, 1.0, 0), v_t)
    assert set(FORMS) >= {"network", "truth", "gaussian"}
    with pytest.raises(ValueError, match="unknown form"):
        form_velocities("laplace", v_net, v_t, x, N, BOX, 1.0, 0)


def test_infall_points_towards_a_clump_and_the_noise_tops_up_what_is_missing():
    g = torch.Generator().manual_seed(1)
    x = torch.rand((N**3, 3), generator=g, dtype=torch.float64) * BOX
    centre = torch.full((3,), BOX / 2, dtype=torch.float64)
    x[: N**3 // 4] = centre + 1.5 * torch.randn((N**3 // 4, 3), generator=g, dtype=torch.float64)
    v_t = torch.zeros_like(x)  # no noise to add: the truth is cold
    v = form_velocities("infall 0.1", torch.zeros_like(x), v_t, x, N, BOX, 100.0, seed=0)
    ring = ((x - centre).norm(dim=1) > 4.0) & ((x - centre).norm(dim=1) < 10.0)
    radial = ((v * (x - centre)).sum(dim=1) / (x - centre).norm(dim=1))[ring]
    assert float((radial < 0).double().mean()) > 0.9  # towards the clump
