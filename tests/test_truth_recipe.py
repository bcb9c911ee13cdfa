"""Mass refinement of the simulator (issue 11 §1): the fine white noise carries the coarse noise's large-scale
modes exactly and is itself unit white noise; a refined run keeps the coarse universe and the coarse shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from data_prep.simulate import run_simulation
from data_prep.simulate.refine import (
    coarse_lattice_index,
    coarse_modes,
    initial_density_k,
    refined_seed,
    refined_white_noise,
)
from emulator.core.cosmology import get_preset
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.fourier import k_magnitude, to_fourier
from emulator.core.lpt import lagrangian_grid, particles_to_vector_field
from emulator.core.power import LinearPower

COSMO = get_preset("planck18")
F64 = torch.float64


@pytest.mark.parametrize("n,refine", [(16, 2), (8, 3), (12, 2)])
def test_fine_noise_carries_the_coarse_modes(n, refine):
    """rfftn modes with all |m_i| < n/2: fine = refine^(3/2) x coarse, to float64 rounding."""
    coarse = to_fourier(white_noise(11, n, dtype=F64))
    fine = to_fourier(refined_white_noise(11, n, refine, dtype=F64))
    want = coarse_modes(coarse, n) * refine**1.5
    got = coarse_modes(fine, n)
    assert torch.allclose(got, want, rtol=0, atol=1e-12 * want.abs().max())
    # ... and only those: the coarse Nyquist planes come from the separate stream, not from the coarse noise
    nyq = fine[n // 2, 1, 1]
    assert abs(nyq - coarse[n // 2, 1, 1] * refine**1.5) > 1e-3


def test_fine_noise_is_unit_white():
    """Mean 0, variance 1, flat P(k) (shell means of |w_k|^2 / N^3 = 1 within 5 sigma of cosmic variance)."""
    n, r = 32, 2
    big = n * r
    w = refined_white_noise(3, n, r, dtype=F64)
    assert w.shape == (big, big, big)
    npts = big**3
    assert abs(w.mean().item()) < 5.0 / math.sqrt(npts)
    assert abs(w.var().item() - 1.0) < 5.0 * math.sqrt(2.0 / npts)
    pk = to_fourier(w).abs().square() / npts  # <.> = 1 for every mode
    m = k_magnitude(big, 2.0 * math.pi, dtype=F64)  # box 2 pi: |k| = |m|, in units of the fundamental
    edges = np.arange(1, big // 2, 2.0)
    pull = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (m >= lo) & (m < hi)
        vals = pk[sel]
        pull.append((vals.mean().item() - 1.0) * math.sqrt(vals.numel()))
    assert max(abs(p) for p in pull) < 5.0, pull
    # the shells inside and outside the coarse Nyquist frequency agree: no step at the seam
    inner, outer = pk[(m > 2) & (m < n // 2 - 1)].mean().item(), pk[(m > n // 2 + 1) & (m < big // 2)].mean().item()
    assert abs(inner - outer) < 0.05


def test_separate_stream_is_seeded_and_distinct():
    n = 8
    a, b = refined_white_noise(5, n, 2, dtype=F64), refined_white_noise(5, n, 2, dtype=F64)
    assert torch.equal(a, b)
    assert refined_seed(5, 2) != refined_seed(6, 2) and refined_seed(5, 2) != refined_seed(5, 3)
    assert refined_seed(5, 2) not in (5, 6)
    c = to_fourier(refined_white_noise(6, n, 2, dtype=F64))
    assert not torch.allclose(to_fourier(a)[n, n, n], c[n, n, n])  # small scales differ with the seed
    assert torch.equal(refined_white_noise(5, n, 1, dtype=F64), white_noise(5, n, dtype=F64))
    with pytest.raises(ValueError, match="refine"):
        refined_white_noise(5, n, 0)


def test_coarse_lattice_index_picks_the_coarse_lagrangian_points():
    n, r, box = 6, 3, 12.0
    q_fine = lagrangian_grid(n * r, box, dtype=F64)
    q_coarse = lagrangian_grid(n, box, dtype=F64)
    assert torch.equal(q_fine[coarse_lattice_index(n, r)], q_coarse)


@pytest.mark.parametrize("fixed", [False, True])
def test_refined_linear_density_equals_the_generator_input(fixed):
    """The generator's 2LPT input for seed s (white_noise(s, n) x sqrt(P)) is the refined run's large scales."""
    n, box, power = 16, 32.0, LinearPower(COSMO)
    gen = linear_density_k(white_noise(9, n, dtype=F64), box, power, fixed_amplitude=fixed)
    assert torch.equal(initial_density_k(9, n, box, power, 1, fixed_amplitude=fixed, dtype=F64), gen)
    fine = initial_density_k(9, n, box, power, 2, fixed_amplitude=fixed, dtype=F64)
    got, want = coarse_modes(fine, n) / 8.0, coarse_modes(gen, n)
    assert torch.allclose(got, want, rtol=0, atol=1e-10 * want.abs().max())


def test_refined_simulation_keeps_coarse_shapes_and_large_scales():
    """Refine 2: coarse shapes and ids; the kept particles' IC displacement is the generator's ZA field at low k."""
    n, box, seed = 16, 32.0, 21
    z_init = 12.0
    ref = run_simulation(COSMO, seed, n, box, output_redshifts=(z_init,), z_init=z_init, lpt_order=1,
                         dtype=F64, refine=1)
    fine = run_simulation(COSMO, seed, n, box, output_redshifts=(z_init,), z_init=z_init, lpt_order=1,
                          dtype=F64, refine=2)
    assert fine.outputs[0].positions.shape == (n**3, 3) and torch.equal(fine.ic.ids, ref.ic.ids)
    assert fine.config["refine"] == 2 and ref.config["refine"] == 1
    ka = to_fourier(particles_to_vector_field(fine.ic.displacements, n))
    kb = to_fourier(particles_to_vector_field(ref.ic.displacements, n))
    low = (k_magnitude(n, box, dtype=F64) < 0.5 * math.pi * n / box) & (k_magnitude(n, box, dtype=F64) > 0)
    a, b = ka[:, low], kb[:, low]
    r = (a * b.conj()).real.sum() / torch.sqrt(a.abs().square().sum() * b.abs().square().sum())
    assert r > 0.995  # the rest: aliases of the fine modes beyond the coarse Nyquist frequency
    assert abs(a.abs().square().sum() / b.abs().square().sum() - 1.0) < 0.02


def test_refined_run_outputs_the_particles_of_the_coarse_lattice():
    """A short refined PM run: every output particle is x = q_coarse + displacement, and it moved."""
    n, box = 8, 32.0
    res = run_simulation(COSMO, 4, n, box, output_redshifts=(0.0,), steps=3, refine=2, dtype=F64)
    out = res.outputs[0]
    assert out.positions.shape == (n**3, 3) and torch.all((out.positions >= 0) & (out.positions < box))
    assert out.displacements.abs().max() > 0.5 and out.velocities.abs().mean() > 10.0  # it moved
    q = lagrangian_grid(n, box, dtype=F64)
    wrapped = torch.remainder(q + out.displacements, box)
    assert torch.allclose(wrapped, out.positions, atol=1e-9)


def test_study_table_reports_the_mean_and_standard_error_over_seeds():
    from benchmarks.truth_recipe import summarize, table

    def run(seed, ee2, hf):
        return {"seed": seed, "wall_seconds": [1.0, 3.0], "ratios": {"0": {"ee2": ee2, "halofit": hf}}}

    runs = [run(1, [0.9, 1.0], [1.0, 1.1]), run(2, [1.0, 1.0], [1.2, 1.1]), run(3, [1.1, 1.0], [1.1, 1.1])]
    (mean, sem), = [summarize(runs)["0"]["ee2"]]
    assert mean == pytest.approx([1.0, 1.0]) and sem == pytest.approx([0.1 / math.sqrt(3), 0.0], abs=1e-12)
    text = table({("fid", "r2"): runs}, {"k": [0.5, 0.8]})
    assert "| fid | r2 | 3 | 2 | 0 | 1.000±0.058 | 1.000 | 1.100±0.058 | 1.100 |" in text


def test_study_configs_use_several_seeds():
    import yaml

    from benchmarks.truth_recipe import DEFAULT_CONFIG

    for path in (DEFAULT_CONFIG, DEFAULT_CONFIG.with_name("truth_recipe_box256.yaml")):
        cfg = yaml.safe_load(path.read_text())
        assert len(set(cfg["seeds"])) >= 4 and "seed" not in cfg


def test_fine_seed_redraws_only_the_sub_grid_modes():
    """Another fine_seed: every coarse mode identical, the others redrawn; None is the default stream."""
    n, r = 12, 2
    base = refined_white_noise(5, n, r, dtype=F64)
    assert torch.equal(refined_white_noise(5, n, r, fine_seed=refined_seed(5, r), dtype=F64), base)
    other = refined_white_noise(5, n, r, fine_seed=123, dtype=F64)
    kb, ko = to_fourier(base), to_fourier(other)
    want = coarse_modes(kb, n)
    assert torch.allclose(coarse_modes(ko, n), want, rtol=0, atol=1e-12 * want.abs().max())  # rounding of the FFTs
    corr = (ko * kb.conj()).real.sum() - (coarse_modes(ko, n) * coarse_modes(kb, n).conj()).real.sum()
    assert abs(float(corr)) < 0.05 * float(kb.abs().square().sum())  # the sub-grid modes are independent
    with pytest.raises(ValueError, match="fine_seed needs refine > 1"):
        run_simulation(COSMO, 5, 8, 16.0, fine_seed=1, refine=1)


def test_subgrid_spread_is_zero_for_equal_seeds_and_grows_with_k():
    from benchmarks.subgrid_noise import subgrid_spread

    recipe = {"z_init": 9.0, "steps": 4, "force_factor": 2, "refine": 2}
    same = subgrid_spread(COSMO, 3, 16, 32.0, [0.0], fine_seeds=(None, None), recipe=recipe, kvalues=(0.3, 1.4))
    assert all(r["p_ratio"] == 1.0 and abs(r["one_minus_r"]) < 1e-6 for r in same)
    rows = subgrid_spread(COSMO, 3, 16, 32.0, [0.0], fine_seeds=(None, 7), recipe=recipe, kvalues=(0.3, 1.4))
    low, high = rows
    assert low["k"] < high["k"] and 0 <= low["one_minus_r"] < high["one_minus_r"] and high["one_minus_r"] > 1e-4
    with pytest.raises(ValueError, match="refine"):
        subgrid_spread(COSMO, 3, 16, 32.0, [0.0], recipe={**recipe, "refine": 1})
