"""Poisson-sampled biased tracers: number density, large-scale bias, shot noise, bias models, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from emulator.mocks.biased import biased_tracers
from emulator.core.fields import gaussian_field
from emulator.core.mesh import paint
from emulator.core.stats import power_spectrum

N = 32
L = 200.0
CELL = L / N
NBAR = 0.05  # ~12 tracers per cell
KMAX = 0.15  # well inside k_Nyq = 0.50 h/Mpc


def red_power(k: torch.Tensor) -> torch.Tensor:
    return k.clamp_min(1e-3) ** -2 * torch.exp(-((k / 0.1) ** 2))


def field(sigma: float = 0.08, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    """Gaussian overdensity with most power on large scales, rescaled to cell rms ``sigma`` (no clipping)."""
    d = gaussian_field(seed, N, L, red_power, dtype=torch.float64)
    return (d * (sigma / d.std())).to(dtype)


def counts_mesh(pos: torch.Tensor) -> torch.Tensor:
    return paint(pos.to(torch.float64), N, L, window="ngp")


def overdensity(counts: torch.Tensor) -> torch.Tensor:
    return counts / counts.mean() - 1.0


def test_linear_bias_from_cross_and_auto_power():
    b1 = 2.0
    delta = field()
    assert (1 + b1 * delta).min() > 0  # no clipping, so E[delta_t] = b1 delta cell by cell
    pos, vel = biased_tracers(delta, L, NBAR, "linear", seed=3, bias_params={"b1": b1})
    assert vel is None
    counts = counts_mesh(pos)
    shot = L**3 / pos.shape[0]
    pdd = power_spectrum(delta, L, kmax=KMAX)
    ptd = power_spectrum(overdensity(counts), L, delta, kmax=KMAX).power
    ptt = power_spectrum(overdensity(counts), L, kmax=KMAX, shot_noise=shot).power
    modes = pdd.modes.to(torch.float64)
    sum_p = (pdd.power * modes).sum()
    # cross: b_hat - b1 = sum Re(e d*) / sum |d|^2 with shot noise e of power S: var = S / sum_full P
    b_hat = (ptd * modes).sum() / sum_p
    sigma_b = math.sqrt(shot / sum_p)
    assert abs(b_hat - b1) < 4 * sigma_b
    per_bin = ptd / pdd.power
    assert torch.all((per_bin - b1).abs() < 4 * torch.sqrt(shot / (pdd.power * modes)))
    # auto with shot noise subtracted: var = 2 sum_full(2 b^2 P S + S^2) / (sum_full P)^2
    b2_hat = (ptt * modes).sum() / sum_p
    sigma_b2 = math.sqrt(2 * (modes * (2 * b1**2 * pdd.power * shot + shot**2)).sum() / sum_p**2)
    assert abs(b2_hat - b1**2) < 4 * sigma_b2
    assert sigma_b < 0.05 and sigma_b2 < 0.25  # the test has teeth: 2.5% on b1


def test_shot_noise_is_one_over_nbar():
    pos, _ = biased_tracers(torch.zeros(N, N, N), L, NBAR, seed=8)
    p = power_spectrum(overdensity(counts_mesh(pos)), L)
    modes = p.modes.to(torch.float64)
    mean_p = (p.power.double() * modes).sum() / modes.sum()
    assert abs(mean_p * NBAR - 1) < 4 * math.sqrt(2 / modes.sum()) + 4 / math.sqrt(NBAR * L**3)
    # white: every bin agrees with 1/nbar (exponential |e_k|^2 over modes/2 independent modes)
    assert torch.all((p.power * NBAR - 1).abs() < 4.5 * torch.sqrt(2 / modes))


@pytest.mark.parametrize(
    "model, params, rho",
    [
        ("linear", {"b1": 1.5}, lambda d: np.maximum(1 + 1.5 * d, 0)),  # clips the delta = -0.8 cells
        ("quadratic", {"b1": 1.2, "b2": 0.6}, lambda d: np.maximum(1 + 1.2 * d + 0.3 * (d**2 - np.mean(d**2)), 0)),
        ("lognormal", {"b": 0.7}, lambda d: np.exp(0.7 * d)),
    ],
)
def test_bias_models_expected_counts_and_density(model, params, rho):
    levels = np.array([-0.8, -0.2, 0.5, 1.5])
    cls = np.random.default_rng(0).permutation(np.arange(N**3) % 4)
    delta = torch.tensor(levels[cls].reshape(N, N, N))
    pos, _ = biased_tracers(delta, L, NBAR, model, seed=4, bias_params=params)
    assert abs(pos.shape[0] - NBAR * L**3) < 4 * math.sqrt(NBAR * L**3)  # mean number density
    counts = counts_mesh(pos).reshape(-1).numpy()
    assert np.array_equal(counts, np.round(counts)) and counts.sum() == pos.shape[0]
    r = rho(levels[cls])
    lam = NBAR * CELL**3 * r / r.mean()  # expected count per cell, computed by hand
    for c in range(4):
        sel = cls == c
        expected = lam[sel].sum()
        assert abs(counts[sel].sum() - expected) < 4 * math.sqrt(max(expected, 1.0))
    assert counts[cls == 0].sum() == (0 if model == "linear" else counts[cls == 0].sum())


@pytest.mark.parametrize("model", ["linear", "quadratic", "exponential"])
def test_mean_number_density_on_gaussian_field(model):
    pos, _ = biased_tracers(field(0.3), L, 0.01, {"model": model}, seed=12)
    expected = 0.01 * L**3
    assert abs(pos.shape[0] - expected) < 4 * math.sqrt(expected)
    assert pos.min() >= 0 and pos.max() < L


def test_deterministic_by_seed_across_dtypes():
    d64 = field()
    a, _ = biased_tracers(d64, L, 0.01, seed=5)
    b, _ = biased_tracers(d64.clone(), L, 0.01, seed=5)
    c, _ = biased_tracers(d64, L, 0.01, seed=6)
    f, _ = biased_tracers(d64.float(), L, 0.01, seed=5)
    assert torch.equal(a, b) and a.dtype == torch.float64
    assert a.shape != c.shape or not torch.equal(a, c)
    assert f.dtype == torch.float32 and f.shape == a.shape  # same draws from the float32 mesh
    assert torch.allclose(f.double(), a, atol=1e-4)


def test_velocities_are_cic_readout():
    x = torch.arange(N, dtype=torch.float64) * CELL
    k = 2 * math.pi / L
    vel = torch.zeros(3, N, N, N, dtype=torch.float64)
    vel[0] = (100 + 50 * torch.cos(k * x)).view(N, 1, 1)
    vel[1] = -30.0
    pos, v = biased_tracers(field(), L, 0.005, seed=2, velocity_mesh=vel)
    assert v.shape == pos.shape
    exact = 100 + 50 * torch.cos(k * pos[:, 0])
    assert (v[:, 0] - exact).abs().max() <= 50 * (k * CELL) ** 2 / 8  # linear-interpolation error bound
    assert torch.allclose(v[:, 1], torch.full_like(v[:, 1], -30.0)) and torch.all(v[:, 2] == 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"number_density": -0.1},
        {"number_density": float("nan")},
        {"bias": "cubic"},
        {"bias_params": {"b2": 1.0}},
        {"bias": {"model": "quadratic", "b3": 1.0}},
        {"delta": torch.zeros(8, 8, 4)},
        {"seed": -1},
        {"velocity_mesh": torch.zeros(2, 8, 8, 8)},
        {"box_size": 0.0},
    ],
)
def test_bad_input_raises(kwargs):
    args = {"delta": torch.zeros(8, 8, 8), "box_size": 100.0, "number_density": 0.01, "bias": "linear"} | kwargs
    with pytest.raises(ValueError):
        biased_tracers(**args)
