"""The hybrid generator's base (emulator.core.pm_base): a few-step PM run equal to the simulator's own run."""

from __future__ import annotations

import pytest
import torch

from data_prep.simulate import run_simulation
from emulator.core.cosmology import get_preset
from emulator.core.fields import linear_density_k, white_noise
from emulator.core.fourier import k_magnitude, nyquist
from emulator.core.growth import GrowthHistory
from emulator.core.lpt import za_displacement
from emulator.core.pm_base import LPT_BASE, BaseRecipe, pm_base_fields
from emulator.core.power import LinearPower

N, BOX, SEED = 16, 64.0, 123


@pytest.fixture(scope="module")
def cosmo():
    return get_preset("planck18")


@pytest.mark.parametrize("recipe", [BaseRecipe("pm", steps=3, force_factor=2, z_init=9.0),
                                    BaseRecipe("pm", steps=2, force_factor=1, z_init=12.0, spacing="log"),
                                    BaseRecipe("cola", steps=3, force_factor=2, z_init=9.0)])
def test_pm_base_is_the_simulators_run(cosmo, recipe):
    """Same seed and settings: the base equals data-prep's run_simulation output (positions and km/s velocities)."""
    z = 0.5
    delta_k = linear_density_k(white_noise(SEED, N), BOX, LinearPower(cosmo, 0.0))
    disp, vdisp = pm_base_fields(delta_k, BOX, cosmo, z, recipe)
    assert disp.shape == vdisp.shape == (3, N, N, N)
    sim = run_simulation(cosmo, SEED, N, BOX, output_redshifts=[z], z_init=recipe.z_init, steps=recipe.steps,
                         force_factor=recipe.force_factor, spacing=recipe.spacing,
                         integrator="cola" if recipe.method == "cola" else "fastpm")
    out = sim.outputs[0]
    torch.testing.assert_close(disp.flatten(1).T, out.displacements, rtol=0, atol=1e-5)
    g = GrowthHistory(cosmo)
    a = 1 / (1 + z)
    vel = vdisp.flatten(1).T * (100 * a * float(g.E(a)) * float(g.f1(a)))
    torch.testing.assert_close(vel, out.velocities, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("method", ["pm", "cola"])
def test_pm_base_of_a_tiny_amplitude_is_linear_theory(cosmo, method):
    """Deep in the linear regime the PM base is the growing mode: D1 psi1 and f1 D1 psi1 in displacement units.

    Modes below k_Nyq/8 only (the box's largest waves): nearer the particle Nyquist frequency a perturbed
    lattice's PM force departs from the linear one by percents (emulator.core.pm module notes)."""
    z, n, box = 1.0, 32, 128.0
    delta_k = 1e-4 * linear_density_k(white_noise(SEED, n, dtype=torch.float64), box, LinearPower(cosmo, 0.0))
    delta_k = delta_k * (k_magnitude(n, box, dtype=torch.float64) < nyquist(n, box) / 8)
    disp, vdisp = pm_base_fields(delta_k, box, cosmo, z, BaseRecipe(method, steps=3, force_factor=2))
    g = GrowthHistory(cosmo)
    d1 = float(g.D1(1 / (1 + z)))
    psi1 = za_displacement(delta_k, box)
    rms = float((d1 * psi1).pow(2).mean().sqrt())
    # 2LPT and the force's deviation from linear theory at the mesh scale stay well below 1% of the rms
    assert float((disp - d1 * psi1).pow(2).mean().sqrt()) < 0.005 * rms
    assert float((vdisp - d1 * psi1).pow(2).mean().sqrt()) < 0.005 * rms


def test_recipe_round_trip_and_refusals():
    pm = BaseRecipe("pm", steps=4, force_factor=2, z_init=12.0)
    assert BaseRecipe.from_dict(pm.to_dict()) == pm
    assert BaseRecipe.from_dict(pm.to_json()) == pm
    assert BaseRecipe.from_dict(None) == LPT_BASE and LPT_BASE.to_dict() == {"method": "2lpt"}
    assert BaseRecipe.from_dict({"method": "2lpt"}).is_lpt
    assert pm.label() == "PM 4 steps, force mesh 2x, from z = 12"
    cola = BaseRecipe("cola", steps=4, force_factor=2)
    assert BaseRecipe.from_dict(cola.to_json()) == cola and not cola.is_lpt
    assert cola.label() == "COLA 4 steps, force mesh 2x, from z = 12"
    with pytest.raises(ValueError, match="COLA base"):
        cola.check_redshift(13.0)
    for bad, match in [({"method": "fastpm"}, "method"), ({"method": "pm", "steps": 0}, "steps"),
                       ({"method": "pm", "stepz": 4}, "unknown"), ({"method": "pm", "z_init": -1}, "z_init"),
                       ({"method": "2lpt", "steps": 4}, "no other key"), ("[1]", "mapping")]:
        with pytest.raises(ValueError, match=f"model.pt: not a base recipe.*{match}"):
            BaseRecipe.from_dict(bad, where="model.pt")
    with pytest.raises(ValueError, match="outside"):
        pm.check_redshift(12.0)
    with pytest.raises(ValueError, match="PM or COLA recipe"):
        pm_base_fields(torch.zeros(N, N, N // 2 + 1, dtype=torch.complex64), BOX, get_preset("planck18"), 0.0,
                       LPT_BASE)
