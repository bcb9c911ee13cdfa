"""The density-PDF term (emulator.training.losses.pdf_loss, issue 11 §2 (d)) against the closed-form Wasserstein-2
distance between Gaussians, and its defining property: it sees the distribution of densities, not where they are."""

from __future__ import annotations

import math

import pytest
import torch

from emulator.training.losses import PDF_SOFTENING, painted_overdensity, pdf_loss
from emulator.training.module import FieldEmulator


def _delta_with_log_density(x: torch.Tensor) -> torch.Tensor:
    """The overdensity whose ``log(1 + delta + softening)`` is ``x``."""
    return torch.exp(x) - PDF_SOFTENING - 1.0


def test_it_is_the_squared_w2_distance_of_the_log_density_pdfs():
    """For log-densities drawn from N(m1, s1) and N(m2, s2), W2^2 = (m1 - m2)^2 + (s1 - s2)^2 (sample sizes 32^3)."""
    g = torch.Generator().manual_seed(3)
    m1, s1, m2, s2 = 0.5, 0.4, 0.2, 0.55  # 4.5 sigma above log(softening): the clamp of 1 + delta at 0 never acts
    a = _delta_with_log_density(m1 + s1 * torch.randn((2, 32, 32, 32), generator=g, dtype=torch.float64))
    b = _delta_with_log_density(m2 + s2 * torch.randn((2, 32, 32, 32), generator=g, dtype=torch.float64))
    want = (m1 - m2) ** 2 + (s1 - s2) ** 2
    assert float(pdf_loss(a, b)) == pytest.approx(want, rel=0.02)
    shift = 0.37  # an exact shift of every log-density costs exactly its square
    assert float(pdf_loss(_delta_with_log_density(torch.log(a + 1.0 + PDF_SOFTENING) + shift), a)) == \
        pytest.approx(shift**2, rel=1e-9)


def test_where_the_densities_sit_does_not_matter_but_the_tail_does():
    g = torch.Generator().manual_seed(4)
    c = 16
    disp = 0.6 * torch.randn((1, 3, c, c, c), generator=g)
    truth = painted_overdensity(disp, refine=2)
    perm = torch.randperm(truth.numel(), generator=g)
    shuffled = truth.flatten()[perm].reshape(truth.shape)
    assert float(pdf_loss(shuffled, truth)) == 0.0
    assert float(((shuffled - truth) ** 2).mean()) > 0.1  # a point-by-point term would see a different field
    top = truth.flatten().argsort()[-truth.numel() // 100:]  # the densest 1% of cells (the halo cores)
    flattened = truth.flatten().clone()
    flattened[top] = flattened[top] * 0.7
    assert float(pdf_loss(flattened.reshape(truth.shape), truth)) > 1e-4


def test_its_gradient_moves_the_particles_towards_the_truth_s_pdf():
    g = torch.Generator().manual_seed(5)
    c = 16
    target = 0.8 * torch.randn((1, 3, c, c, c), generator=g)
    guess = (0.5 * target).requires_grad_(True)  # the same structure, too little clustering
    truth = painted_overdensity(target, refine=2)
    loss = pdf_loss(painted_overdensity(guess, refine=2), truth)
    (grad,) = torch.autograd.grad(loss, guess)
    with torch.no_grad():
        after = pdf_loss(painted_overdensity(guess - 0.5 * grad / grad.abs().max(), refine=2), truth)
    assert torch.isfinite(grad).all() and float(after) < float(loss.detach())


def test_sample_weights_and_bad_inputs():
    g = torch.Generator().manual_seed(6)
    a, b = torch.rand((2, 8, 8, 8), generator=g), torch.rand((2, 8, 8, 8), generator=g)
    each = [float(pdf_loss(a[i:i + 1], b[i:i + 1])) for i in range(2)]
    assert float(pdf_loss(a, b, sample_weights=torch.tensor([2.0, 0.0]))) == pytest.approx(each[0], rel=1e-6)
    with pytest.raises(ValueError, match="one weight per mesh"):
        pdf_loss(a, b, sample_weights=torch.ones(3))
    with pytest.raises(ValueError, match="softening must be positive"):
        pdf_loss(a, b, softening=0.0)


def test_the_module_weighs_the_term_on_the_power_mesh_and_logs_it():
    c = 8
    g = torch.Generator().manual_seed(7)
    batch = {"input": torch.zeros(1, 3, c, c, c), "lpt": 0.3 * torch.randn(1, 6, c, c, c, generator=g),
             "target": 0.3 * torch.randn(1, 6, c, c, c, generator=g), "style": torch.zeros(1, 6)}
    m = FieldEmulator(network={"base_channels": 4, "depth": 1}, periodic=True, power_refine=2,
                      loss_weights={"pdf": 3.0})
    m.train()
    with torch.no_grad():
        losses, _ = m._step(batch)
    others = sum(m.weights[k] * v for k, v in losses.items() if k not in ("total", "pdf") and m.weights.get(k))
    assert float(losses["total"]) == pytest.approx(float(others + 3.0 * losses["pdf"]), rel=1e-6)
    assert float(losses["pdf"]) > 0 and math.isfinite(float(losses["pdf"]))
    plain = FieldEmulator(network={"base_channels": 4, "depth": 1}, periodic=True)
    plain.train()
    assert "pdf" not in plain._step(batch)[0]  # weight 0: not computed in training (no sort of every mesh)
    plain.eval()
    assert "pdf" in plain._step(batch)[0]  # always logged in validation


def test_the_lowest_quantile_keeps_only_the_densest_cells():
    g = torch.Generator().manual_seed(8)
    truth = painted_overdensity(0.6 * torch.randn((1, 3, 16, 16, 16), generator=g), refine=2)
    n = truth.numel()
    order = truth.flatten().argsort()
    dens = truth.flatten() + 1.0
    low = dens.clone()
    low[order[: n // 2]] *= 0.5  # thin out only the underdense half (ranks unchanged)
    low = (low - 1.0).reshape(truth.shape)
    assert float(pdf_loss(low, truth)) > 1e-3 and float(pdf_loss(low, truth, lowest_quantile=0.5)) == 0.0
    high = dens.clone()
    high[order[-(n // 10):]] *= 1.25  # the densest 10% made denser (ranks unchanged)
    high = (high - 1.0).reshape(truth.shape)
    first = int(0.9 * n)  # the ranks compared: the mean is over n - first of them instead of n
    assert float(pdf_loss(high, truth, lowest_quantile=0.9)) == pytest.approx(
        float(pdf_loss(high, truth)) * n / (n - first), rel=1e-5)
    for bad in (1.0, -0.1, True, "0.9"):
        with pytest.raises(ValueError, match=r"model.pdf_lowest_quantile must be in \[0, 1\)"):
            FieldEmulator(pdf_lowest_quantile=bad)
