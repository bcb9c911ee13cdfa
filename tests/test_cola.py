"""COLA stepping (emulator.core.pm.kdk in an emulator.core.cola.LPTFrame) against converged PM: the same solution,
and large scales right with few steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emulator.core.cola import LPTFrame
from emulator.core.cosmology import get_preset
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.fourier import k_magnitude, nyquist, to_fourier, to_real
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import (lagrangian_grid, lpt2_displacement, particles_to_vector_field, vector_field_to_particles,
                               za_displacement)
from emulator.core.pm import PMForce, initial_state, kdk, lpt_initial_state, step_schedule
from emulator.core.power import LinearPower

N, BOX, SEED, Z_INIT = 32, 128.0, 7, 12.0


@pytest.fixture(scope="module")
def setup():
    """A LCDM field at z = 0, 4 Mpc/h particle cells: displacements of ~1 cell, shells crossed in places."""
    cosmo = get_preset("planck18")
    delta_k = linear_density_k(white_noise(SEED, N, dtype=torch.float64), BOX, LinearPower(cosmo, 0.0))
    return cosmo, GrowthHistory(cosmo), delta_k


_RUNS: dict = {}


def _run(setup, steps: int, cola: bool, factors: str = "standard") -> tuple[torch.Tensor, torch.Tensor]:
    """A run of ``steps`` from z = 12 to 0 (memoised: the tests only read the results)."""
    key = (id(setup), steps, cola, factors)
    if key not in _RUNS:
        _RUNS[key] = _simulate(setup, steps, cola, factors)
    return _RUNS[key]


def _simulate(setup, steps: int, cola: bool, factors: str) -> tuple[torch.Tensor, torch.Tensor]:
    cosmo, growth, delta_k = setup
    a0 = 1.0 / (1.0 + Z_INIT)
    q = lagrangian_grid(N, BOX, dtype=torch.float64)
    force = PMForce(2 * N, BOX, cosmo.Omega_m, dtype=torch.float64)
    disp, mom = lpt_initial_state(delta_k, BOX, growth, a0)
    bounds = step_schedule(a0, 1.0, steps)
    frame = LPTFrame.from_density(delta_k, BOX, factors=factors) if cola else None
    return kdk(q, disp, mom, bounds, growth, force, BOX, frame=frame)


def _rms(x: torch.Tensor) -> float:
    return float(x.pow(2).mean().sqrt())


def _large_scales(disp: torch.Tensor) -> torch.Tensor:
    """The displacement field's modes below k_Nyq/4 (the scales a few-step run should get right)."""
    low = k_magnitude(N, BOX, dtype=torch.float64) < nyquist(N, BOX) / 4
    return torch.stack([to_real(to_fourier(c) * low, N) for c in particles_to_vector_field(disp, N)])


@pytest.fixture(scope="module")
def converged(setup):
    return _run(setup, 40, cola=False)


def test_many_cola_steps_reach_the_converged_pm_solution(setup, converged):
    """Both integrators solve the same equations: with 40 steps they agree far better than either does with 4."""
    disp_pm, mom_pm = converged
    disp_cola, mom_cola = _run(setup, 40, cola=True)
    err_pm4 = _rms(_run(setup, 4, cola=False)[0] - disp_pm)
    assert _rms(disp_cola - disp_pm) < 0.2 * err_pm4
    assert _rms(mom_cola - mom_pm) < 0.02 * _rms(mom_pm)


@pytest.mark.parametrize(("steps", "factors", "gain"), [(2, "standard", 0.6), (4, "standard", 0.6),
                                                         (4, "fastpm", 0.75)])
def test_few_cola_steps_get_large_scales_right(setup, converged, steps, factors, gain):
    """FastPM steps get linear growth but not second order; COLA carries 2LPT exactly and integrates only the
    residual, so its large-scale displacement error against the 40-step run is about half PM's (measured: 2 steps
    0.19 -> 0.10 Mpc/h, 4 steps 0.079 -> 0.038 with the standard factors, 0.050 with FastPM's)."""
    ref = _large_scales(converged[0])
    err_pm = _rms(_large_scales(_run(setup, steps, cola=False)[0]) - ref)
    err_cola = _rms(_large_scales(_run(setup, steps, cola=True, factors=factors)[0]) - ref)
    assert err_cola < gain * err_pm


def test_za_frame_and_log_spacing_reach_the_same_solution():
    """The simulator's COLA (float32, its default) in a Zel'dovich frame (lpt_order=1) and with steps even in ln a
    solves the same equations as FastPM steps from the same initial conditions: with 40 steps they agree far
    better than 3 FastPM steps do."""
    from data_prep.simulate import run_simulation

    cosmo, n, box = get_preset("planck18"), 16, 64.0
    kw = dict(output_redshifts=[0.0], z_init=12.0, force_factor=2)
    for extra in ({"lpt_order": 1}, {"spacing": "log"}):
        ref = run_simulation(cosmo, SEED, n, box, steps=40, **kw, **extra).outputs[0].displacements
        few = run_simulation(cosmo, SEED, n, box, steps=3, **kw, **extra).outputs[0].displacements
        cola = run_simulation(cosmo, SEED, n, box, steps=40, integrator="cola", **kw, **extra).outputs[0]
        assert torch.isfinite(cola.displacements).all()
        assert _rms(cola.displacements - ref) < 0.2 * _rms(few - ref)


def test_total_momentum_stays_zero(setup):
    """The PM force conserves momentum and the LPT fields have zero mean, so the residual frame adds none."""
    _, mom = _run(setup, 3, cola=True)
    assert float(mom.sum(0).abs().max()) < 1e-9 * float(mom.abs().sum())


def test_the_frame_of_a_density_and_bad_input(setup):
    """The frame's fields are 2LPT's (``psi2`` zero for ZA), its trajectory is lpt_initial_state's, and bad
    factors or shapes are refused by name."""
    cosmo, growth, delta_k = setup
    frame = LPTFrame.from_density(delta_k, BOX)
    torch.testing.assert_close(frame.psi1, vector_field_to_particles(za_displacement(delta_k, BOX)))
    torch.testing.assert_close(frame.psi2, vector_field_to_particles(lpt2_displacement(delta_k, BOX)))
    disp, mom = lpt_initial_state(delta_k, BOX, growth, 0.2)
    torch.testing.assert_close(frame.displacement(growth, 0.2), disp)
    torch.testing.assert_close(frame.momentum(growth, 0.2), mom)
    assert float(LPTFrame.from_density(delta_k, BOX, lpt_order=1).psi2.abs().max()) == 0.0
    # initial_state: FastPM runs start from lpt_initial_state itself, COLA runs from their frame's same state
    s0, p0, none = initial_state(delta_k, BOX, growth, 0.2)
    assert none is None and torch.equal(s0, disp) and torch.equal(p0, mom)
    s1, p1, made = initial_state(delta_k, BOX, growth, 0.2, cola=True)
    torch.testing.assert_close(made.psi2, frame.psi2)
    torch.testing.assert_close((s1, p1), (disp, mom))
    with pytest.raises(ValueError, match="COLA factors"):
        LPTFrame(frame.psi1, frame.psi2, "leapfrog")
    with pytest.raises(ValueError, match="psi1 and psi2"):
        LPTFrame(frame.psi1, frame.psi2[:10])


def test_lpt_force_factors_are_the_momentum_derivatives():
    """COLA's frame needs ``gf = a^2 E dgp/da`` and ``gf2 = a^2 E dgp2/da`` (the LPT trajectory's own force)."""
    growth = GrowthHistory(get_preset("planck18"))
    a = np.linspace(0.08, 1.0, 4001)
    e = np.asarray(growth.E(a))
    for gp, gf in ((growth.gp, growth.gf), (growth.gp2, growth.gf2)):
        deriv = np.gradient(np.asarray(gp(a)), a, edge_order=2)
        np.testing.assert_allclose(a**2 * e * deriv, np.asarray(gf(a)), rtol=2e-4)
